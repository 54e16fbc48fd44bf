"""Predictors for `evaluate`, built from ovseg's own pipeline (imported lazily, only here).

The runner needs a callable `image (3, H, W) [0, 1] -> map (h, w) int64`; these builders make it
from `ovseg.Segmenter` (one tau), from the stage APIs (a tau sweep: one hierarchy per image, cut at
every tau), and from the labeler (open vocabulary).
"""
from __future__ import annotations

from typing import Callable, Sequence


def segmenter_predictor(*, backbone: str = "ssd-1b", weights: str | None = None, device: str | None = None,
                        tau: float = 0.5, alpha: float = 10.0) -> Callable:
    """image (3, H, W) -> segment map (H, W) int64 from `ovseg.Segmenter` at one tau."""
    import torch

    from ovseg.pipeline import Segmenter

    segmenter = Segmenter(backbone=backbone, weights=weights, device=device, tau=tau, alpha=alpha)

    @torch.no_grad()
    def predict(image: torch.Tensor) -> torch.Tensor:
        result = segmenter.segment(image[None])
        result = result[0] if isinstance(result, (list, tuple)) else result
        return result.segments

    return predict


def sweep_predictor(*, taus: Sequence[float], backbone: str = "ssd-1b", weights: str | None = None,
                    device: str | None = None, alpha: float = 10.0, refine: bool = True,
                    mask_size: int = 128) -> Callable:
    """image -> {"tau=<t>": segment map (mask_size, mask_size)}: one hierarchy cut at every tau.

    Follows the published benchmark: segments are brought to mask_size x mask_size by concept
    assignment and refined there with PAMR (10 iterations, dilations 1, 2, 4, 8; METHOD.md 4).
    """
    import torch
    import torch.nn.functional as F

    import ovseg
    from ovseg import masks

    taus = sorted(set(float(t) for t in taus))
    model = ovseg.create_backbone(backbone, weights=weights, device=device)

    @torch.no_grad()
    def predict(image: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = model(image[None].to(device))[0].float()  # (C, h, w)
        feats = F.normalize(feats, dim=0)
        hierarchy = masks.build_hierarchy(feats[None], alpha=alpha, tau=max(taus))
        small = F.interpolate(image[None], size=(mask_size, mask_size), mode="bilinear", align_corners=False)[0]
        out = {}
        for tau in taus:
            segments = masks.assign_concepts(feats, hierarchy.cut(tau), size=(mask_size, mask_size))
            if refine:
                segments = masks.pamr(small.to(segments.device), segments, iterations=10, dilations=[1, 2, 4, 8])
            out[f"tau={tau:g}"] = segments.cpu()
        return out

    return predict


def labeler_predictor(*, vocabulary: str, backbone: str = "ssd-1b", weights: str | None = None,
                      clip_weights: str | None = None, device: str | None = None, tau: float = 0.5,
                      alpha: float = 10.0) -> Callable:
    """image -> class map (H, W) int64: segments from the Segmenter, each named by the labeler."""
    import torch

    from ovseg.labels import create_labeler, load_vocabulary

    segment = segmenter_predictor(backbone=backbone, weights=weights, device=device, tau=tau, alpha=alpha)
    labeler = create_labeler(weights=clip_weights, device=device)
    vocab = load_vocabulary(vocabulary)

    @torch.no_grad()
    def predict(image: torch.Tensor) -> torch.Tensor:
        segments = torch.as_tensor(segment(image)).cpu()
        classes = torch.full_like(segments, -1)
        for item in labeler.label(image, segments, vocab, top_k=1):
            classes[segments == item.segment_id] = item.class_index
        return classes

    return predict


def make_predictor(protocol: str, *, vocabulary: str, taus: Sequence[float], backbone: str,
                   weights: str | None, clip_weights: str | None, device: str | None, alpha: float,
                   refine: bool) -> Callable:
    """The predictor the `ovseg eval` command scores (tests replace this function)."""
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    if protocol == "open-vocabulary":
        if len(taus) != 1:
            raise ValueError("the open-vocabulary protocol takes a single --tau")
        return labeler_predictor(vocabulary=vocabulary, backbone=backbone, weights=weights,
                                 clip_weights=clip_weights, device=device, tau=taus[0], alpha=alpha)
    return sweep_predictor(taus=taus, backbone=backbone, weights=weights, device=device, alpha=alpha,
                           refine=refine)
