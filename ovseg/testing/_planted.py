"""Planted feature maps with a known partition, for tests and benchmarks of the cuts.

    lab = planted_layout("voronoi7", 32, 32)        # (h, w) int64 regions 0..K-1
    feats = planted_features(lab, noise=0.5)        # (C, h, w) float32
    planted_miou(segment_features(feats), lab)      # per-image Hungarian mIoU in [0, 1]

``PLANTED_SET`` is the project's set: the layouts of tests/masks/test_ncut.py (stripes, blocks, an L, a
disc), irregular regions (a warped Voronoi tessellation, blobs from smoothed noise) and
near-disconnected ones (well separated regions, a tiny region of 9 positions), each at two noise
levels (the tiny region at 0.1 and 0.4: at 0.5 its 9 positions fall apart into near-isolated
ones for both cuts, docs/kway.md). Features: one random centroid per region (optionally sharing a common direction, which
raises the cross-region cosine) plus Gaussian noise.
"""
from __future__ import annotations

import math

import numpy as np
import torch

LAYOUTS = ("halves", "stripes4", "blocks6", "blocks8", "lshape", "disc", "mixed5", "voronoi7", "blobs5",
           "tiny3", "bench8")
# (layout, noise, common): common > 0 gives centroids a shared direction (closer regions)
PLANTED_SET = tuple((name, noise, 0.0) for name in LAYOUTS for noise in ((0.1, 0.4) if name == "tiny3" else (0.1, 0.5))) + (
    ("separated4", 0.05, 0.0), ("bench8", 0.45, 1.5))


def planted_layout(name: str, h: int, w: int, *, seed: int = 0) -> torch.Tensor:
    """(h, w) int64 ground-truth regions numbered 0..K-1 (every id present)."""
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    fy, fx = (yy + 0.5) / h, (xx + 0.5) / w
    if name == "halves":
        lab = (xx >= w // 2).long()
    elif name in ("stripes4", "separated4"):
        lab = (yy * 4 // h).long()
    elif name == "blocks6":
        lab = (yy * 2 // h) * 3 + (xx * 3 // w)
    elif name == "blocks8":
        lab = (yy * 2 // h) * 4 + (xx * 4 // w)
    elif name == "lshape":
        lab = torch.zeros(h, w, dtype=torch.long)
        lab[: h // 2, : w // 2] = 1
        lab[:, -max(2, w // 8):] = 2
    elif name == "disc":
        lab = (((fy - 0.5) ** 2 + (fx - 0.5) ** 2) < (1 / 3) ** 2).long()
    elif name == "mixed5":
        lab = (xx * 3 // w).long()
        lab[: h // 3, : w // 3] = 3
        lab[((fy - 0.75) ** 2 + (fx - 0.75) ** 2) < (1 / 8) ** 2] = 4
    elif name == "voronoi7":  # irregular: Voronoi cells of 7 seeds with sinusoidally warped borders
        g = torch.Generator().manual_seed(seed)
        pts = torch.rand(7, 2, generator=g)
        wy = fy + 0.06 * torch.sin(9 * fx + 1.0)
        wx = fx + 0.06 * torch.sin(7 * fy + 2.0)
        dist = (wy[..., None] - pts[:, 0]) ** 2 + (wx[..., None] - pts[:, 1]) ** 2
        lab = dist.argmin(-1)
    elif name == "blobs5":  # irregular: argmax of 5 smooth random fields
        g = torch.Generator().manual_seed(seed + 1)
        fields = torch.zeros(5, h, w)
        for i in range(5):
            for _ in range(3):
                a, b, p, q = (torch.rand(4, generator=g) * torch.tensor([4.0, 4.0, 6.3, 6.3])).tolist()
                fields[i] += torch.sin((a + 1) * math.pi * fy + p) * torch.cos((b + 1) * math.pi * fx + q)
        lab = fields.argmax(0)
    elif name == "tiny3":  # near-disconnected: a 3x3 region inside a strip pair
        lab = (xx >= w // 2).long()
        lab[h // 4: h // 4 + 3, w // 4: w // 4 + 3] = 2
    elif name == "bench8":  # benchmarks/ncut.py's eight regions: stripes, blocks, a disc
        ly, lx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
        lab = (lx * 4).clamp(max=3.999).long()
        lab[(ly < 0.4) & (lx < 0.5)] = 4
        lab[(ly > 0.7) & (lx > 0.25) & (lx < 0.75)] = 5
        lab[(ly - 0.3) ** 2 + (lx - 0.75) ** 2 < 0.15 ** 2] = 6
        lab[(ly > 0.45) & (ly < 0.6) & (lx < 0.3)] = 7
    else:
        raise KeyError(f"unknown layout {name!r}; choose one of {', '.join(LAYOUTS + ('separated4',))}")
    return torch.unique(lab, return_inverse=True)[1].view(h, w)  # ids 0..K-1, all present


def planted_features(lab: torch.Tensor, *, c: int = 32, noise: float = 0.3, common: float = 0.0,
                     seed: int = 0) -> torch.Tensor:
    """(c, h, w) float32 features: centroid of the region (a shared direction of norm ~``common``
    times sqrt(c) plus a random one) plus Gaussian noise of relative std ``noise``."""
    g = torch.Generator().manual_seed(seed)
    k = int(lab.max()) + 1
    centroids = common * torch.randn(c, generator=g) + torch.randn(k, c, generator=g)
    scale = math.sqrt(2) if common > 0 else 1.0  # benchmarks/ncut.py's noise convention
    feats = centroids[lab] + noise * scale * torch.randn(*lab.shape, c, generator=g)
    return feats.permute(2, 0, 1).contiguous()


def planted_case(name: str, noise: float, common: float, side: int, *, c: int = 32, seed: int = 0):
    """(features (c, side, side), labels (side, side)) of one PLANTED_SET entry."""
    lab = planted_layout(name, side, side, seed=seed)
    return planted_features(lab, c=c, noise=noise, common=common, seed=seed + len(name)), lab


def planted_miou(seg: torch.Tensor, lab: torch.Tensor) -> float:
    """Per-image Hungarian mIoU of a segment map against the planted classes (the unsupervised
    protocol, METHOD.md 7, on one image)."""
    from ovseg.evaluation import mean_iou, unsupervised_counts

    lab = np.asarray(lab.cpu(), dtype=np.int64)
    return mean_iou(unsupervised_counts(lab, np.asarray(seg.cpu(), dtype=np.int64), int(lab.max()) + 1))
