"""One atomic write (ovseg/io/atomic.py): every writer of ovseg (reports, scores, caches) renames
its file into place, and leaves no temporary file."""
import json
import os

import numpy as np
import pytest
import torch

from ovseg import io as ovio


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
