"""benchmarks/pipeline.py in its tiny mode: every stage timed, both end-to-end modes run and
write the same bytes, the JSONL rows well formed. Tiny random checkpoints, CPU."""
import importlib.util
import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_pipeline", ROOT / "benchmarks" / "pipeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_mode_runs_and_reports_every_stage(bench, tmp_path):
    threads = torch.get_num_threads()
    out = tmp_path / "rows.jsonl"
    try:
        bench.main(["--size", "tiny", "--images", "2", "--resolutions", "64", "--batch-sizes", "2",
                    "--planted-k", "20", "--planted-repeat", "1", "--threads", "1", "--jsonl", str(out)])
    finally:
        torch.set_num_threads(threads)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    kinds = [r["kind"] for r in rows]
    assert kinds == ["build", "text_once", "stages", "end_to_end", "end_to_end", "planted"]
    stages = rows[2]
    assert set(stages["ms_per_image"]) == set(bench.STAGES)
    assert all(v >= 0 for v in stages["ms_per_image"].values()) and stages["ms_per_image"]["vae"] > 0
    assert stages["resolution"] == 64 and stages["batch"] == 2 and stages["peak_rss_mb"] > 0
    assert stages["peak_cuda_mb"] is None  # CPU: not measured, not invented
    serial, overlapped = rows[3], rows[4]
    assert (serial["mode"], overlapped["mode"]) == ("serial", "overlapped")
    assert overlapped["same_bytes_as_serial"] is True and overlapped["speedup_vs_serial"] > 0
    planted = rows[5]
    assert 1 <= planted["planted_k"] <= 4 and planted["grid"] == [2, 2]  # 20 capped by the 2x2 grid


def test_planted_features_have_k_regions(bench):
    feats, labels = bench.planted_features(16, 16, 20, 64)
    assert feats.shape == (64, 16, 16) and labels.shape == (16, 16)
    assert 15 <= int(labels.max()) + 1 <= 20 and torch.unique(labels).tolist() == list(range(int(labels.max()) + 1))
