"""The correctness step of benchmarks/gpu/run.py: tiny models on the device against the CPU.

Checks (docs/gpu.md gives their tolerances): backbone features (fp32 and fp16), every cut method
of the cut-method registry (``ovseg.masks.list_methods``), PAMR's torch path, the labeler, one ``Segmenter.label`` end to end.
CPU and CUDA random generators draw different noise, so the device backbones are given the CPU's
draw (``_same_noise``): only the arithmetic differs. Each check is one "correctness" row.
"""
from __future__ import annotations

import importlib.util
import time
import traceback
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _same_noise(backbone) -> None:
    """The CPU generator's noise draw on any device: CPU and CUDA generators draw differently, so
    features are compared with the same noise (only the arithmetic differs)."""
    def noise(shape):
        gen = torch.Generator().manual_seed(backbone.seed)
        return torch.randn((1, *shape[1:]), generator=gen).to(backbone.device).expand(*shape)

    backbone._noise = noise


def _cosine(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """(min, mean) cosine per position of two (B, C, h, w) maps."""
    cos = torch.nn.functional.cosine_similarity(a.double().cpu(), b.double().cpu(), dim=1)
    return float(cos.min()), float(cos.mean())


def _partition_equal(a, b) -> bool:
    """The same partition (ids may differ by a renaming)."""
    a, b = np.asarray(a).reshape(-1), np.asarray(b).reshape(-1)
    pairs = np.unique(np.stack([a, b]), axis=1)
    return pairs.shape[1] == len(np.unique(a)) == len(np.unique(b))


def _check(ctx, name: str, fn) -> None:
    """One correctness check: fn() -> dict with "ok"; an exception is a failed check, not a stop."""
    t0 = time.perf_counter()
    try:
        row = fn()
    except Exception as err:  # (run.py's StepTimeout is a BaseException: it is not caught here)  # noqa: BLE001 - recorded, the next check runs
        row = {"ok": False, "error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc(limit=6)}
    ctx.emit({"kind": "correctness", "check": name, "seconds": time.perf_counter() - t0, **row})


def step_correctness(ctx) -> None:
    from ovseg.features import create_backbone
    from ovseg.labels import create_labeler
    from ovseg.testing import make_tiny_backbone_weights, make_tiny_clip_weights

    bench = _load("bench_pipeline", ROOT / "benchmarks" / "pipeline.py")
    dev, cpu = ctx.device, torch.device("cpu")
    tmp = Path(ctx.tmp)
    weights = make_tiny_backbone_weights("ssd-1b", tmp / "tiny-ssd")
    clip_weights = make_tiny_clip_weights(tmp / "tiny-clip")
    images = torch.rand(2, 3, 256, 256, generator=torch.Generator().manual_seed(0))

    def features():
        ref = create_backbone("ssd-1b", weights=weights, device=cpu, dtype=torch.float32)
        row = {"tolerance": "min cosine per position >= 0.999 (fp32; TF32 convolutions allowed), "
                            ">= 0.98 (fp16 against fp32)"}
        with torch.inference_mode():
            want = ref(images)
            for dtype in (torch.float32, torch.float16):
                model = create_backbone("ssd-1b", weights=weights, device=dev, dtype=dtype)
                _same_noise(model)
                got = model(images.to(dev)).float()
                lo, mean = _cosine(got, want)
                row[str(dtype).split(".")[-1]] = {"min_cos": lo, "mean_cos": mean,
                                                  "max_abs": float((got.cpu() - want).abs().max())}
        row["ok"] = row["float32"]["min_cos"] >= 0.999 and row["float16"]["min_cos"] >= 0.98
        return row

    def cut(method: str):
        feats, truth = bench.planted_features(32, 32, 12, 64, seed=3)
        P = None
        if method == "random-walk":  # a row-stochastic walk from the planted features' similarity
            x = torch.nn.functional.normalize(feats.flatten(1).T, dim=1)
            P = torch.softmax(x @ x.T / 0.05, dim=1)
        want = registry_cut(method, feats[None], None if P is None else P[None])[0]
        got = registry_cut(method, feats[None].to(dev), None if P is None else P[None].to(dev))[0]
        same = _partition_equal(got.cpu(), want)
        return {"ok": bool(same and got.device.type == dev.type), "identical_ids": bool(torch.equal(got.cpu(), want)),
                "segments_device": int(got.max()) + 1, "segments_cpu": int(want.max()) + 1,
                "planted": int(truth.max()) + 1, "output_device": str(got.device),
                "tolerance": "the same partition"}

    def pamr():
        from ovseg.masks import pamr as run_pamr

        _, truth = bench.planted_features(24, 32, 8, 8, seed=1)
        segments = torch.nn.functional.interpolate(truth[None, None].float(), size=(96, 128), mode="nearest")[0, 0].long()
        image = torch.nn.functional.interpolate(torch.rand(1, 3, 12, 16, generator=torch.Generator().manual_seed(2)),
                                                size=(96, 128), mode="bilinear", align_corners=False)[0]
        want = run_pamr(image, segments, iterations=10, dilations=(1, 2, 4, 8), kernel="torch")
        got = run_pamr(image.to(dev), segments.to(dev), iterations=10, dilations=(1, 2, 4, 8), kernel="torch")
        agree = float((got.cpu() == want).float().mean())
        return {"ok": agree >= 0.999, "pixel_agreement": agree, "output_device": str(got.device),
                "tolerance": ">= 99.9 % of pixels the same label (float sums may round differently)"}

    def labeler():
        vocab = ["cat", "dog", "sky", "grass"]
        image = images[0]
        segments = torch.arange(4).repeat_interleave(64)[None].expand(256, -1).contiguous()
        want = create_labeler(weights=clip_weights, device=cpu).label(image, segments, vocab)
        got = create_labeler(weights=clip_weights, device=dev).label(image.to(dev), segments.to(dev), vocab)
        same = [a.class_index for a in want] == [b.class_index for b in got]
        diff = max(abs(a.score - b.score) for a, b in zip(want, got))
        return {"ok": same and diff <= 1e-3, "same_classes": same, "max_score_diff": diff,
                "tolerance": "the same class per segment, scores within 1e-3 (fp32)"}

    def label_end_to_end():
        from ovseg.pipeline import Segmenter

        results = []
        for device in (cpu, dev):
            seg = Segmenter(weights=weights, clip_weights=clip_weights, resolution=256, device=str(device),
                            dtype="float32", cache=False)
            _same_noise(seg.backbone)
            results.append(seg.label(str(ROOT / "examples" / "chelsea.png"), "cat,blanket,wall,floor"))
        a, b = results
        seg_agree = float((a.segment_map == b.segment_map).mean())
        lab_agree = float((a.label_map == b.label_map).mean())
        return {"ok": seg_agree >= 0.99 and lab_agree >= 0.99, "segment_pixel_agreement": seg_agree,
                "label_pixel_agreement": lab_agree, "segments": [len(a.segments), len(b.segments)],
                "tolerance": ">= 99 % of pixels the same segment id and class (same noise draw, fp32)"}

    _check(ctx, "features", features)
    for method in cut_methods(all_methods=True):
        _check(ctx, f"cut:{method}", lambda m=method: cut(m))
    if "kway" not in cut_methods(all_methods=True):
        ctx.emit({"kind": "correctness", "check": "cut:kway", "ok": None,
                  "note": "skipped: ovseg.masks registers no 'kway' method in this checkout"})
    _check(ctx, "pamr", pamr)
    _check(ctx, "labeler", labeler)
    _check(ctx, "label_end_to_end", label_end_to_end)


def cut_methods(all_methods: bool = False) -> list[str]:
    """The registered cut methods (those that need attention maps only with all_methods)."""
    from ovseg.masks import get_method, list_methods

    return [m for m in list_methods() if all_methods or get_method(m).needs == "features"]


def registry_cut(method: str, feats: torch.Tensor, transitions: torch.Tensor | None = None) -> list[torch.Tensor]:
    """feats (B, C, h, w) (+ P (B, N, N) for an attention method) -> B segment maps (h, w) int64,
    by the registered method at SegmenterConfig's defaults (the pipeline's build_tree and cut)."""
    from ovseg.masks import get_method
    from ovseg.pipeline import SegmenterConfig, stages

    cfg = SegmenterConfig(method=method)
    trees = stages.build_tree(feats, transitions, method=method, **stages.method_options(cfg))
    value = getattr(cfg, get_method(method).setting)
    return [stages.cut(tree, value)[0] for tree in trees]
