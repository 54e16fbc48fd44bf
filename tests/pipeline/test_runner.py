"""The file runner (ovseg.pipeline._runner): same bytes overlapped as serial, input order, bounded
queues, per-image failures, nothing half-written after Ctrl-C, and the ONE retry policy of the local
and the Ray engine (`run_batch`, `write_one`). Tiny checkpoints, CPU."""
import json
import threading
import time

import numpy as np
import pytest
from PIL import Image

from ovseg.pipeline import ModelLoadError, Models, Segmenter, SegmenterConfig
from ovseg.pipeline._runner import OrderedWorker, prefetch
from ovseg.settings.checks import SettingError
from ovseg.settings.weights import WeightsNotFoundError


# ---- the generic helpers ------------------------------------------------------------------------
def test_prefetch_keeps_input_order_and_reports_errors_per_item():
    def slow(i):
        time.sleep(0.02 * ((7 * i) % 5))  # later items often finish first
        if i == 3:
            raise ValueError("bad 3")
        return i * i

    for enabled in (True, False):
        out = list(prefetch(slow, range(8), workers=3, depth=4, enabled=enabled))
        assert [item for item, _, _ in out] == list(range(8))
        assert [v for _, v, e in out if e is None] == [i * i for i in range(8) if i != 3]
        assert [str(e) for _, _, e in out if e is not None] == ["bad 3"]


def test_prefetch_reads_at_most_depth_ahead():
    started = []
    gen = prefetch(lambda i: started.append(i) or i, range(100), workers=2, depth=3)
    assert next(gen)[0] == 0
    time.sleep(0.2)
    assert len(started) <= 1 + 3  # the one consumed and a window of 3
    gen.close()


def test_ordered_worker_order_bound_and_errors():
    done, running = [], threading.Event()

    def work(i):
        running.set()
        time.sleep(0.005)
        done.append(i)

    with OrderedWorker(work, depth=2) as worker:
        for i in range(20):
            worker.submit(i)
            assert worker._queue.qsize() <= 2
    assert done == list(range(20))

    def failing(i):
        if i == 2:
            raise OSError("disk full")

    worker = OrderedWorker(failing, depth=1)
    with pytest.raises(OSError, match="disk full"):
        for i in range(50):
            worker.submit(i)
        worker.close()
    worker.close(cancel=True)


def test_ordered_worker_drops_unstarted_items_on_exception():
    done, gate = [], threading.Event()

    def work(i):
        gate.wait(1)
        done.append(i)

    with pytest.raises(KeyboardInterrupt):
        with OrderedWorker(work, depth=10) as worker:
            for i in range(5):
                worker.submit(i)
            gate.set()
            raise KeyboardInterrupt
    assert done == list(range(len(done))) and len(done) < 5  # the one under way finished, the rest dropped


# ---- the pipeline -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def base(tiny_weights, tmp_path_factory):
    seg = Segmenter(resolution=64, refine_iterations=2, cache=False, **tiny_weights)
    seg.backbone, seg.labeler  # load once; the runs below share the models
    return seg


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(40, 56), (64, 64), (30, 90), (64, 64), (50, 40), (64, 64), (20, 20),
                                (80, 60), (64, 64), (33, 47)]):
        img = np.zeros((h, w, 3), np.uint8)
        img[: h // 2] = rng.integers(0, 255, 3)
        img[h // 2 :] = rng.integers(0, 255, 3)
        img = np.clip(img.astype(int) + rng.integers(-10, 11, img.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(root / f"im{i:02d}.png")
    (root / "im04b.jpg").write_bytes(b"\xff\xd8 not an image")  # fails to decode, in the middle
    return root


def _run(base, folder, out, classes="cat,sky,grass", **settings):
    seg = Segmenter(base.config, models=base.models, **settings)
    summary = seg.process_files([folder], out, classes=classes, progress=False)
    files = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    return summary, files


def _pixels(blob: bytes) -> np.ndarray:
    import io

    return np.asarray(Image.open(io.BytesIO(blob)))


def test_overlapped_outputs_are_the_serial_bytes(base, folder, tmp_path):
    runs = {}
    for classes, batch in [("cat,sky,grass", 1), ("cat,sky,grass", 8), (None, 8)]:
        for overlap in (False, True):
            runs[classes, batch, overlap] = _run(base, folder, tmp_path / f"{classes}-{batch}-{overlap}", classes,
                                                 batch_size=batch, overlap=overlap)
    serial_summary, serial = runs["cat,sky,grass", 1, False]
    assert len(serial) == 3 * 10 and [p.name for p, _ in serial_summary.failed] == ["im04b.jpg"]
    assert [p.name for p in serial_summary.done] == [f"im{i:02d}.png" for i in range(10)]
    for classes, batch in [("cat,sky,grass", 1), ("cat,sky,grass", 8), (None, 8)]:
        # threads on vs off: the same bytes, the same summary, in the same order
        (s_off, f_off), (s_on, f_on) = runs[classes, batch, False], runs[classes, batch, True]
        assert f_on.keys() == f_off.keys() and len(f_on) == 30
        for name in f_off:
            assert f_on[name] == f_off[name], (classes, batch, name)
        assert (s_on.done, s_on.failed, s_on.skipped) == (s_off.done, s_off.failed, s_off.skipped)
    # batch 1 vs 8 is NOT byte-identical on CPU: batched kernels (the UNet's, CLIP's) add in
    # another order, ~1e-7 in the features, which moves PAMR/argmax near-ties at a few pixels of
    # these tiny random models and ~1e-4 in softmax(100 cos) scores (docs/benchmarks-pipeline.md).
    # What holds: the same files and summary, and nearly the same maps.
    batched_summary, batched = runs["cat,sky,grass", 8, True]
    assert batched.keys() == serial.keys() and batched_summary.done == serial_summary.done
    same = total = 0
    for name in serial:
        if name.endswith(".labels.png"):
            a, b = _pixels(batched[name]), _pixels(serial[name])
            same, total = same + int((a == b).sum()), total + a.size
    assert same / total > 0.9, same / total


def test_ctrl_c_leaves_no_half_written_file(base, folder, tmp_path, monkeypatch):
    seg = Segmenter(base.config, models=base.models, batch_size=2)
    real, calls = seg.run, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(seg, "run", interrupted)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        seg.process_files([folder], out, classes="cat,sky", progress=False)
    names = sorted(p.name for p in out.iterdir())
    assert not [n for n in names if n.endswith(".tmp") or n.startswith(".")]
    stems = {n.split(".")[0] for n in names}
    for stem in stems:  # an image has its JSON (written last) only when its PNGs are whole
        if (out / f"{stem}.labels.json").exists():
            assert (out / f"{stem}.labels.png").exists() and (out / f"{stem}.labels.overlay.png").exists()
        for n in names:
            if n.startswith(stem) and n.endswith(".png"):
                Image.open(out / n).load()  # a whole PNG
    # a rerun finishes the rest and skips what is done
    summary = Segmenter(base.config, models=base.models, batch_size=2)
    again = summary.process_files([folder], out, classes="cat,sky", progress=False)
    assert len(again.done) + len(again.skipped) == 10 and len(again.skipped) >= 2



def test_overlap_is_on_by_default(base, folder, tmp_path, monkeypatch):
    import ovseg.pipeline._runner as runner

    seen = []
    real = runner.prefetch

    def spy(*args, enabled=True, **kwargs):
        seen.append(enabled)
        return real(*args, enabled=enabled, **kwargs)

    monkeypatch.setattr(runner, "prefetch", spy)
    assert Segmenter().config.overlap is True
    _run(base, folder, tmp_path / "default")
    _run(base, folder, tmp_path / "serial", overlap=False)
    assert seen == [True, False]


# -- the ONE retry policy for the local and the Ray engine (run_batch, write_one; was test_retry_policy.py):
# settings errors, missing weights, unloadable models, fp16 overflow and MemoryError stop the run; any other
# error while processing fails that image only; any error but MemoryError while writing fails that image only.
# The Ray side runs the actor's code (`_stages.Segment`) in this process, so a fault can be injected.
RETRY_FAST = dict(resolution=64, refine_iterations=1, cache=False, device="cpu", batch_size=2, overlap=False)
PER_IMAGE = [TypeError("bad type"), ValueError("bad value"), RuntimeError("bad run"), IndexError("bad index"),
             OSError("bad io"), KeyError("bad key")]
STOPS = [SettingError("tau", "bad setting"), WeightsNotFoundError("no weights"), ModelLoadError("no model"),
         FloatingPointError("fp16 overflow"), MemoryError()]
WRITE = [PermissionError("read-only"), ValueError("cannot encode"), RuntimeError("disk said no")]


def _retry_picture(seed: int) -> np.ndarray:
    img = np.zeros((24, 32, 3), np.uint8)
    img[:, 16:] = (200, 40, 40)
    return np.clip(img.astype(int) + np.random.default_rng(seed).integers(-9, 10, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def retry_config(tiny_weights):
    return SegmenterConfig(**RETRY_FAST, weights=tiny_weights["weights"])


@pytest.fixture(scope="module")
def retry_models(retry_config):
    return Models(retry_config)


@pytest.fixture
def retry_folder(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        Image.fromarray(_retry_picture(i)).save(src / f"p{i}.png")
    return src


def _faulty(seg, monkeypatch, error, *, only=1):
    """seg.segment_maps raises `error` for image p{only} (None: for every image)."""
    real = seg.segment_maps

    def segment_maps(arrays, prepared):
        if only is None or any((a == _retry_picture(only)).all() for a in arrays):
            raise error
        return real(arrays, prepared)

    monkeypatch.setattr(seg, "segment_maps", segment_maps)


@pytest.mark.parametrize("error", PER_IMAGE, ids=lambda e: type(e).__name__)
def test_local_a_per_image_error_fails_that_image(error, retry_config, retry_models, retry_folder, tmp_path, monkeypatch):
    seg = Segmenter(retry_config, models=retry_models)
    _faulty(seg, monkeypatch, error)
    summary = seg.process_files(retry_folder, tmp_path / "out", progress=False)
    assert [p.name for p in summary.done] == ["p0.png", "p2.png"]
    assert [p.name for p, _ in summary.failed] == ["p1.png"] and type(error).__name__ in summary.failed[0][1]


@pytest.mark.parametrize("error", STOPS, ids=lambda e: type(e).__name__)
def test_local_a_run_wide_error_stops_the_run(error, retry_config, retry_models, retry_folder, tmp_path, monkeypatch):
    seg = Segmenter(retry_config, models=retry_models)
    _faulty(seg, monkeypatch, error)
    with pytest.raises(type(error)):
        seg.process_files(retry_folder, tmp_path / "out", progress=False)


@pytest.mark.parametrize("error", WRITE, ids=lambda e: type(e).__name__)
def test_local_a_write_error_fails_that_image(error, retry_config, retry_models, retry_folder, tmp_path, monkeypatch):
    seg = Segmenter(retry_config, models=retry_models)
    real = seg.write_outputs

    def write(result, outs):
        if outs["json"].name.startswith("p1."):
            raise error
        real(result, outs)

    monkeypatch.setattr(seg, "write_outputs", write)
    summary = seg.process_files(retry_folder, tmp_path / "out", progress=False)
    assert [p.name for p in summary.done] == ["p0.png", "p2.png"]
    assert [p.name for p, _ in summary.failed] == ["p1.png"] and "cannot write outputs" in summary.failed[0][1]


def test_local_a_bad_setting_stops_before_any_model(tmp_path, retry_folder, no_models):
    with pytest.raises(SettingError, match="device"):  # at construction, or at the latest here
        Segmenter(SegmenterConfig(**{**RETRY_FAST, "device": "cuda:99"})).process_files(retry_folder, tmp_path / "out",
                                                                                   progress=False)
    retry_config = SegmenterConfig(**{**RETRY_FAST, "dtype": "float16"})  # on the CPU: found by validate(), torch
    with pytest.raises(SettingError, match="dtype"):
        Segmenter(retry_config).process_files(retry_folder, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()  # the run stopped before any image or output


def _actor(retry_config, retry_models, out, monkeypatch, error=None, write_error=None):
    pytest.importorskip("pyarrow")
    from ovseg.distributed import _stages

    actor = _stages.Segment(config=retry_config, vocab=None, out=str(out), fmt="files")
    actor.segmenter = Segmenter(retry_config, models=retry_models)  # the shared tiny models: no reload
    if error is not None:
        _faulty(actor.segmenter, monkeypatch, error)
    if write_error is not None:
        real = actor._write

        def write(result, stem):
            if stem == "p1":
                raise write_error
            real(result, stem)

        monkeypatch.setattr(actor, "_write", write)
    return actor


def _decoded(retry_folder):
    import pyarrow as pa

    from ovseg.distributed import _stages

    rows = []
    for i in range(3):
        array = _retry_picture(i)
        rows.append({"path": str(retry_folder / f"p{i}.png"), "stem": f"p{i}", "status": "todo", "error": None,
                     "image": array.tobytes(), "height": 24, "width": 32, "source_height": 24,
                     "source_width": 32})
    return pa.Table.from_pylist(rows, schema=_stages.DECODED_SCHEMA)


def _statuses(table):
    return {r["stem"]: (r["status"], r["error"]) for r in table.to_pylist()}


@pytest.mark.parametrize("error", PER_IMAGE, ids=lambda e: type(e).__name__)
def test_ray_a_per_image_error_fails_that_image(error, retry_config, retry_models, retry_folder, tmp_path, monkeypatch):
    got = _statuses(_actor(retry_config, retry_models, tmp_path / "out", monkeypatch, error)(_decoded(retry_folder)))
    assert got["p0"] == ("done", None) and got["p2"] == ("done", None)
    assert got["p1"][0] == "failed" and type(error).__name__ in got["p1"][1]


@pytest.mark.parametrize("error", STOPS, ids=lambda e: type(e).__name__)
def test_ray_a_run_wide_error_stops_the_job(error, retry_config, retry_models, retry_folder, tmp_path, monkeypatch):
    actor = _actor(retry_config, retry_models, tmp_path / "out", monkeypatch, error)
    with pytest.raises(type(error)):
        actor(_decoded(retry_folder))


@pytest.mark.parametrize("error", WRITE, ids=lambda e: type(e).__name__)
def test_ray_a_write_error_fails_that_image(error, retry_config, retry_models, retry_folder, tmp_path, monkeypatch):
    actor = _actor(retry_config, retry_models, tmp_path / "out", monkeypatch, write_error=error)
    got = _statuses(actor(_decoded(retry_folder)))
    assert got["p0"] == ("done", None) and got["p2"] == ("done", None)
    assert got["p1"][0] == "failed" and "cannot write outputs" in got["p1"][1]


@pytest.mark.parametrize("entry", ["label_dataset", "segment_dataset"])
def test_ray_entry_points_check_the_config_first(entry, retry_folder, tmp_path):
    pytest.importorskip("ray")
    import ray

    from ovseg import distributed

    was_running = ray.is_initialized()
    bad = SegmenterConfig(**{**RETRY_FAST, "dtype": "float16"})  # float16 on the CPU: validate() refuses it
    args = (str(retry_folder), "cat,dog") if entry == "label_dataset" else (str(retry_folder),)
    with pytest.raises(SettingError, match="dtype"):
        getattr(distributed, entry)(*args, out=str(tmp_path / "out"), config=bad)
    assert ray.is_initialized() == was_running  # refused before Ray was started
