"""`ovseg demo`: the recut session, the named API endpoints (gradio_client) and the page in a real
headless browser (Debian's chromium driven by Playwright), all with tiny random-weight models.

Settings: backbone input 128 px (4x4 features, 16 positions), 2 PAMR iterations. With the tiny
checkpoints the chelsea tree then holds 1 segment at tau <= 0.2, 3 at 0.3 and 7 at 0.5, so the
slider visibly changes the segment count (a coarser input can give a single segment everywhere).
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest

gr = pytest.importorskip("gradio", reason='the demo needs its optional extra: pip install "ovseg[demo]"')
pytest.importorskip("gradio_client", reason='the demo needs its optional extra: pip install "ovseg[demo]"')

ROOT = Path(__file__).resolve().parents[2]
CHELSEA = ROOT / "examples" / "chelsea.png"
CLASSES = "cat,floor,wall"
SETTINGS = dict(resolution=128, refine_iterations=2, cache=False, device="cpu")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_weights):
    """The demo app served on 127.0.0.1 (a free port), models loaded once, backbone passes counted."""
    from ovseg import Segmenter
    from ovseg.demo import build_app, launch_app

    from ovseg.pipeline import stages

    segmenter = Segmenter(**SETTINGS, **tiny_weights)
    calls = []
    extract = stages.extract

    def counted(backbone, inputs, **kw):
        if backbone is segmenter.models.loaded()["backbone"]:  # the demo's, not another Segmenter's
            calls.append(len(inputs))
        return extract(backbone, inputs, **kw)

    stages.extract = counted  # every backbone pass goes through this stage
    app = build_app(segmenter, max_tau=1.0)
    port = _free_port()
    launch_app(app, host="127.0.0.1", port=port, block=False, quiet=True)
    try:
        yield {"url": f"http://127.0.0.1:{port}/", "segmenter": segmenter, "backbone_calls": calls,
               "weights": tiny_weights}
    finally:
        stages.extract = extract
        app.close()


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server["url"], verbose=False)


def test_label_endpoint_matches_segmenter_label(server, client):
    from gradio_client import handle_file
    from ovseg import Segmenter
    from PIL import Image

    overlay, data = client.predict(handle_file(str(CHELSEA)), CLASSES, 0.5, api_name="/label")
    ref = Segmenter(**SETTINGS, tau=0.5, **server["weights"]).label(str(CHELSEA), CLASSES).to_json()
    assert data["task"] == "label" and data["classes"] == ["cat", "floor", "wall"]
    assert len(data["segments"]) == len(ref["segments"]) > 1
    for got, want in zip(data["segments"], ref["segments"]):
        assert got["segmentation"] == want["segmentation"]  # the same pixels
        assert (got["id"], got["area"], got["bbox"], got["class_name"]) == \
               (want["id"], want["area"], want["bbox"], want["class_name"])
        assert got["score"] == pytest.approx(want["score"], abs=1e-5)
    assert data["settings"] == json.loads(json.dumps(ref["settings"]))  # tuples as lists
    with Image.open(overlay) as im:  # the image with a legend beside it
        h, w = data["height"], data["width"]
        assert im.height >= h and im.width > w


def test_slider_recuts_without_backbone_pass(server, client):
    from gradio_client import handle_file

    calls = server["backbone_calls"]
    counts = {}
    for tau in (0.5, 0.3, 0.05, 0.5):
        _, data = client.predict(handle_file(str(CHELSEA)), tau, api_name="/segment")
        assert data["task"] == "segment" and data["settings"]["tau"] == tau
        counts[tau] = len(data["segments"])
    assert counts[0.05] == 1 and counts[0.05] < counts[0.3] < counts[0.5]  # coarse to fine
    assert len(calls) <= 1, "the same image must not run the backbone again"  # 0 if /label ran first


def test_session_recut_equals_a_fresh_run(tiny_weights):
    """A cut of the tree built at max_tau is the tree built at tau (METHOD.md section 3)."""
    from ovseg import Segmenter
    from ovseg.demo import DemoSession

    segmenter = Segmenter(**SETTINGS, **tiny_weights)
    session = DemoSession(segmenter, max_tau=1.0)
    state = session.prepare(str(CHELSEA))
    assert session.prepare(str(CHELSEA)) is state  # kept
    for tau in (0.2, 0.35):
        got = session.result(state, tau)
        want = Segmenter(segmenter.config, tau=tau).segment(str(CHELSEA))
        np.testing.assert_array_equal(got.segment_map, want.segment_map)
    with pytest.raises(ValueError, match="tau"):
        session.result(state, 1.5)


def test_kway_slider_moves_the_merge_threshold_without_backbone_pass(tiny_weights, monkeypatch):
    """method="kway" in the demo: the slider moves the K-way cut's merge threshold tau (its label
    says so), each move recuts the kept `KWayTree` with no backbone pass, and every cut equals a
    fresh `Segmenter` run at that tau, the method, k and the K chosen recorded; a fixed K freezes
    the slider."""
    from ovseg import Segmenter
    from ovseg.demo import DemoSession, build_app
    from ovseg.pipeline import stages

    segmenter = Segmenter(**SETTINGS, **tiny_weights, method="kway")
    calls = []
    extract = stages.extract

    def counted(backbone, inputs, **kw):
        if backbone is segmenter.models.loaded().get("backbone"):
            calls.append(len(inputs))
        return extract(backbone, inputs, **kw)

    monkeypatch.setattr(stages, "extract", counted)
    session = DemoSession(segmenter, max_tau=1.0)
    label, moves = session.slider()
    assert moves and "merge threshold" in label
    state = session.prepare(str(CHELSEA))
    got = {tau: session.result(state, tau) for tau in (0.05, 0.3, 0.6, 0.95, 0.3)}
    assert calls == [1], "a slider move must not run the backbone"
    for tau, result in got.items():
        s = result.settings
        assert (s["method"], s["k"], s["tau"]) == ("kway", "auto", tau) and s["k_chosen"] >= 1
        want = Segmenter(segmenter.config, tau=tau).segment(str(CHELSEA))
        np.testing.assert_array_equal(result.segment_map, want.segment_map)
        assert want.settings["k_chosen"] == s["k_chosen"]
    ks = [got[t].settings["k_chosen"] for t in (0.05, 0.3, 0.6, 0.95)]
    assert ks == sorted(ks) and ks[0] < ks[-1]  # lower merge threshold: fewer segments
    assert calls == [1]
    app = build_app(segmenter)
    slider = next(b for b in app.blocks.values() if getattr(b, "elem_id", None) == "ovseg-tau")
    assert "merge threshold" in slider.label and "kway" in slider.label and slider.interactive is not False
    fixed = DemoSession(Segmenter(segmenter.config, k=3, models=segmenter.models))
    label, moves = fixed.slider()
    assert not moves and "k=3 fixes K" in label
    state = fixed.prepare(str(CHELSEA))
    a, b = fixed.result(state, 0.1), fixed.result(state, 0.9)
    np.testing.assert_array_equal(a.segment_map, b.segment_map)
    assert a.settings["k"] == 3 and a.settings["k_chosen"] == b.settings["k_chosen"] == 3


@pytest.mark.parametrize("path, classes, message", [
    ("examples/README.md", CLASSES, "not an image file"),
    ("examples/chelsea.png", " , ", "classes is empty"),
    ("examples/chelsea.png", "cat,Cat", "duplicate name"),
])
def test_bad_inputs_give_messages_and_the_app_keeps_working(client, path, classes, message):
    from gradio_client import handle_file

    with pytest.raises(Exception, match=message) as info:
        client.predict(handle_file(str(ROOT / path)), classes, 0.5, api_name="/label")
    assert "Traceback" not in str(info.value) and "/tmp/" not in str(info.value)
    _, data = client.predict(handle_file(str(CHELSEA)), 0.5, api_name="/segment")
    assert data["segments"]


def test_missing_weights_offline_is_a_message(tmp_path):
    from gradio_client import Client, handle_file
    from ovseg import Segmenter
    from ovseg.demo import build_app, launch_app

    app = build_app(Segmenter(**SETTINGS, weights="nobody/absent"))  # a repo id: found missing at the run
    port = _free_port()
    launch_app(app, port=port, block=False, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        with pytest.raises(Exception, match="absent") as info:
            client.predict(handle_file(str(CHELSEA)), 0.5, api_name="/segment")
        assert "Traceback" not in str(info.value)
    finally:
        app.close()


def test_demo_command_without_gradio_says_how_to_install(monkeypatch):
    import sys

    from click.testing import CliRunner
    from ovseg.cli import main

    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio -> ImportError
    result = CliRunner().invoke(main, ["demo"])
    assert result.exit_code == 1
    assert 'pip install "ovseg[demo]"' in result.output


# -- a real browser ---------------------------------------------------------------------------------
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-quic"]


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _rows(page) -> int:
    """Data rows of the segments table (gradio's grid is virtual: read its aria-rowcount)."""
    return int(page.locator("#ovseg-table [role=grid]").get_attribute("aria-rowcount")) - 1


def test_page_in_headless_chromium(server, tmp_path):
    """Upload, type classes, Run, wait for the overlay, move the slider: the table's segment count
    changes. Saves a screenshot (OVSEG_DEMO_SCREENSHOT=docs/demo.png writes the README's)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed "
                                   "(pip install playwright; .ci/run installs it)")
    browser_path = _chromium()
    if browser_path is None:
        pytest.skip("no chromium browser installed (apt-get install chromium; .ci/run installs it)")
    shot = tmp_path / "demo.png"
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 760})
            page.set_default_timeout(120_000)  # a loaded 2-core CI machine
            page.goto(server["url"])
            page.locator("#ovseg-image input[type=file]").set_input_files(str(CHELSEA))
            page.locator("#ovseg-image img").wait_for()
            page.locator("#ovseg-classes textarea, #ovseg-classes input").first.fill("cat, floor, wall")
            page.locator("#ovseg-run").click()
            page.locator("#ovseg-overlay img").wait_for()
            page.wait_for_function("document.querySelector('#ovseg-status').innerText.includes('at tau = 0.50')")
            fine = _rows(page)
            assert fine > 1, page.locator("#ovseg-status").inner_text()

            page.locator("#ovseg-tau input[type=range]").fill("0.3")  # a slider move
            page.wait_for_function("document.querySelector('#ovseg-status').innerText.includes('at tau = 0.30')")
            coarse = _rows(page)
            status = page.locator("#ovseg-status").inner_text()
            assert 1 <= coarse < fine, status
            assert "no backbone pass" in status
            page.evaluate("window.scrollTo(0, 0)")  # the slider move may have scrolled the page
            time.sleep(0.5)  # let the overlay image finish painting
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot))
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    if os.environ.get("OVSEG_DEMO_SCREENSHOT"):  # the README's picture, 256 colours to stay small
        from PIL import Image

        with Image.open(shot) as im:
            im.convert("RGB").quantize(256, dither=Image.Dither.NONE).save(
                os.environ["OVSEG_DEMO_SCREENSHOT"], optimize=True)
