"""The Python API (`ovseg.Segmenter`) on tiny random checkpoints: CPU, offline."""
import json

import numpy as np
import pytest
from PIL import Image

import ovseg
from ovseg.pipeline import ModelLoadError, SegmentationResult, Segmenter, SegmenterConfig


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
    with pytest.raises(ModelLoadError, match="stride 32"):
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
    seg = Segmenter(segmenter.config, cache_dir=str(tmp_path))
    seg._backbone = segmenter.backbone  # the same weights: no need to load them again
    a = seg.segment(pic)
    b = seg.segment(pic)
    assert (seg._cache.misses, seg._cache.hits) == (1, 1)
    fresh = Segmenter(segmenter.config, cache=False)
    fresh._backbone = segmenter.backbone
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
    batched = Segmenter(segmenter.config, batch_size=2, cache=False)
    batched._backbone = segmenter.backbone
    one = Segmenter(segmenter.config, batch_size=1, cache=False)
    one._backbone = segmenter.backbone
    for a, b in zip(batched.segment(pics), one.segment(pics)):
        assert (a.segment_map == b.segment_map).all()


def test_a_failing_image_does_not_sink_its_batch(segmenter, tmp_path, monkeypatch):
    for name, seed in [("a.png", 1), ("b.png", 2), ("c.png", 3)]:
        Image.fromarray(_picture(seed=seed)).save(tmp_path / name)
    seg = Segmenter(segmenter.config, batch_size=3, cache=False)
    seg._backbone = segmenter.backbone
    real = seg._segment_maps

    def fussy(arrays, *rest):
        if any(a[0, 0, 0] == _picture(seed=2)[0, 0, 0] and (a == _picture(seed=2)).all() for a in arrays):
            raise RuntimeError("stage failure on b")
        return real(arrays, *rest)

    monkeypatch.setattr(seg, "_segment_maps", fussy)
    summary = seg.process_files([tmp_path], tmp_path / "out", progress=False)
    assert [p.name for p in summary.done] == ["a.png", "c.png"]
    assert [p.name for p, _ in summary.failed] == ["b.png"] and "stage failure" in summary.failed[0][1]
