"""The stages on CUDA against the CPU, tiny models (`pytest -m cuda`; benchmarks/gpu/run.sh runs
them on the GPU host). Without CUDA they skip. CPU and CUDA generators draw different noise, so
the backbone on CUDA is given the CPU's draw: only the arithmetic differs."""
from pathlib import Path

import numpy as np
import pytest
import torch

CHELSEA = str(Path(__file__).resolve().parents[2] / "examples" / "chelsea.png")

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def _cpu_noise(backbone):
    def noise(shape):
        gen = torch.Generator().manual_seed(backbone.seed)
        return torch.randn((1, *shape[1:]), generator=gen).to(backbone.device).expand(*shape)

    backbone._noise = noise
    return backbone


def test_backbone_features_match_the_cpu(tiny_weights):
    from ovseg.features import create_backbone

    images = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    cpu = create_backbone("ssd-1b", weights=tiny_weights["weights"], device="cpu", dtype=torch.float32)
    gpu = _cpu_noise(create_backbone("ssd-1b", weights=tiny_weights["weights"], device="cuda", dtype=torch.float32))
    with torch.inference_mode():
        want, got = cpu(images), gpu(images.cuda())
    assert got.device.type == "cuda" and got.dtype == torch.float32
    cos = torch.nn.functional.cosine_similarity(got.cpu().double(), want.double(), dim=1)
    assert float(cos.min()) >= 0.999  # TF32 convolutions allowed


def test_pamr_torch_path_matches_the_cpu():
    from ovseg.masks import pamr

    gen = torch.Generator().manual_seed(1)
    image = torch.nn.functional.interpolate(torch.rand(1, 3, 12, 16, generator=gen), size=(96, 128),
                                            mode="bilinear", align_corners=False)[0]
    segments = torch.randint(0, 6, (6, 8), generator=gen).repeat_interleave(16, 0).repeat_interleave(16, 1)
    want = pamr(image, segments, kernel="torch")
    got = pamr(image.cuda(), segments.cuda())
    assert got.device.type == "cuda"
    assert float((got.cpu() == want).float().mean()) >= 0.999


def test_labeler_names_segments_like_the_cpu(tiny_weights):
    from ovseg.labels import create_labeler

    image = torch.rand(3, 128, 128, generator=torch.Generator().manual_seed(2))
    segments = torch.arange(4).repeat_interleave(32)[None].expand(128, -1).contiguous()
    vocab = ["cat", "dog", "sky", "grass"]
    want = create_labeler(weights=tiny_weights["clip_weights"], device="cpu").label(image, segments, vocab)
    got = create_labeler(weights=tiny_weights["clip_weights"], device="cuda").label(image.cuda(), segments.cuda(), vocab)
    assert [x.class_index for x in got] == [x.class_index for x in want]
    assert max(abs(a.score - b.score) for a, b in zip(got, want)) <= 1e-3


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_label_end_to_end_on_cuda(tiny_weights, dtype):
    from ovseg.pipeline import Segmenter

    results = []
    for device in ("cpu", "cuda"):
        seg = Segmenter(**tiny_weights, resolution=256, device=device, dtype="float32" if device == "cpu" else dtype,
                        cache=False)
        _cpu_noise(seg.backbone)
        results.append(seg.label(CHELSEA, "cat,blanket,wall,floor"))
    cpu, gpu = results
    assert gpu.segment_map.shape == cpu.segment_map.shape
    if dtype == "float32":  # fp16 features may cut differently: only that it runs and is well formed
        assert float(np.mean(gpu.segment_map == cpu.segment_map)) >= 0.99
        assert float(np.mean(gpu.label_map == cpu.label_map)) >= 0.99
    assert {s.class_name for s in gpu.segments} <= {"cat", "blanket", "wall", "floor"}
