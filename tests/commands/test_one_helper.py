"""One helper per job: one nearest resize, one image reader, one atomic write, and coherence
never overwrites an input."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image

from ovseg import io as ovio


# -- one nearest resize -------------------------------------------------------------------------
def test_resize_modes_on_two_to_three_rows():
    lab = np.array([[0], [1]])
    assert ovio.resize_nearest(lab, (3, 1))[:, 0].tolist() == [0, 1, 1]  # pixel centres
    assert ovio.resize_nearest(lab, (3, 1), mode="torch")[:, 0].tolist() == [0, 0, 1]
    assert ovio.resize_nearest(lab, (3, 1), mode="floor")[:, 0].tolist() == [0, 0, 1]
    with pytest.raises(ValueError, match="mode"):
        ovio.resize_nearest(lab, (3, 1), mode="bilinear")


def test_torch_mode_is_torch_nearest_bit_for_bit():
    for n_in in (1, 2, 3, 7, 21, 33, 375, 500):
        x = torch.arange(n_in, dtype=torch.float32)[None, None, :, None]
        for n_out in (1, 2, 5, 82, 94, 110, 224, 320, 394, 448, 1000):
            ref = F.interpolate(x, size=(n_out, 1), mode="nearest")[0, 0, :, 0].long().numpy()
            assert (ovio.nearest_indices(n_in, n_out, "torch") == ref).all(), (n_in, n_out)
            exact = np.minimum(np.arange(n_out) * n_in // n_out, n_in - 1)
            assert (ovio.nearest_indices(n_in, n_out, "floor") == exact).all()


def test_evaluation_and_coherence_use_the_one_resize():
    from ovseg.coherence._inputs import grid_cells
    from ovseg.evaluation import _runner

    assert getattr(_runner, "resize_nearest", ovio.resize_nearest) is ovio.resize_nearest
    cells = grid_cells((394, 5), (2, 3))  # 2 -> 394 rows: exact integers
    rows = np.arange(394) * 2 // 394
    cols = np.minimum(np.arange(5) * 3 // 5, 2)
    assert (cells == rows[:, None] * 3 + cols[None, :]).all()


# -- one image reader ---------------------------------------------------------------------------
def test_evaluation_reads_images_like_the_pipeline(tmp_path):
    """Transparent pixels on white (ovseg.io.to_rgb), not black; EXIF orientation not applied
    (benchmark labels are stored unrotated)."""
    from ovseg.evaluation import get_dataset
    from ovseg.evaluation._datasets import Sample
    from ovseg.evaluation._runner import prepare

    rgba = np.zeros((6, 8, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, 4:, 3] = 255  # left half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90": a reader applying it would swap the axes
    Image.fromarray(rgba[..., :3].copy()).save(tmp_path / "b.jpg", exif=exif, quality=95)
    Image.fromarray(np.zeros((6, 8), np.uint8), "L").save(tmp_path / "a_label.png")
    spec = get_dataset("voc")
    image, _ = prepare(spec, Sample("a", tmp_path / "a.png", tmp_path / "a_label.png"),
                       "open-vocabulary", 8, 8)
    assert torch.allclose(image[:, 0, 0], torch.ones(3))  # transparent -> white
    assert image[0, 0, 7] == pytest.approx(200 / 255)
    image, _ = prepare(spec, Sample("b", tmp_path / "b.jpg", tmp_path / "a_label.png"),
                       "open-vocabulary", 8, 8)
    assert tuple(image.shape[1:]) == (6, 8)


# -- one atomic write ---------------------------------------------------------------------------
@pytest.fixture
def renamed(monkeypatch):
    """Every path that ovseg.io.atomic_write renames into place (its os.replace)."""
    seen = []
    real = os.replace

    def record(src, dst, *args, **kwargs):
        seen.append(os.path.abspath(dst))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(ovio.os, "replace", record)
    return seen


def _score():
    from ovseg.coherence._metrics import CoherenceScore

    return CoherenceScore(backbone="x", auc=0.9, cross_auc=0.8, miou=None, images=1,
                          positive_pairs=3, negative_pairs=3, mean_positive=0.7, mean_negative=0.1)


def test_every_writer_writes_atomically(tmp_path, renamed, monkeypatch):
    from ovseg.coherence import save_scores
    from ovseg.evaluation import write_report
    from ovseg.evaluation._metrics import EvaluationResult
    from ovseg.features._prompt import save_cached
    from ovseg.labels import _text

    counts = np.array([[1, 2], [0, 1], [1, 0]])
    result = EvaluationResult(dataset="voc", protocol="unsupervised", classes=("a", "b"),
                              counts=counts, num_images=1)
    paths = write_report(result, tmp_path / "eval")
    paths.update({f"c{k}": v for k, v in save_scores([_score()], tmp_path / "coh").items()})
    save_cached(tmp_path / "prompt.safetensors", {"prompt_embeds": torch.zeros(1, 2, 3)})
    (tmp_path / "text-embeds").mkdir()
    monkeypatch.setattr(_text, "cache_root", lambda: tmp_path)
    _text.clear_memory_cache()
    _text.cached_text_embeddings("k" * 8, lambda: torch.ones(2))
    expected = [str(p.absolute()) for p in paths.values()]
    expected += [str((tmp_path / "prompt.safetensors").absolute()),
                 str((tmp_path / "text-embeds" / ("k" * 8 + ".pt")).absolute())]
    missing = [p for p in expected if p not in renamed]
    assert not missing, missing
    assert json.loads((tmp_path / "eval" / "results.json").read_text())[0]["dataset"] == "voc"
    leftovers = [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


# -- coherence never overwrites an input --------------------------------------------------------
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
