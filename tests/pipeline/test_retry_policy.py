"""One retry policy for the local and the Ray engine (`ovseg.pipeline._runner.run_batch`,
`write_one`): settings errors, missing weights, unloadable models, fp16 overflow and MemoryError
stop the run; any other error while processing fails that image only; any error but MemoryError
while writing fails that image only. The Ray side runs the actor's code (`_stages.Segment`)
in this process, so a fault can be injected; the Ray entry points check the config first."""
import numpy as np
import pytest
from PIL import Image

from ovseg.settings.checks import SettingError
from ovseg.settings.weights import WeightsNotFoundError
from ovseg.pipeline import ModelLoadError, Models, Segmenter, SegmenterConfig

FAST = dict(resolution=64, refine_iterations=1, cache=False, device="cpu", batch_size=2, overlap=False)
PER_IMAGE = [TypeError("bad type"), ValueError("bad value"), RuntimeError("bad run"), IndexError("bad index"),
             OSError("bad io"), KeyError("bad key")]
STOPS = [SettingError("tau", "bad setting"), WeightsNotFoundError("no weights"), ModelLoadError("no model"),
         FloatingPointError("fp16 overflow"), MemoryError()]
WRITE = [PermissionError("read-only"), ValueError("cannot encode"), RuntimeError("disk said no")]


def _picture(seed: int) -> np.ndarray:
    img = np.zeros((24, 32, 3), np.uint8)
    img[:, 16:] = (200, 40, 40)
    return np.clip(img.astype(int) + np.random.default_rng(seed).integers(-9, 10, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def config(tiny_weights):
    return SegmenterConfig(**FAST, weights=tiny_weights["weights"])


@pytest.fixture(scope="module")
def models(config):
    return Models(config)


@pytest.fixture
def folder(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        Image.fromarray(_picture(i)).save(src / f"p{i}.png")
    return src


def _faulty(seg, monkeypatch, error, *, only=1):
    """seg.segment_maps raises `error` for image p{only} (None: for every image)."""
    real = seg.segment_maps

    def segment_maps(arrays, prepared):
        if only is None or any((a == _picture(only)).all() for a in arrays):
            raise error
        return real(arrays, prepared)

    monkeypatch.setattr(seg, "segment_maps", segment_maps)


# -- the local engine ----------------------------------------------------------------------------

@pytest.mark.parametrize("error", PER_IMAGE, ids=lambda e: type(e).__name__)
def test_local_a_per_image_error_fails_that_image(error, config, models, folder, tmp_path, monkeypatch):
    seg = Segmenter(config, models=models)
    _faulty(seg, monkeypatch, error)
    summary = seg.process_files(folder, tmp_path / "out", progress=False)
    assert [p.name for p in summary.done] == ["p0.png", "p2.png"]
    assert [p.name for p, _ in summary.failed] == ["p1.png"] and type(error).__name__ in summary.failed[0][1]


@pytest.mark.parametrize("error", STOPS, ids=lambda e: type(e).__name__)
def test_local_a_run_wide_error_stops_the_run(error, config, models, folder, tmp_path, monkeypatch):
    seg = Segmenter(config, models=models)
    _faulty(seg, monkeypatch, error)
    with pytest.raises(type(error)):
        seg.process_files(folder, tmp_path / "out", progress=False)


@pytest.mark.parametrize("error", WRITE, ids=lambda e: type(e).__name__)
def test_local_a_write_error_fails_that_image(error, config, models, folder, tmp_path, monkeypatch):
    seg = Segmenter(config, models=models)
    real = seg.write_outputs

    def write(result, outs):
        if outs["json"].name.startswith("p1."):
            raise error
        real(result, outs)

    monkeypatch.setattr(seg, "write_outputs", write)
    summary = seg.process_files(folder, tmp_path / "out", progress=False)
    assert [p.name for p in summary.done] == ["p0.png", "p2.png"]
    assert [p.name for p, _ in summary.failed] == ["p1.png"] and "cannot write outputs" in summary.failed[0][1]


def test_local_a_bad_setting_stops_before_any_model(tmp_path, folder, no_models):
    with pytest.raises(SettingError, match="device"):  # at construction, or at the latest here
        Segmenter(SegmenterConfig(**{**FAST, "device": "cuda:99"})).process_files(folder, tmp_path / "out",
                                                                                   progress=False)
    config = SegmenterConfig(**{**FAST, "dtype": "float16"})  # on the CPU: found by validate(), torch
    with pytest.raises(SettingError, match="dtype"):
        Segmenter(config).process_files(folder, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()  # the run stopped before any image or output


# -- the Ray engine's actor, in this process -------------------------------------------------------

def _actor(config, models, out, monkeypatch, error=None, write_error=None):
    pytest.importorskip("pyarrow")
    from ovseg.distributed import _stages

    actor = _stages.Segment(config=config, vocab=None, out=str(out), fmt="files")
    actor.segmenter = Segmenter(config, models=models)  # the shared tiny models: no reload
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


def _decoded(folder):
    import pyarrow as pa

    from ovseg.distributed import _stages

    rows = []
    for i in range(3):
        array = _picture(i)
        rows.append({"path": str(folder / f"p{i}.png"), "stem": f"p{i}", "status": "todo", "error": None,
                     "image": array.tobytes(), "height": 24, "width": 32, "source_height": 24,
                     "source_width": 32})
    return pa.Table.from_pylist(rows, schema=_stages.DECODED_SCHEMA)


def _statuses(table):
    return {r["stem"]: (r["status"], r["error"]) for r in table.to_pylist()}


@pytest.mark.parametrize("error", PER_IMAGE, ids=lambda e: type(e).__name__)
def test_ray_a_per_image_error_fails_that_image(error, config, models, folder, tmp_path, monkeypatch):
    got = _statuses(_actor(config, models, tmp_path / "out", monkeypatch, error)(_decoded(folder)))
    assert got["p0"] == ("done", None) and got["p2"] == ("done", None)
    assert got["p1"][0] == "failed" and type(error).__name__ in got["p1"][1]


@pytest.mark.parametrize("error", STOPS, ids=lambda e: type(e).__name__)
def test_ray_a_run_wide_error_stops_the_job(error, config, models, folder, tmp_path, monkeypatch):
    actor = _actor(config, models, tmp_path / "out", monkeypatch, error)
    with pytest.raises(type(error)):
        actor(_decoded(folder))


@pytest.mark.parametrize("error", WRITE, ids=lambda e: type(e).__name__)
def test_ray_a_write_error_fails_that_image(error, config, models, folder, tmp_path, monkeypatch):
    actor = _actor(config, models, tmp_path / "out", monkeypatch, write_error=error)
    got = _statuses(actor(_decoded(folder)))
    assert got["p0"] == ("done", None) and got["p2"] == ("done", None)
    assert got["p1"][0] == "failed" and "cannot write outputs" in got["p1"][1]


@pytest.mark.parametrize("entry", ["label_dataset", "segment_dataset"])
def test_ray_entry_points_check_the_config_first(entry, folder, tmp_path):
    pytest.importorskip("ray")
    import ray

    from ovseg import distributed

    was_running = ray.is_initialized()
    bad = SegmenterConfig(**{**FAST, "dtype": "float16"})  # float16 on the CPU: validate() refuses it
    args = (str(folder), "cat,dog") if entry == "label_dataset" else (str(folder),)
    with pytest.raises(SettingError, match="dtype"):
        getattr(distributed, entry)(*args, out=str(tmp_path / "out"), config=bad)
    assert ray.is_initialized() == was_running  # refused before Ray was started
