"""`ovseg label` with no class list and `Segmenter.label(image)`: automatic names through the whole
pipeline (tiny random backbone, planted labeler), outputs, reruns and the bank's text cache."""
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import ovseg.labels
from ovseg.cli import main
from ovseg.io import rle_decode

PLANTS = {(220, 40, 40): "cat", (40, 40, 220): "sky", (40, 200, 40): "grass", (230, 230, 230): "wall"}
# tau 1.0: the tiny random backbone cuts the four flat quadrants into four segments
FAST = ["--resolution", "64", "--refine-iterations", "2", "--tau", "1.0"]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    from ovseg.testing import make_planted_labeler

    return make_planted_labeler(PLANTS, tmp_path_factory.mktemp("planted"), disk_cache=True)


@pytest.fixture
def env(tmp_path, monkeypatch, planted, tiny_weights):
    """The CLI's labeler is the planted one; caches under tmp_path."""
    monkeypatch.setenv("OVSEG_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(ovseg.labels, "create_labeler", lambda *a, **k: planted)
    from ovseg.labels import _text

    _text.clear_memory_cache()
    img = np.zeros((40, 56, 3), np.uint8)
    for (ys, xs), colour in zip([(slice(0, 20), slice(0, 28)), (slice(0, 20), slice(28, 56)),
                                 (slice(20, 40), slice(0, 28)), (slice(20, 40), slice(28, 56))], PLANTS):
        img[ys, xs] = colour
    Image.fromarray(img).save(tmp_path / "quads.png")
    return tmp_path, img, ["--weights", tiny_weights["weights"], "--clip-weights", tiny_weights["clip_weights"]]


def _majority_name(img, mask):
    colours = img[mask]
    counts = {name: int((np.abs(colours.astype(int) - rgb).max(1) <= 12).sum()) for rgb, name in PLANTS.items()}
    return max(counts, key=counts.get)


def test_label_with_no_class_list_names_from_the_bank(env, planted, monkeypatch):
    tmp, img, weights = env
    out = tmp / "out"
    args = ["label", str(tmp / "quads.png"), "--out", str(out), *FAST, *weights]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "labelled 1 image(s)" in result.output
    for name in ["quads.labels.png", "quads.labels.overlay.png", "quads.labels.json"]:
        assert (out / name).is_file()
    data = json.loads((out / "quads.labels.json").read_text())
    chosen = data["auto_vocabulary"]["chosen"]
    assert data["classes"] == [c["name"] for c in chosen]
    assert sorted(data["classes"]) == sorted(PLANTS.values())  # the planted names, exactly
    assert all(c["score"] > 0.9 and c["image_rank"] <= 4 for c in chosen)
    labels = np.asarray(Image.open(out / "quads.labels.png"))
    for seg in data["segments"]:  # each segment named by the colour it mostly covers
        mask = rle_decode(seg["segmentation"])
        assert seg["class_name"] == _majority_name(img, mask)
        assert (labels[mask] == seg["class_index"]).all()
    assert data["record"]["vocabulary"]["auto"]["bank"] == "default"

    # A rerun skips the image (same settings and bank); --overwrite redoes it with the bank's text
    # embeddings from the disk cache: the text tower is not run again.
    assert "skipped 1 already done" in CliRunner().invoke(main, args).output
    from ovseg.labels import _text

    _text.clear_memory_cache()  # as a new process
    calls = []
    real = type(planted)._encode_text
    monkeypatch.setattr(type(planted), "_encode_text", lambda self, t: calls.append(len(t)) or real(self, t))
    result = CliRunner().invoke(main, [*args, "--overwrite"])
    assert result.exit_code == 0, result.output
    assert calls == []
    assert json.loads((out / "quads.labels.json").read_text())["classes"] == data["classes"]

    # Another --max-classes is another record: redone, with at most that many names.
    result = CliRunner().invoke(main, [*args, "--max-classes", "2"])
    assert result.exit_code == 0 and "redid 1" in result.output, result.output
    data = json.loads((out / "quads.labels.json").read_text())
    assert len(data["classes"]) == 2 and set(data["classes"]) <= set(PLANTS.values())
    assert {s["class_name"] for s in data["segments"]} <= set(data["classes"])


def test_own_bank_files_and_usage_errors(env):
    tmp, _, weights = env
    (tmp / "empty.txt").write_text("# nothing here\n\n")
    (tmp / "dups.txt").write_text("cat\n\ncat, kitty\nsky,heaven\n\n  \ngrass\nwall\nwall\n")
    base = ["label", str(tmp / "quads.png"), *FAST, *weights]
    result = CliRunner().invoke(main, [*base, "--out", str(tmp / "o1"), "--bank", str(tmp / "empty.txt")])
    assert result.exit_code == 2 and "empty" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(main, [*base, "--out", str(tmp / "o2"), "--bank", str(tmp / "dups.txt")])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp / "o2" / "quads.labels.json").read_text())
    assert sorted(data["classes"]) == ["cat", "grass", "sky", "wall"]
    assert data["auto_vocabulary"]["bank"].endswith("dups.txt")
    result = CliRunner().invoke(main, [*base, "--out", str(tmp / "o3"), "--classes", "cat", "--max-classes", "3"])
    assert result.exit_code == 2 and "automatic names only" in result.output
    result = CliRunner().invoke(main, [*base, "--out", str(tmp / "o3"), "--bank", str(tmp / "missing.txt")])
    assert result.exit_code == 2 and "does not exist" in result.output
    result = CliRunner().invoke(main, [*base, "--out", str(tmp / "o3"), "--classes", "cat", "--vocab", "voc"])
    assert result.exit_code == 2 and "at most one" in result.output


def test_api_label_without_classes(env):
    from ovseg import Segmenter

    tmp, img, weights = env
    seg = Segmenter(weights=weights[1], clip_weights=weights[3], resolution=64, refine_iterations=2, tau=1.0)
    result = seg.label(img)
    assert sorted(result.classes) == sorted(PLANTS.values())
    assert [c["name"] for c in result.auto_vocabulary["chosen"]] == result.classes
    again = seg.label(img, vocab="auto")
    assert again.classes == result.classes and np.array_equal(again.label_map, result.label_map)
    fixed = seg.label(img, "cat,sky,grass,wall")  # a class list still fixes the names
    assert fixed.classes == ["cat", "sky", "grass", "wall"] and fixed.auto_vocabulary is None
    one = Segmenter(weights=weights[1], clip_weights=weights[3], resolution=64, refine_iterations=2, tau=1.0,
                    max_classes=1).label(img)
    assert len(one.classes) == 1 and {s.class_name for s in one.segments} == set(one.classes)


def test_eval_maps_chosen_names_to_dataset_classes_by_words():
    from ovseg.evaluation._auto_names import UNMATCHED, NameMapper
    from ovseg.labels import load_vocabulary
    from ovseg.labels._auto import load_bank

    voc = load_vocabulary("voc")
    mapper = NameMapper(voc, load_bank())
    assert mapper("cat") == voc.names.index("cat")
    assert mapper("airplane") == voc.names.index("aeroplane")  # a synonym
    assert mapper("sky") == 0  # VOC's background class spells out stuff words
    assert mapper("giraffe") == UNMATCHED and mapper("sky (no such)") == UNMATCHED
    assert NameMapper(voc, load_bank(), offset=1)("sky") == UNMATCHED  # background is no class there


def test_eval_auto_predictor_end_to_end(env):
    from ovseg.evaluation._adapter import labeler_predictor

    tmp, img, weights = env
    predict = labeler_predictor(vocabulary="voc", auto_names=True, weights=weights[1], clip_weights=weights[3],
                                tau=1.0, resolution=64, refine_iterations=2)
    import torch

    classes = predict(torch.from_numpy(img).permute(2, 0, 1).float() / 255)
    assert classes.shape == img.shape[:2]
    assert (classes[:20, :28] == 8).mean() > 0.75  # the cat quadrant (the tiny cut blurs its edge): VOC's cat (index 8)
    assert (classes[20:, 28:] == 0).mean() > 0.75  # wall: a word of VOC's background class
    assert predict.stats["images"] == 1 and predict.stats["unmatched_names"] == 0
    assert predict.stats["names"] == 4 and predict.stats["segments"] >= 4


def test_eval_cli_vocab_auto(tmp_path, monkeypatch):
    from ovseg.evaluation import _adapter
    from ovseg.commands.eval import eval_command

    (tmp_path / "JPEGImages").mkdir()
    (tmp_path / "SegmentationClass").mkdir()
    (tmp_path / "ImageSets" / "Segmentation").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "JPEGImages" / "a.jpg")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "SegmentationClass" / "a.png")
    (tmp_path / "ImageSets" / "Segmentation" / "val.txt").write_text("a\n")
    seen = {}

    def fake(protocol, **kw):
        seen.update(kw)

        def predict(image):
            return np.zeros(image.shape[-2:], np.int64)

        predict.stats = {"images": 1, "segments": 3, "unmatched_segments": 1, "names": 2, "unmatched_names": 1}
        return predict

    monkeypatch.setattr(_adapter, "make_predictor", fake)
    out = tmp_path / "ev"
    base = ["--dataset", "voc", "--root", str(tmp_path), "--no-progress", "--out", str(out)]
    res = CliRunner().invoke(eval_command, [*base, "--protocol", "open-vocabulary", "--vocab", "auto"])
    assert res.exit_code == 0, res.output
    assert seen["auto_names"] is True and seen["vocabulary"] == "voc"
    assert "1 of 3 segments" in res.output
    assert json.loads((out / "auto_names.json").read_text())["unmatched_names"] == 1
    res = CliRunner().invoke(eval_command, [*base, "--vocab", "auto"])
    assert res.exit_code == 2 and "open-vocabulary" in res.output


def test_demo_automatic_names_choice(env):
    pytest.importorskip("gradio")
    from ovseg import Segmenter
    from ovseg.demo import DemoSession
    from ovseg.demo._app import AUTO, DemoApp

    tmp, img, weights = env
    seg = Segmenter(weights=weights[1], clip_weights=weights[3], resolution=64, refine_iterations=2, tau=1.0)
    app = DemoApp(DemoSession(seg, max_tau=1.0))
    auto = app.vocabulary("", AUTO)  # no classes typed: the bank
    result, status = app.compute(str(tmp / "quads.png"), auto, 1.0)
    assert sorted(result.classes) == sorted(PLANTS.values())
    assert [c["name"] for c in result.auto_vocabulary["chosen"]] == result.classes
    assert "naming" in status
    want = seg.label(str(tmp / "quads.png"))
    assert result.classes == want.classes and np.array_equal(result.label_map, want.label_map)
