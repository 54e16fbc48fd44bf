"""Feature conditioning before the cut: which layers, centring, normalisation (METHOD.md 10).

The cut compares features by their cosine (METHOD.md 2). Features whose cosines sit in a narrow
high band (ReLU CNN features share a large common component) give the cut a graph with little
contrast, and one stage of a CNN is either coarse and semantic or fine and texture-like. A
backbone's registry entry says which conditioning its features get by default
(``BackboneInfo.conditioning``); measured on real Lite features in docs/benchmarks-real.md.

    "raw"            the backbone's one feature stage, as it comes
    "center"         each token L2-normalised, then the image's mean token subtracted
    "multi"          a second stage resampled to the grid (average-pooled when finer, bilinear
                     when coarser), each part L2-normalised per token, concatenated
    "multi-center"   both: the parts L2-normalised, concatenated, then the mean token subtracted

Centring removes the component every token shares (its cosine with everything is what makes
the band narrow); the cut's affinity normalises each token again afterwards.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["CONDITIONINGS", "check_conditioning", "condition"]

CONDITIONINGS = ("raw", "center", "multi", "multi-center")


def check_conditioning(name: str) -> str:
    if name not in CONDITIONINGS:
        raise ValueError(f"conditioning must be one of {', '.join(CONDITIONINGS)}, got {name!r}")
    return name


def _l2(x: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> each position's C-vector L2-normalised (zero vectors stay zero)."""
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)


def _to_grid(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, C, h', w') -> (B, C, h, w): average-pooled when finer, bilinear when coarser."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if x.shape[-2] >= size[0]:
        return F.adaptive_avg_pool2d(x, size)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def condition(base: torch.Tensor, other: torch.Tensor | None, mode: str) -> torch.Tensor:
    """Conditioned features.

    Args:
        base: (B, C, h, w) float32, the stage that sets the grid.
        other: (B, C', h', w') float32, the second stage of "multi" modes (None otherwise).
        mode: one of ``CONDITIONINGS``.

    Returns:
        (B, C [+ C'], h, w) float32; "raw" returns ``base`` itself.
    """
    check_conditioning(mode)
    if mode == "raw":
        return base
    parts = [_l2(base)]
    if mode.startswith("multi"):
        if other is None:
            raise ValueError(f"conditioning {mode!r} needs a second stage")
        parts.append(_l2(_to_grid(other, tuple(base.shape[-2:]))))
    x = torch.cat(parts, 1) if len(parts) > 1 else parts[0]
    if mode.endswith("center"):
        x = x - x.mean(dim=(2, 3), keepdim=True)  # the image's mean token, per image
    return x
