"""The README's pictures with the real efficientnet-lite0 backbone (segments only).

* docs/real-lite0.png: examples/chelsea.png segmented by `ovseg segment`'s path (`Segmenter`),
  left with the settings before the calibrated rule (raw stage-5 features, alpha 5, tau 0.5, no
  minimum size: the registry's old numbers), right with today's default (conditioned features,
  alpha "auto", the calibrated tau and min_area). Overlays of the segment map, no names.
* docs/demo.png (``--demo``): the demo page in headless Chromium (Playwright), the real
  efficientnet-lite0 backbone and a tiny *random* CLIP labeler (``ovseg.testing``: no real CLIP
  weights exist on the development machines), "Segments only" ticked, after a Run and one slider
  move: the segments and the slider are real, no class name is shown.

    PYTHONPATH=$PWD python benchmarks/pictures.py            # docs/real-lite0.png
    PYTHONPATH=$PWD python benchmarks/pictures.py --demo     # also docs/demo.png
"""
from __future__ import annotations

import argparse
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

CHELSEA = ROOT / "examples" / "chelsea.png"


def _panel(image: np.ndarray, seg_map: np.ndarray, title: str) -> Image.Image:
    from ovseg.io.viz import overlay

    pic = overlay(image, seg_map.astype(np.int32), no_class=None).convert("RGB")  # every id a segment
    panel = Image.new("RGB", (pic.width, pic.height + 22), (0, 0, 0))  # the title above, not over the legend
    panel.paste(pic, (0, 22))
    ImageDraw.Draw(panel).text((6, 4), title, fill=(255, 255, 255))
    return panel


def real_lite0(out: Path) -> dict:
    import ovseg
    from ovseg.pipeline import Models, Segmenter

    image = np.array(Image.open(CHELSEA).convert("RGB"))
    raw = Models(backbone=ovseg.create_backbone("efficientnet-lite0", device="cpu", conditioning="raw"))
    before = Segmenter(backbone="efficientnet-lite0", alpha=5.0, tau=0.5, min_area=0.0, device="cpu", cache=False,
                       models=raw).segment(image)
    now = Segmenter(backbone="efficientnet-lite0", device="cpu", cache=False).segment(image)
    k0, k1 = len(before.segments), len(now.segments)
    left = _panel(image, before.segment_map, f"before: alpha 5, tau 0.5, raw stage 5: {k0} segments")
    s = now.settings
    right = _panel(image, now.segment_map, f"default: alpha auto ({s['alpha_chosen']:g}), tau {s['tau']:g}, "
                                           f"min_area {s['min_area']:g}: {k1} segments")
    canvas = Image.new("RGB", (left.width + right.width + 8, max(left.height, right.height)), (255, 255, 255))
    canvas.paste(left, (0, 0))
    canvas.paste(right, (left.width + 8, 0))
    canvas.quantize(256, dither=Image.Dither.NONE).save(out, optimize=True)
    return {"before": k0, "default": k1, "alpha_chosen": s["alpha_chosen"]}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def demo(out: Path) -> str:
    from playwright.sync_api import sync_playwright

    from ovseg import Segmenter
    from ovseg.demo import build_app, launch_app
    from ovseg.testing import make_tiny_clip_weights

    clip = make_tiny_clip_weights(Path(tempfile.mkdtemp(prefix="ovseg-clip-")) / "clip")  # random: names mean nothing
    segmenter = Segmenter(backbone="efficientnet-lite0", clip_weights=clip, device="cpu", cache=False)
    app = build_app(segmenter, max_tau=1.0)
    port = _free_port()
    launch_app(app, host="127.0.0.1", port=port, block=False, quiet=True)
    browser_path = next(p for p in (shutil.which(n) for n in ("chromium", "chromium-browser")) if p)
    flags = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=browser_path, headless=True, args=flags)
            page = browser.new_page(viewport={"width": 1200, "height": 760})
            page.set_default_timeout(300_000)
            page.goto(f"http://127.0.0.1:{port}/")
            page.locator("#ovseg-image input[type=file]").set_input_files(str(CHELSEA))
            page.locator("#ovseg-image img").wait_for()
            page.locator("#ovseg-segments-only input").check()
            page.locator("#ovseg-run").click()
            page.locator("#ovseg-overlay img").wait_for()
            page.wait_for_function("document.querySelector('#ovseg-status').innerText.includes('at tau = 0.40')")
            page.locator("#ovseg-tau input[type=range]").fill("0.5")  # one slider move
            page.wait_for_function("document.querySelector('#ovseg-status').innerText.includes('at tau = 0.50')")
            status = page.locator("#ovseg-status").inner_text()
            page.evaluate("window.scrollTo(0, 0)")
            time.sleep(0.5)
            shot = Path(tempfile.mkdtemp()) / "demo.png"
            page.screenshot(path=str(shot))
            browser.close()
    finally:
        app.close()
    with Image.open(shot) as im:
        im.convert("RGB").quantize(256, dither=Image.Dither.NONE).save(out, optimize=True)
    return status


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--demo", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "docs"))
    args = ap.parse_args(argv)
    print(real_lite0(Path(args.out) / "real-lite0.png"))
    if args.demo:
        print(demo(Path(args.out) / "demo.png"))


if __name__ == "__main__":
    main()
