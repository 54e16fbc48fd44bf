"""ovseg.distributed (--engine ray) on a local Ray with tiny checkpoints.

The Ray tests skip when the extra is not installed (pip install "ovseg[ray]"); the packaging
tests (no ray import for --help, the install hint) run either way.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from ovseg.cli import main

CLASSES = "cat,dog,sky"
FAST = dict(resolution=64, refine_iterations=2, cache=False, device="cpu", batch_size=2)
SUFFIXES = (".png", ".overlay.png", ".json")


# -- packaging: no ray needed ------------------------------------------------------------------

def test_help_never_imports_ray():
    code = ("import sys\nfrom click.testing import CliRunner\nfrom ovseg.cli import main\n"
            "for args in (['--help'], ['label', '--help'], ['segment', '--help']):\n"
            "    r = CliRunner().invoke(main, args)\n    assert r.exit_code == 0, r.output\n"
            "import ovseg, ovseg.pipeline\n"
            "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_engine_ray_without_ray_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    r = CliRunner().invoke(main, ["segment", str(tmp_path / "a.png"), "--engine", "ray",
                                  "--out", str(tmp_path / "out")])
    assert r.exit_code == 1
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and 'pip install "ovseg[ray]"' in lines[0], r.output


def test_parquet_format_needs_the_ray_engine(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    r = CliRunner().invoke(main, ["segment", str(tmp_path / "a.png"), "--format", "parquet",
                                  "--out", str(tmp_path / "out")])
    assert r.exit_code == 2 and "--engine ray" in r.output


def test_skip_rule_is_the_local_engines_record_status():
    """The Ray engine skips an image by `ovseg.pipeline._records.record_status` on its JSON text: the same
    record (settings, vocabulary, output format) as the local engine's `run_record`."""
    from ovseg.pipeline._records import record_status
    from ovseg.pipeline import Segmenter

    seg = Segmenter(cache=False)
    record = seg.run_record(seg.vocabulary(["cat", "dog"]))
    text = json.dumps({"record": record}, default=str)
    assert record_status(text, record) == "current"
    assert record_status(text, seg.run_record(seg.vocabulary(["cat", "dog", "sky"]))) == "changed"
    assert record_status(text, Segmenter(cache=False, tau=0.4).run_record(seg.vocabulary(["cat", "dog"]))) == "changed"
    assert record_status(text, seg.run_record(None)) == "changed"  # labelled vs segmented
    assert record_status(None, record) == "missing"  # no file
    assert record_status("{half a fi", record) == "missing"  # damaged file


# -- on a local Ray ----------------------------------------------------------------------------

def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def ray_tmp():
    """Ray's temp folder for this module (RAY_TMPDIR, short: Ray's socket paths must fit in 107
    bytes), holding a stale `ray_current_cluster` as `ray start` leaves it once its head has
    died; RAY_ADDRESS unset. Yields the stale address."""
    root = Path(tempfile.mkdtemp(prefix="ovseg-ray-"))
    stale = f"127.0.0.1:{_closed_port()}"
    (root / "ray").mkdir()
    (root / "ray" / "ray_current_cluster").write_text(stale)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_TMPDIR", str(root))
        mp.delenv("RAY_ADDRESS", raising=False)
        yield stale
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_local(ray_tmp):
    """One local Ray for the module, started by the engine's own rule (no address, no
    RAY_ADDRESS): a fresh Ray despite the stale cluster file. The CLI tests reuse it."""
    ray = pytest.importorskip("ray", reason='the Ray engine needs the extra: pip install "ovseg[ray]"')
    pytest.importorskip("pyarrow")
    pytest.importorskip("pandas")
    from ovseg.distributed import _connect

    _connect.connect(None, verbose=True, num_cpus=2, object_store_memory=200 * 2**20,
                     log_to_driver=False, configure_logging=False)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    yield ray
    ray.shutdown()


def test_no_address_starts_a_fresh_local_ray_not_the_stale_cluster(ray_local, ray_tmp):
    gcs = ray_local.get_runtime_context().gcs_address
    assert gcs and gcs.rsplit(":", 1)[1] != ray_tmp.rsplit(":", 1)[1]
    assert ray_local.cluster_resources().get("CPU") == 2  # ours (num_cpus=2), not a joined one
    cluster_file = Path(os.environ["RAY_TMPDIR"]) / "ray" / "ray_current_cluster"
    assert cluster_file.read_text() == ray_tmp  # left as it was


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Six inputs: RGB PNG, JPEG, RGBA (alpha on white), 16-bit grey, palette, and a corrupt file."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:48, 0:64]
    base = np.stack([xx * 4, yy * 5, (xx + yy) * 2], -1).astype(np.uint8)
    Image.fromarray(base).save(root / "a_rgb.png")
    Image.fromarray(base[:40, :56]).save(root / "b_photo.jpg", quality=90)
    rgba = np.concatenate([base, (xx * 4).astype(np.uint8)[..., None]], -1)
    Image.fromarray(rgba, "RGBA").save(root / "c_alpha.png")
    Image.fromarray((yy * 1300 + xx * 100).astype(np.uint16)).save(root / "d_grey16.png")
    Image.fromarray(rng.integers(0, 255, (32, 40, 3), dtype=np.uint8)).convert("P").save(root / "e_palette.png")
    (root / "f_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 4)
    return root


@pytest.fixture(scope="module")
def config(tiny_weights):
    from ovseg.pipeline import SegmenterConfig

    return SegmenterConfig(**FAST, **tiny_weights)


@pytest.fixture(scope="module")
def local_out(images, config, tmp_path_factory):
    """The local engine's outputs, with one torch thread as each CPU actor has (Ray sets
    OMP_NUM_THREADS to the actor's CPUs): CPU float sums depend on the thread count."""
    import torch

    from ovseg.pipeline import Segmenter

    out = tmp_path_factory.mktemp("local")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        summary = Segmenter(config).process_files([images], out, classes=CLASSES, progress=False)
    finally:
        torch.set_num_threads(threads)
    assert len(summary.done) == 5 and len(summary.failed) == 1
    return out


def _files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def _statuses(records) -> dict[str, str]:
    return {Path(r["path"]).name: r["status"] for r in records.iter_rows()}


def test_files_identical_to_the_local_engine_with_a_killed_worker(ray_local, images, config,
                                                                  local_out, tmp_path):
    from ovseg.distributed import label_dataset
    from ovseg.distributed._stages import CRASH_ONCE_ENV

    marker = tmp_path.parent / f"{tmp_path.name}.crashed"
    crash = {"runtime_env": {"env_vars": {CRASH_ONCE_ENV: str(marker)}}}
    records = label_dataset([images], CLASSES, out=tmp_path, config=config, workers=1,
                            ray_remote_args=crash)
    assert marker.exists()  # the worker really died (os._exit) on its first batch; Ray redid it
    statuses = _statuses(records)
    assert statuses == {**{n: "done" for n in ("a_rgb.png", "b_photo.jpg", "c_alpha.png",
                                               "d_grey16.png", "e_palette.png")},
                        "f_broken.png": "failed"}
    broken = [r for r in records.iter_rows() if r["status"] == "failed"][0]
    assert "f_broken.png" in broken["error"] and "cannot read image" in broken["error"]
    ours, theirs = _files(tmp_path), _files(local_out)
    assert len(theirs) == 15 and sorted(ours) == sorted(theirs)  # no duplicate, no temporary file
    for name in theirs:
        assert ours[name] == theirs[name], name

    # a re-run does no work: everything current is skipped, no file is touched
    mtimes = {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    again = _statuses(label_dataset([images], CLASSES, out=tmp_path, config=config, workers=1))
    assert [s for n, s in again.items() if n != "f_broken.png"] == ["skipped"] * 5
    assert again["f_broken.png"] == "failed"  # still unreadable, still reported
    assert {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == mtimes


def test_parquet_table_and_back_to_files(ray_local, images, config, local_out, tmp_path):
    import pandas as pd
    import pyarrow.parquet as pq

    from ovseg.distributed import label_dataset, parquet_to_files

    table_dir = tmp_path / "table"
    label_dataset([images], CLASSES, out=table_dir, config=config, format="parquet", workers=1)
    table = pq.read_table(table_dir)
    frame = pd.read_parquet(table_dir)
    assert table.num_rows == len(frame) == 6
    for column in ("path", "width", "height", "settings", "vocabulary", "segments", "error"):
        assert column in frame.columns
    rows = {Path(r["path"]).name: r for r in table.to_pylist()}
    assert rows["f_broken.png"]["error"] and rows["f_broken.png"]["status"] == "failed"
    for name, row in rows.items():
        if name == "f_broken.png":
            continue
        assert row["error"] is None and row["vocabulary"] == CLASSES.split(",")
        ref = json.loads((local_out / f"{Path(name).stem}.labels.json").read_text())
        assert (row["height"], row["width"]) == (ref["height"], ref["width"])
        assert json.loads(row["settings"]) == ref["settings"]
        got = [(s["id"], s["class_name"], s["score"], s["area"], s["bbox"],
                {"size": s["rle_size"], "counts": s["rle_counts"]}) for s in row["segments"]]
        want = [(s["id"], s["class_name"], s["score"], s["area"], s["bbox"], s["segmentation"])
                for s in ref["segments"]]
        assert got == want

    files = tmp_path / "files"
    written = parquet_to_files(table_dir, files)
    assert len(written) == 5
    ours, theirs = _files(files), _files(local_out)
    assert sorted(ours) == sorted(theirs)
    for name in theirs:
        assert ours[name] == theirs[name], name

    # a re-run writes no new Parquet file
    before = sorted(p.name for p in table_dir.iterdir())
    again = label_dataset([images], CLASSES, out=table_dir, config=config, format="parquet", workers=1)
    assert sorted(_statuses(again).values()).count("skipped") == 5
    assert sorted(p.name for p in table_dir.iterdir()) == before


def _local_cli(args, out, threads=None):
    """The local engine through the CLI, at `threads` torch threads (None: torch's default)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        r = CliRunner().invoke(main, [*args, "--out", str(out)])
    finally:
        torch.set_num_threads(before)
    assert r.exit_code == 0, r.output
    return _files(out)


def test_cli_engine_ray_matches_engine_local(ray_local, images, tiny_weights, tmp_path):
    """Byte-identical JSON scores, not only masks: `label`, and CLIP inputs large enough (128 px)
    that torch splits its convolutions across threads, so the thread count shows in the scores
    (at 64 px, one thread and two give the same bytes, which let the mismatch through before).
    The actor sets its torch thread count (its CPUs: 1) before every batch, so its bytes equal a
    one-thread local run's, also after the module's other Ray jobs (docs/scale-out.md); a
    default-thread local run is equal but for scores within 1e-5."""
    good = [str(images / n) for n in ("a_rgb.png", "c_alpha.png")]
    args = ["label", *good, "-c", CLASSES, "--weights", tiny_weights["weights"], "--clip-weights",
            tiny_weights["clip_weights"], "--resolution", "64", "--clip-resolution", "128",
            "--refine-iterations", "2", "--no-cache", "--device", "cpu"]
    r = CliRunner().invoke(main, [*args, "--engine", "ray", "--workers", "1", "--out", str(tmp_path / "ray")])
    assert r.exit_code == 0, r.output
    assert "labelled 2 image(s)" in r.output
    ours = _files(tmp_path / "ray")
    one = _local_cli(args, tmp_path / "local1", threads=1)  # as a 1-CPU actor should run
    default = _local_cli(args, tmp_path / "local")  # torch's default thread count (one per core)
    for local in (one, default):
        assert sorted(local) == sorted(ours)
        for name in (n for n in ours if n.endswith(".json")):
            a, b = json.loads(ours[name]), json.loads(local[name])
            assert [(s["class_name"], s["area"], s["segmentation"]) for s in a["segments"]] == \
                [(s["class_name"], s["area"], s["segmentation"]) for s in b["segments"]]
            assert np.allclose([s["score"] for s in a["segments"]],
                               [s["score"] for s in b["segments"]], rtol=0, atol=1e-5)
        for name in (n for n in ours if n.endswith(".png")):
            assert ours[name] == local[name], name
    assert ours == one  # byte for byte: the actor runs its CPUs' thread count (1), set per batch
    broken = CliRunner().invoke(main, ["label", str(images / "f_broken.png"), *args[3:], "--engine",
                                       "ray", "--out", str(tmp_path / "ray")])
    assert broken.exit_code == 1 and "f_broken.png" in broken.output


def test_reruns_leave_no_stale_output_sets_on_ray(ray_local, config, tmp_path):
    """Issue 22 item 13 with --engine ray: a rename of an image's outputs (`cat.*` -> `cat.png.*`
    once `cat.jpg` joins it) removes the old set, as the local engine does."""
    from ovseg.distributed import segment_dataset

    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    yy, xx = np.mgrid[0:32, 0:40]
    Image.fromarray(np.stack([xx * 6, yy * 7, (xx + yy) * 3], -1).astype(np.uint8)).save(src / "cat.png")
    segment_dataset([src], out=out, config=config)
    assert sorted(p.name for p in out.glob("*.json")) == ["cat.segments.json"]
    Image.fromarray(np.full((32, 40, 3), 90, np.uint8)).save(src / "cat.jpg")
    statuses = _statuses(segment_dataset([src], out=out, config=config))
    assert statuses == {"cat.png": "done", "cat.jpg": "done"}  # cat.png redone under its new name
    assert sorted(p.name for p in out.glob("*.json")) == ["cat.jpg.segments.json", "cat.png.segments.json"]
    assert not list(out.glob("cat.segments*"))  # the old set is gone, all three files


@pytest.mark.parametrize("how", ["--ray-address", "RAY_ADDRESS"])
def test_a_named_cluster_that_does_not_answer_fails_fast(how, ray_tmp, tiny_weights, images,
                                                         tmp_path, monkeypatch):
    """A dead head (closed port): exit 2 within --ray-timeout, one line naming the address and
    what to do. ("auto" is Ray's lookup: a running GCS process of this machine, any user's, comes
    before the cluster file, so it is not tested on a shared machine.)"""
    pytest.importorskip("ray", reason='the Ray engine needs the extra: pip install "ovseg[ray]"')
    import ovseg.distributed._connect  # noqa: F401  imported before the clock starts
    import ovseg.pipeline  # noqa: F401

    port = _closed_port()
    args = []
    if how == "--ray-address":
        args = ["--ray-address", f"127.0.0.1:{port}"]
    else:
        monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    start = time.monotonic()
    r = CliRunner().invoke(main, ["segment", str(images / "a_rgb.png"), "--engine", "ray",
                                  "--ray-timeout", "2", "--weights", tiny_weights["weights"],
                                  "--out", str(tmp_path / "out"), *args])
    elapsed = time.monotonic() - start
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 2, r.output
    assert len(lines) == 1 and "Traceback" not in r.output, r.output
    assert f"{how}=127.0.0.1:{port}" in lines[0] and "did not answer within 2 s" in lines[0], lines[0]
    assert "RAY_ADDRESS unset" in lines[0]  # what to do
    assert elapsed < 2 + 6, elapsed  # the bound, plus the CLI's own checks on a loaded machine


@pytest.mark.parametrize("init", ["hangs", "wants a token"])
def test_a_cluster_that_accepts_but_does_not_join_fails_in_time(init, monkeypatch):
    """The port answers (a listening socket) but ray.init hangs, or Ray refuses for want of a
    token: ClusterUnreachable within the bound, saying which."""
    pytest.importorskip("ray", reason='the Ray engine needs the extra: pip install "ovseg[ray]"')
    import threading

    from ovseg.distributed import ClusterUnreachable, _connect

    class AuthenticationError(Exception):  # as ray.exceptions names it
        pass

    release = threading.Event()

    def fake_init(**kwargs):
        if init == "hangs":
            release.wait(30)
            return
        try:
            raise AuthenticationError("RPC error: InvalidAuthToken")
        except AuthenticationError as err:
            raise ConnectionError("Failed to connect to Ray cluster") from err

    monkeypatch.setattr(_connect.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(_connect.ray, "init", fake_init)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = f"127.0.0.1:{server.getsockname()[1]}"
        start = time.monotonic()
        with pytest.raises(ClusterUnreachable) as err:
            _connect.connect(address, timeout=0.5, verbose=True)
        elapsed = time.monotonic() - start
    release.set()
    message = str(err.value)
    assert address in message and "\n" not in message
    if init == "hangs":
        assert "did not complete the connection within 0.5 s" in message and elapsed < 3
    else:
        assert "authentication token" in message and "RAY_AUTH_TOKEN" in message


def test_ctrl_c_while_connecting_exits_130(ray_tmp, tiny_weights, images, tmp_path, monkeypatch):
    pytest.importorskip("ray", reason='the Ray engine needs the extra: pip install "ovseg[ray]"')
    from ovseg.distributed import _connect

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(_connect, "_probe", interrupted)
    r = CliRunner().invoke(main, ["segment", str(images / "a_rgb.png"), "--engine", "ray",
                                  "--ray-address", "127.0.0.1:1", "--weights", tiny_weights["weights"],
                                  "--out", str(tmp_path / "out")])
    assert r.exit_code == 130 and "interrupted" in r.output, r.output


def test_uri_and_bytes_inputs_decode_as_read_image(images):
    pytest.importorskip("pyarrow", reason='URIs need the extra: pip install "ovseg[ray]"')
    from ovseg import io as _io
    from ovseg.distributed import _sources

    uri = images.resolve().as_uri()  # file:///..., read through pyarrow.fs as s3:// would be
    listed = _sources.list_inputs([uri])
    local = _sources.list_inputs([images])
    assert [s for _, s in listed] == [s for _, s in local] and len(listed) == 6
    for (source, _), (path, _) in zip(listed, local):
        if path.endswith("f_broken.png"):
            with pytest.raises(_io.ImageReadError, match="f_broken.png"):
                _sources.decode(source, None, _io.DEFAULT_MAX_PIXELS)
            continue
        want, size = _io.read_image(path)
        for got, got_size in (_sources.decode(source, None, _io.DEFAULT_MAX_PIXELS),
                              _sources.decode(path, Path(path).read_bytes(), 1000)):
            if got.size == want.size:
                assert np.array_equal(got, want) and got_size == size
            else:  # max_pixels=1000: scaled down by read_image's rule, source size kept
                assert got.shape[0] * got.shape[1] <= 1000 and got_size == size


def test_kway_on_ray_records_method_and_k(ray_local, images, config, tmp_path):
    """method="kway" with a fixed K on the Ray engine: Parquet rows and the files written from
    them record the method, k and the K chosen, and equal the local engine's segments."""
    import dataclasses

    import pyarrow.parquet as pq
    import torch

    from ovseg.distributed import segment_dataset
    from ovseg.pipeline import Segmenter

    kway = dataclasses.replace(config, method="kway", k=3)
    table_dir = tmp_path / "table"
    segment_dataset([images], out=table_dir, config=kway, format="parquet", workers=1)
    rows = {Path(r["path"]).name: r for r in pq.read_table(table_dir).to_pylist()}
    local = tmp_path / "local"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the CPU actor (see local_out)
    try:
        Segmenter(kway).process_files([images], local, progress=False)
    finally:
        torch.set_num_threads(threads)
    done = [name for name, row in rows.items() if row["error"] is None]
    assert len(done) == 5
    for name in done:
        settings = json.loads(rows[name]["settings"])
        assert settings["method"] == "kway" and settings["k"] == 3 and 1 <= settings["k_chosen"] <= 3
        ref = json.loads((local / f"{Path(name).stem}.segments.json").read_text())
        assert settings == ref["settings"]
        assert [s["rle_counts"] for s in rows[name]["segments"]] == [s["segmentation"]["counts"] for s in ref["segments"]]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools on numpy 2
@pytest.mark.parametrize("fmt, export", [("parquet", "coco"), ("files", "yolo")])
def test_engine_ray_then_export(ray_local, images, tiny_weights, tmp_path, fmt, export):
    """`--export` after an --engine ray run: from the Parquet rows, and from the files (issue 31)."""
    good = [str(images / n) for n in ("a_rgb.png", "c_alpha.png")]
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["label", *good, "-c", CLASSES, "--weights", tiny_weights["weights"],
                                  "--clip-weights", tiny_weights["clip_weights"], "--resolution", "64",
                                  "--refine-iterations", "2", "--no-cache", "--device", "cpu", "--engine", "ray",
                                  "--workers", "1", "--format", fmt, "--export", export, "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "exported" in r.output and "of 2 image(s)" in r.output
    if export == "coco":
        coco = pytest.importorskip("pycocotools.coco", reason='needs pip install -e ".[test]"')
        data = coco.COCO(str(out / "coco" / "instances.json"))
        assert sorted(i["file_name"] for i in data.imgs.values()) == ["a_rgb.png", "c_alpha.png"]
        assert [c["name"] for c in data.dataset["categories"]] == CLASSES.split(",")
    else:
        assert sorted(p.name for p in (out / "yolo" / "labels").iterdir()) == ["a_rgb.txt", "c_alpha.txt"]


def test_stderr_lines_held_back_and_filtered():
    """What Ray's C++ core writes on file descriptor 2 during ray.init passes through a filter that
    drops only its "Set ray log level" line (issue 31 item 8)."""
    pytest.importorskip("ray", reason='the Ray engine needs the extra: pip install "ovseg[ray]"')
    code = ("import os, sys\nfrom ovseg.distributed._connect import without_stderr_lines\n"
            "with without_stderr_lines('Set ray log level'):\n"
            "    os.write(2, b'[x I 1 1] logging.cc:303: Set ray log level from environment variable X to 3\\n')\n"
            "    os.write(2, b'kept from C\\n')\n    print('kept from Python', file=sys.stderr)\n"
            "print('after', file=sys.stderr)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       cwd=Path(__file__).resolve().parents[2])
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines()[-3:] == ["kept from C", "kept from Python", "after"] and "logging.cc" not in r.stderr


@pytest.mark.slow
def test_engine_ray_prints_no_ray_log_lines(tiny_weights, images, tmp_path):
    """A whole `--engine ray` run in a fresh process (a local Ray started and stopped for it):
    stderr holds ovseg's own lines only, unless --verbose."""
    pytest.importorskip("ray", reason='the Ray engine needs the extra: pip install "ovseg[ray]"')
    args = [sys.executable, "-m", "ovseg", "segment", str(images / "a_rgb.png"), "--weights", tiny_weights["weights"],
            "--resolution", "64", "--refine-iterations", "1", "--no-cache", "--device", "cpu", "--engine", "ray",
            "--out", str(tmp_path / "out")]
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_BACKEND_LOG_LEVEL")}
    r = subprocess.run(args, capture_output=True, text=True, timeout=300, env={**env, "PYTHONPATH": str(
        Path(__file__).resolve().parents[2])}, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "logging.cc" not in r.stderr and r.stderr.strip().splitlines() == [
        f"segmented 1 image(s) into {tmp_path / 'out'} (files, Ray, 1 worker(s))"], r.stderr
