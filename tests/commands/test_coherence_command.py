"""`ovseg coherence` (ovseg/commands/coherence.py): a bad image is one line each, before any model
loads, and an output never overwrites an input."""
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from ovseg.cli import main
from ovseg.testing import quadrants


def _bad_files(folder):
    (folder / "text.jpg").write_text("not an image")
    (folder / "empty.bmp").write_bytes(b"")
    Image.fromarray(quadrants(200, 300)).save(folder / "_ok.png")
    (folder / "cut.png").write_bytes((folder / "_ok.png").read_bytes()[:2000])  # truncated
    (folder / "_ok.png").unlink()
    return ["text.jpg", "empty.bmp", "cut.png"]


def test_coherence_heatmap_bad_image_is_one_line(invoke, tmp_path, no_models):
    names = _bad_files(tmp_path)
    for name in names:
        result, _ = invoke(["coherence", tmp_path / name, "-b", "ssd-1b", "--out", tmp_path / "c.png"])
        assert result.exit_code == 1, result.output
        assert name in result.output and "Traceback" not in result.output
        assert not isinstance(result.exception, AssertionError)
        assert len(result.output.strip().splitlines()) <= 2, result.output


def test_coherence_scores_name_every_bad_pair_before_any_model(invoke, tmp_path, no_models):
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    (pairs / "text.jpg").write_text("not an image")
    (pairs / "empty.bmp").write_bytes(b"")
    Image.fromarray(quadrants()).save(pairs / "good.jpg")
    for stem in ("text", "empty", "good"):
        Image.fromarray(np.zeros((40, 56), np.uint8), "L").save(pairs / f"{stem}.png")
    result, _ = invoke(["coherence", "--pairs", pairs, "-b", "ssd-1b", "--out", tmp_path / "res"])
    assert result.exit_code == 1, result.output
    assert "text.jpg: cannot read image: not an image file" in result.output
    assert "empty.bmp: cannot read image: empty file" in result.output
    assert "Traceback" not in result.output and "a model was built" not in result.output


def test_coherence_refuses_to_overwrite_its_input(tmp_path):
    from ovseg.commands.coherence import coherence_command

    ref = tmp_path / "a.png"
    Image.new("RGB", (16, 16), (10, 20, 30)).save(ref)
    before = ref.read_bytes()
    result = CliRunner().invoke(coherence_command, [str(ref), "-o", str(ref), "-b", "dinov2-b"])
    assert result.exit_code == 2 and "overwritten" in result.output
    assert ref.read_bytes() == before
    link = tmp_path / "link.png"
    link.symlink_to(ref)
    result = CliRunner().invoke(coherence_command, [str(ref), "-o", str(link), "-b", "dinov2-b"])
    assert result.exit_code == 2 and ref.read_bytes() == before
