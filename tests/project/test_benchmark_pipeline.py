"""benchmarks/pipeline.py in its tiny mode: every stage timed, both end-to-end modes run and
write the same bytes, the JSONL rows well formed. Tiny random checkpoints, CPU."""
import importlib.util
import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


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


def test_random_labeler_full_path_builds_an_open_clip_architecture(tmp_path):
    """size="full" builds open_clip's architecture by name, without weights; checked here on a
    tiny architecture registered under a test name (the real ConvNeXt-L is 1.4 GB)."""
    import open_clip

    from ovseg.testing import make_random_labeler
    from ovseg.testing._labels import TINY_CONFIGS

    (tmp_path / "ovseg-test-tiny-convnext.json").write_text(json.dumps(TINY_CONFIGS["convnext"]))
    open_clip.add_model_config(tmp_path / "ovseg-test-tiny-convnext.json")
    labeler = make_random_labeler("ovseg-test-tiny-convnext", size="full")
    assert labeler.identity == "random:ovseg-test-tiny-convnext"
    assert labeler.resolution is None  # the published default: CLIP sees the working image as given
    labels = labeler.label(torch.rand(3, 64, 96), torch.zeros(64, 96, dtype=torch.long), ["dog", "cat"])
    assert [x.segment_id for x in labels] == [0]
    with pytest.raises(ValueError, match="size must be"):
        make_random_labeler(size="huge")


def test_planted_outputs_keep_the_backbone_pass_and_depend_only_on_the_image(bench):
    """--features planted: the real forward still runs (its cost is what is measured); the
    features are planted, of the output's shape and dtype, the same for the same image."""
    calls = []

    class Backbone(torch.nn.Module):
        def forward(self, images):
            calls.append(images.shape[0])
            return torch.zeros(images.shape[0], 32, 8, 8, dtype=torch.float16)

    backbone = Backbone()
    bench.plant_outputs(backbone, 12)
    images = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    batch = backbone(images)
    assert calls == [3] and batch.shape == (3, 32, 8, 8) and batch.dtype == torch.float16
    assert torch.equal(backbone(images[1:2])[0], batch[1])  # batch of 1 vs 3: same features
    assert batch.float().std() > 0.1  # not the real (all-zero) output
