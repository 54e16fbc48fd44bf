"""`ovseg eval` (ovseg/commands/eval.py): missing weights are one line before any model loads, and
a bad image is one line (the run goes on)."""
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from ovseg.cli import main


@pytest.mark.parametrize("extra, missing", [
    (["--weights", "someone/missing-repo"], "someone/missing-repo"),
    (["--protocol", "open-vocabulary", "--weights", "{tiny}"], "--clip-weights"),
])
def test_eval_missing_weights_one_line_before_any_model(invoke, tmp_path, tiny_weights, no_models, monkeypatch,
                                                        extra, missing):
    monkeypatch.setattr("ovseg.evaluation._datasets.DatasetSpec.samples", lambda self, root, image_list: [])
    extra = [e.replace("{tiny}", tiny_weights["weights"]) for e in extra]
    result, _ = invoke(["eval", "--dataset", "voc", "--root", tmp_path, *extra, "--out", tmp_path / "eval"])
    assert result.exit_code == 1, result.output
    assert missing in result.output and "Traceback" not in result.output
    assert "a model was built" not in result.output


@pytest.mark.parametrize("recipe", ["ovseg", "published"])
def test_eval_bad_image_is_one_line(invoke, tmp_path, monkeypatch, recipe):
    from ovseg.evaluation import _adapter

    base = tmp_path / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (base / sub).mkdir(parents=True)
    (base / "ImageSets/Segmentation/val.txt").write_text("bad\n")
    (base / "JPEGImages/bad.jpg").write_text("not an image")
    Image.fromarray(np.zeros((40, 56), np.uint8), "L").save(base / "SegmentationClass/bad.png")
    monkeypatch.setattr(_adapter, "make_predictor", lambda protocol, **kw: lambda image: np.zeros((4, 4), int))
    result, _ = invoke(["eval", "--dataset", "voc", "--root", tmp_path, "--recipe", recipe, "--no-progress",
                         "--out", tmp_path / "eval"])
    assert result.exit_code == 1, result.output
    assert "bad.jpg: cannot read image: not an image file" in result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
