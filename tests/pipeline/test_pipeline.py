"""The Python API (`ovseg.Segmenter`) on tiny random checkpoints: CPU, offline."""
import json

import numpy as np
import pytest
from PIL import Image

import ovseg
from ovseg.pipeline import ModelLoadError, Models, SegmentationResult, Segmenter, SegmenterConfig
from ovseg.testing import quadrants


@pytest.fixture(scope="module")
def weights(tiny_weights):
    return tiny_weights


@pytest.fixture(scope="module")
def segmenter(weights, tmp_path_factory):
    cache = tmp_path_factory.mktemp("segment-cache")
    return Segmenter(resolution=64, refine_iterations=2, cache_dir=str(cache), **weights)


def _picture(h=40, w=56, seed=0) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 2, : w // 2] = (220, 40, 40)
    img[: h // 2, w // 2 :] = (40, 40, 220)
    img[h // 2 :] = (40, 200, 40)
    noise = np.random.default_rng(seed).integers(-8, 9, img.shape)
    return np.clip(img.astype(int) + noise, 0, 255).astype(np.uint8)


def test_defaults_are_the_papers():
    cfg = SegmenterConfig()
    assert (cfg.backbone, cfg.alpha, cfg.tau, cfg.refine) == ("ssd-1b", 10.0, 0.5, True)
    assert cfg.resolution is None and cfg.segment_settings()["resolution"] == 1024  # ssd-1b's own
    assert cfg.refine_dilations == (1, 2, 4, 8, 12, 24, 32, 64) and 15 <= cfg.refine_iterations <= 30
    assert (cfg.labeler, cfg.labeler_pretrained) == ("convnext_large_d_320", "laion2b_s29b_b131k_ft_soup")
    assert ovseg.Segmenter is Segmenter


@pytest.mark.parametrize("bad", [{"tau": 3.0}, {"alpha": 0.0}, {"dtype": "float64"},
                                 {"batch_size": 0}, {"resolution": 8}])
def test_bad_settings_fail_at_construction(bad):
    with pytest.raises(ValueError):
        SegmenterConfig(**bad)


def test_resolution_must_fit_the_stride(weights):
    from ovseg.pipeline import SettingError

    with pytest.raises(SettingError, match="stride 32"):  # before any model loads (issue 22)
        Segmenter(resolution=80, cache=False, **weights).segment(_picture())


def test_every_image_form_gives_the_same_segments(segmenter, tmp_path):
    import torch

    pic = _picture()
    Image.fromarray(pic).save(tmp_path / "p.png")
    forms = [str(tmp_path / "p.png"), tmp_path / "p.png", Image.fromarray(pic), pic,
             torch.from_numpy(pic).permute(2, 0, 1).float() / 255]
    results = segmenter.segment(forms)
    assert isinstance(results, list) and len(results) == len(forms)
    for r in results:
        assert isinstance(r, SegmentationResult) and r.segment_map.shape == (40, 56)
        assert (r.segment_map == results[0].segment_map).all()
    assert results[0].source == str(tmp_path / "p.png") and results[0].source_size == (40, 56)
    assert results[3].source is None
    single = segmenter.segment(pic)
    assert isinstance(single, SegmentationResult) and (single.segment_map == results[0].segment_map).all()
    batch = segmenter.segment(torch.stack([forms[-1], forms[-1]]))  # (B, 3, H, W): a list back
    assert len(batch) == 2


def test_segments_describe_the_map(segmenter):
    r = segmenter.segment(_picture(33, 47, seed=3))
    assert r.classes is None and (r.label_map == r.segment_map).all()
    ids = np.unique(r.segment_map)
    assert list(ids) == list(range(len(ids))) == [s.id for s in r.segments]  # compact ids 0..K-1
    for s in r.segments:
        assert s.mask.sum() == s.area and s.class_name is None
        x, y, w, h = s.bbox
        assert s.mask[y : y + h, x : x + w].sum() == s.area
    assert sum(s.area for s in r.segments) == 33 * 47


@pytest.mark.parametrize("classes", ["cat,dog;puppy,sky", ["cat", "dog;puppy", "sky"], "vocab-object"])
def test_label_with_each_form_of_classes(segmenter, classes, tmp_path):
    from ovseg.labels import Vocabulary

    if classes == "vocab-object":
        classes = Vocabulary.from_names(["cat", "dog,puppy", "sky"])
    r = segmenter.label(_picture(), classes)
    assert r.classes == ["cat", "dog", "sky"]
    lut = {s.id: s.class_index for s in r.segments}
    assert all(0 <= i < 3 for i in lut.values())
    assert (r.label_map == np.vectorize(lut.get)(r.segment_map)).all()
    for s in r.segments:
        assert s.class_name == r.classes[s.class_index] and s.score is not None
        assert 1 <= len(s.alternatives) <= 3 and s.alternatives[0][0] == s.class_name
    data = json.loads(json.dumps(r.to_json()))
    assert data["classes"] == r.classes and len(data["segments"]) == len(r.segments)
    r.save_png(tmp_path / "l.png")
    r.save_overlay(tmp_path / "o.png")
    r.save_json(tmp_path / "l.json")
    assert (np.asarray(Image.open(tmp_path / "l.png")) == r.label_map).all()
    assert Image.open(tmp_path / "o.png").size[0] > 56


def test_shipped_vocabulary_by_name(segmenter):
    r = segmenter.label(_picture(), "voc")
    assert len(r.classes) == 21 and all(s.class_name in r.classes for s in r.segments)


def test_bad_classes_are_clear(segmenter):
    with pytest.raises(ValueError, match="blank name"):
        segmenter.label(_picture(), " , ")
    with pytest.raises(ValueError, match="blank name"):
        segmenter.label(_picture(), "cat,,dog")
    with pytest.raises(ValueError, match="duplicate name"):
        segmenter.label(_picture(), ["cat", "dog", "cat"])
    with pytest.raises(TypeError):
        segmenter.label(_picture(), 42)


def test_cache_and_determinism(segmenter, tmp_path):
    pic = _picture(seed=5)
    shared = Models(backbone=segmenter.backbone)  # the same weights: no need to load them again
    seg = Segmenter(segmenter.config, cache_dir=str(tmp_path), models=shared)
    a = seg.segment(pic)
    b = seg.segment(pic)
    assert (seg.cache.misses, seg.cache.hits) == (1, 1)
    fresh = Segmenter(segmenter.config, cache=False, models=Models(backbone=segmenter.backbone))
    c = fresh.segment(pic)
    assert (a.segment_map == b.segment_map).all() and (a.segment_map == c.segment_map).all()


def test_process_files_summary(segmenter, tmp_path):
    Image.fromarray(_picture()).save(tmp_path / "a.png")
    (tmp_path / "b.jpg").write_bytes(b"\xff\xd8 not really")
    out = tmp_path / "out"
    summary = segmenter.process_files([tmp_path], out, classes="cat,sky", progress=False)
    assert summary.done == [tmp_path / "a.png"] and [p for p, _ in summary.failed] == [tmp_path / "b.jpg"]
    assert "b.jpg" in summary.failed[0][1]
    assert {p.name for p in out.iterdir()} == {"a.labels.png", "a.labels.overlay.png", "a.labels.json"}
    again = segmenter.process_files([tmp_path], out, classes="cat,sky", progress=False)
    assert again.skipped == [tmp_path / "a.png"] and not again.done


def test_batches_give_the_per_image_results(segmenter):
    pics = [_picture(seed=7), _picture(30, 30, seed=8)]
    batched = Segmenter(segmenter.config, batch_size=2, cache=False, models=Models(backbone=segmenter.backbone))
    one = Segmenter(segmenter.config, batch_size=1, cache=False, models=Models(backbone=segmenter.backbone))
    for a, b in zip(batched.segment(pics), one.segment(pics)):
        assert (a.segment_map == b.segment_map).all()


def test_a_failing_image_does_not_sink_its_batch(segmenter, tmp_path, monkeypatch):
    for name, seed in [("a.png", 1), ("b.png", 2), ("c.png", 3)]:
        Image.fromarray(_picture(seed=seed)).save(tmp_path / name)
    seg = Segmenter(segmenter.config, batch_size=3, cache=False, models=Models(backbone=segmenter.backbone))
    real = seg.segment_maps

    def fussy(arrays, *rest):
        if any(a[0, 0, 0] == _picture(seed=2)[0, 0, 0] and (a == _picture(seed=2)).all() for a in arrays):
            raise RuntimeError("stage failure on b")
        return real(arrays, *rest)

    monkeypatch.setattr(seg, "segment_maps", fussy)
    summary = seg.process_files([tmp_path], tmp_path / "out", progress=False)
    assert [p.name for p in summary.done] == ["a.png", "c.png"]
    assert [p.name for p, _ in summary.failed] == ["b.png"] and "stage failure" in summary.failed[0][1]


# -- settings-aware reruns, inputs, failures, settings checks (issue 10) -------------------------
def _folder(tmp_path, n=2):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(n):
        Image.fromarray(_picture(seed=10 + i)).save(src / f"p{i}.png")
    return src


def _shared(segmenter, **changes):
    return Segmenter(segmenter.config, models=segmenter.models, **changes)


def test_relabelling_into_the_same_folder_gives_the_new_classes(segmenter, tmp_path):
    src, out = _folder(tmp_path), tmp_path / "out"
    first = _shared(segmenter).process_files(src, out, classes="cat,sky", progress=False)
    assert len(first.done) == 2 and not first.redone
    same = _shared(segmenter).process_files(src, out, classes="cat,sky", progress=False)
    assert len(same.skipped) == 2 and not same.done
    other = _shared(segmenter).process_files(src, out, classes="tree,road,sky", progress=False)
    assert len(other.done) == 2 and len(other.redone) == 2 and not other.skipped
    data = json.loads((out / "p0.labels.json").read_text())
    assert data["classes"] == ["tree", "road", "sky"]
    assert data["record"]["vocabulary"]["classes"] == [["tree"], ["road"], ["sky"]]
    synonyms = _shared(segmenter).process_files(src, out, classes="tree;wood,road,sky", progress=False)
    assert len(synonyms.redone) == 2  # a new synonym is another vocabulary


def test_a_changed_setting_is_redone_not_skipped(segmenter, tmp_path):
    src, out = _folder(tmp_path, 1), tmp_path / "out"
    _shared(segmenter).process_files(src, out, progress=False)
    again = _shared(segmenter, tau=0.3).process_files(src, out, progress=False)
    assert [p.name for p in again.redone] == ["p0.png"] and again.done == again.redone
    assert json.loads((out / "p0.segments.json").read_text())["settings"]["tau"] == 0.3
    assert _shared(segmenter, tau=0.3).process_files(src, out, progress=False).skipped
    stale = json.loads((out / "p0.segments.json").read_text())
    stale["record"]["format_version"] = 1  # written by an older ovseg
    (out / "p0.segments.json").write_text(json.dumps(stale))
    assert _shared(segmenter, tau=0.3).process_files(src, out, progress=False).redone


def test_is_up_to_date_is_one_small_function(tmp_path):
    from ovseg.pipeline._records import is_up_to_date, output_status

    record = {"format_version": 2, "settings": {"tau": 0.5, "dilations": (1, 2)}}
    path = tmp_path / "a.labels.json"
    assert output_status(path, record) == "missing"
    path.write_text(json.dumps({"record": {"format_version": 2, "settings": {"tau": 0.5, "dilations": [1, 2]}}}))
    assert is_up_to_date(path, record)
    assert not is_up_to_date(path, record, others=[tmp_path / "a.labels.png"])  # a PNG is missing
    assert output_status(path, {**record, "settings": {"tau": 0.4}}) == "changed"
    path.write_text("{broken")
    assert output_status(path, record) == "missing"


def test_out_inside_or_equal_to_the_input_folder(segmenter, tmp_path):
    src = _folder(tmp_path)
    first = _shared(segmenter).process_files(src, src, progress=False)  # --out = the input folder
    assert sorted(p.name for p in first.done) == ["p0.png", "p1.png"] and not first.failed
    again = _shared(segmenter).process_files(src, src, progress=False)
    assert sorted(p.name for p in again.skipped) == ["p0.png", "p1.png"] and not again.done
    inner = _shared(segmenter).process_files([src], src / "out", classes="cat,sky", progress=False)
    assert sorted(p.name for p in inner.done) == ["p0.png", "p1.png"]  # no output taken as input
    assert (src / "out" / "p0.labels.png").is_file()


def test_a_string_is_one_input(segmenter, tmp_path):
    src = _folder(tmp_path, 1)
    summary = _shared(segmenter).process_files(str(src), tmp_path / "out", progress=False)
    assert [p.name for p in summary.done] == ["p0.png"]
    one = _shared(segmenter).process_files(str(src / "p0.png"), tmp_path / "o2", progress=False)
    assert [p.name for p in one.done] == ["p0.png"]
    with pytest.raises(FileNotFoundError, match="no-such"):
        Segmenter(cache=False).process_files("no-such-folder/", tmp_path / "o3")


def test_any_per_image_error_is_that_images_failure(segmenter, tmp_path, monkeypatch):
    src = _folder(tmp_path)
    seg = _shared(segmenter, cache=False)
    real = seg.segment_maps

    def flaky(arrays, *rest):
        if (arrays[0] == _picture(seed=10)).all():
            raise IndexError("index 0 is out of bounds (a degenerate eigenproblem)")
        return real(arrays, *rest)

    monkeypatch.setattr(seg, "segment_maps", flaky)
    summary = seg.process_files(src, tmp_path / "out", progress=False)
    assert [p.name for p, _ in summary.failed] == ["p0.png"] and "IndexError" in summary.failed[0][1]
    assert [p.name for p in summary.done] == ["p1.png"]
    for fatal in (KeyboardInterrupt, MemoryError, ModelLoadError("no model")):
        def boom(arrays, *rest, fatal=fatal):
            raise fatal
        monkeypatch.setattr(seg, "segment_maps", boom)
        with pytest.raises(type(fatal) if isinstance(fatal, Exception) else fatal):
            seg.process_files(src, tmp_path / "o2", progress=False, overwrite=True)


def test_unwritable_cache_never_fails_an_image(segmenter, tmp_path, monkeypatch):
    from ovseg.io import cache as _cache

    blocker = tmp_path / "a-file"
    blocker.write_text("x")  # a folder under a regular file cannot be made, even by root
    monkeypatch.setattr(_cache, "_WARNED", set())
    seg = _shared(segmenter, cache_dir=str(blocker / "cache"))
    src = _folder(tmp_path, 1)
    with pytest.warns(RuntimeWarning, match="cannot write"):
        summary = seg.process_files(src, tmp_path / "out", progress=False)
    assert [p.name for p in summary.done] == ["p0.png"] and not summary.failed


@pytest.mark.parametrize("bad, setting", [
    ({"max_pixels": -1}, "max_pixels"), ({"max_pixels": 0}, "max_pixels"),
    ({"alpha": float("nan")}, "alpha"), ({"alpha": float("inf")}, "alpha"), ({"tau": float("nan")}, "tau"),
    ({"device": "bogus"}, "device"), ({"device": "cuda:x"}, "device"),
])
def test_settings_checked_on_construction(bad, setting):
    from ovseg.pipeline import SettingError

    with pytest.raises(SettingError) as info:
        SegmenterConfig(**bad)
    assert info.value.setting == setting


@pytest.mark.parametrize("bad, setting, message", [
    ({"resolution": 33}, "resolution", "stride 32; try 32"),
    ({"backbone": "dinov2-s", "resolution": 500}, "resolution", "stride 14"),
    ({"weights": "ssd-1b/"}, "weights", "no such folder"),
    ({"weights": "./models/ssd"}, "weights", "no such folder"),
    ({"clip_weights": "~/no-such-clip"}, "clip_weights", "no such folder"),
    ({"dtype": "float16", "device": "cpu"}, "dtype", "CPU"),
    ({"backbone": "no-such"}, "backbone", "Valid backbones"),
])
def test_validate_before_any_model(bad, setting, message):
    from ovseg.pipeline import SettingError

    with pytest.raises(SettingError, match=message) as info:
        SegmenterConfig(**bad).validate()
    assert info.value.setting == setting
    SegmenterConfig(weights="segmind/SSD-1B").validate()  # a repo id is not a path


def test_validate_refuses_a_missing_cuda(monkeypatch):
    import torch

    from ovseg.pipeline import SettingError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SettingError, match="CUDA is not available"):
        SegmenterConfig(device="cuda").validate()


def test_help_shows_every_setting():
    doc = Segmenter.__doc__
    for f in dataclasses_fields(SegmenterConfig):
        assert f"  {f.name} (" in doc, f"document SegmenterConfig.{f.name} in Segmenter's docstring"
    for method in (Segmenter.segment, Segmenter.label, Segmenter.process_files):
        assert "Returns" in method.__doc__


def dataclasses_fields(cls):
    import dataclasses

    return dataclasses.fields(cls)


def test_vocabulary_rules(tmp_path):
    from ovseg.labels import VocabularyError

    with pytest.raises(VocabularyError, match="no such vocabulary file"):
        Segmenter.vocabulary("data/my_classes.txt")
    with pytest.raises(VocabularyError, match="no such vocabulary file"):
        Segmenter.vocabulary("my_classes.txt")
    with pytest.warns(UserWarning, match="'voc'"):
        assert Segmenter.vocabulary("vocc").names == ["vocc"]  # one class, with a hint
    with pytest.raises(VocabularyError, match="unknown vocabulary"):
        Segmenter.vocabulary(vocab="vocc")
    assert len(Segmenter.vocabulary(vocab="voc")) == 21 and len(Segmenter.vocabulary("voc")) == 21
    assert Segmenter.vocabulary("dog").names == ["dog"] and Segmenter.vocabulary("st. bernard,cat").names == ["st. bernard", "cat"]
    (tmp_path / "mine.txt").write_text("cat\ndog, puppy\n")
    assert Segmenter.vocabulary(str(tmp_path / "mine.txt")).names == ["cat", "dog"]
    with pytest.raises(TypeError):
        Segmenter.vocabulary("cat", vocab="voc")


# -- the API's side of the command-line checks (issue 22) --------------------------------------------
def test_python_label_finds_clip_weights_before_the_backbone_runs(tiny_weights, monkeypatch):
    import ovseg.features
    from ovseg import WeightsNotFoundError
    from ovseg.pipeline import Segmenter

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(ovseg.features, "create_backbone",
                        lambda *a, **k: pytest.fail("the backbone was built before the labeler's weights were found"))
    seg = Segmenter(weights=tiny_weights["weights"], resolution=64, cache=False)
    with pytest.raises(WeightsNotFoundError, match="clip_weights"):
        seg.label(quadrants(), "cat,dog")


def test_python_process_files_warns_on_inputs_without_images(tmp_path):
    """The API's side of item 11: no exception (a folder may legitimately be empty), but not
    silent either: one warning naming the inputs, and an empty summary."""
    import warnings

    from ovseg import Segmenter

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.txt").write_text("no image here")
    seg = Segmenter(cache=False, resolution=64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = seg.process_files(tmp_path / "in", tmp_path / "o")
    ours = [w for w in caught if "no image files" in str(w.message)]
    assert len(ours) == 1 and str(tmp_path / "in") in str(ours[0].message), [str(w.message) for w in caught]
    assert ours[0].filename == __file__  # pointed at the caller's line
    assert (summary.done, summary.failed, summary.skipped) == ([], [], [])
    assert seg.models.loaded() == {"backbone": None, "labeler": None}


def test_sixteen_bit_label_json_mentions_no_palette():
    from ovseg.pipeline._results import build_result

    array = np.zeros((20, 20, 3), np.uint8)
    many = build_result(array, np.arange(400, dtype=np.int32).reshape(20, 20), {}, None, {}, None, None)
    few = build_result(array, np.zeros((20, 20), np.int32), {}, None, {}, None, None)
    assert "palette" not in many.to_json()["label_map"] and "16-bit" in many.to_json()["label_map"]["format"]
    assert "palette" in few.to_json()["label_map"]


def test_a_folder_is_its_images_sorted(segmenter, tmp_path):
    """Issue 31 item 3: `segment("photos/")` takes the folder's images (sorted, subfolders too,
    ovseg's own outputs left out) as `ovseg label` does, not a raw "Is a directory"."""
    (tmp_path / "sub").mkdir()
    for name, seed in (("b.png", 1), ("a.png", 2), ("sub/c.png", 3)):
        Image.fromarray(_picture(seed=seed)).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    results = segmenter.segment(tmp_path)
    assert [r.source for r in results] == [str(tmp_path / n) for n in ("a.png", "b.png", "sub/c.png")]
    results[0].save_png(tmp_path / "a.segments.png")  # an output beside them is no input
    results[0].save_json(tmp_path / "a.segments.json")
    assert len(segmenter.label([str(tmp_path), tmp_path / "a.png"], "cat,dog")) == 4
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no image files"):
        segmenter.segment(tmp_path / "empty")
