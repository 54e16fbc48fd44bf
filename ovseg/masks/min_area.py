"""A minimum segment size: small segments merged into their most similar adjacent segment.

A cut of a dense feature graph leaves small pieces (a few tokens of texture, an object's border).
Like SAM's ``min_mask_region_area`` and Felzenszwalb & Huttenlocher's ``min_size`` (IJCV 2004,
section 4.1), every segment smaller than ``min_area`` (a fraction of the image) is merged, the
smallest first, into the segment it touches (4-neighbourhood on the feature grid) whose mean
feature is the most similar (cosine of the means of the L2-normalised features, METHOD.md 4's
concept embedding). It runs on the cut's low-resolution segments, before concept assignment and
PAMR, on the host (K x K work, K the cut's segments).
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["MinAreaCut", "check_min_area", "merge_small", "with_min_area"]


def check_min_area(min_area) -> float:
    """min_area as a float in [0, 1); ValueError otherwise (0: no merging)."""
    if isinstance(min_area, bool) or not isinstance(min_area, (int, float)) or not 0 <= min_area < 1:
        raise ValueError(f"min_area must be a fraction of the image in [0, 1), got {min_area!r}")
    return float(min_area)


def _adjacency(labels: np.ndarray, K: int) -> np.ndarray:
    """(K, K) bool: segments that share a 4-neighbour edge on the (h, w) grid (diagonal False)."""
    adj = np.zeros((K, K), dtype=bool)
    for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1, :], labels[1:, :])):
        diff = a != b
        adj[a[diff], b[diff]] = True
    return adj | adj.T


def merge_small(segments: torch.Tensor, feats: torch.Tensor, min_area: float) -> torch.Tensor:
    """Merge every segment under ``min_area`` of the grid into its most similar adjacent segment.

    Args:
        segments: (h, w) int64 ids 0..K-1 (a cut's output).
        feats: (C, h, w) float features of the same grid (raw: normalised per position here).
        min_area: fraction of the h*w positions in [0, 1); 0 returns ``segments`` unchanged.

    Returns:
        (h, w) int64 ids 0..K'-1 numbered by first position in raster order, on segments' device.
        The smallest segment is merged first (ties: the lowest id), into the adjacent segment of
        highest cosine between mean features (ties: the lowest id); a merged segment that is still
        small is merged again. One segment is never merged; a segment with no neighbour stays.
    """
    min_area = check_min_area(min_area)
    if min_area == 0:
        return segments
    if segments.ndim != 2 or tuple(feats.shape[-2:]) != tuple(segments.shape):
        raise ValueError(f"segments (h, w) and feats (C, h, w) must share a grid, got "
                         f"{tuple(segments.shape)} and {tuple(feats.shape)}")
    labels = segments.cpu().numpy().astype(np.int64)
    K = int(labels.max()) + 1
    min_tokens = min_area * labels.size
    sizes = np.bincount(labels.ravel(), minlength=K).astype(np.float64)
    if K == 1 or sizes.min() >= min_tokens:
        return segments
    x = feats.detach().float().flatten(1).T  # (N, C), normalised per position (METHOD.md 4)
    x = torch.nn.functional.normalize(x, dim=1).double().cpu().numpy()
    sums = np.zeros((K, x.shape[1]))
    np.add.at(sums, labels.ravel(), x)
    adj = _adjacency(labels, K)
    target = np.arange(K)  # segment -> the segment it was merged into
    alive = sizes > 0
    live = int(alive.sum())
    while live > 1:
        s = int(np.argmin(np.where(alive, sizes, np.inf)))  # smallest first, ties: lowest id
        if sizes[s] >= min_tokens:
            break
        nbrs = np.flatnonzero(adj[s])
        if nbrs.size == 0:  # no neighbour (only when the grid's segments do not touch): it stays
            sizes[s] = np.inf
            continue
        means = sums[nbrs] / np.maximum(np.linalg.norm(sums[nbrs], axis=1, keepdims=True), 1e-12)
        mean_s = sums[s] / max(np.linalg.norm(sums[s]), 1e-12)
        t = nbrs[np.argmax(means @ mean_s)]  # argmax: ties go to the lowest id
        sums[t] += sums[s]
        sizes[t] += sizes[s]
        sizes[s], alive[s] = 0, False
        live -= 1
        adj[t] |= adj[s]
        adj[:, t] |= adj[:, s]
        adj[s], adj[:, s] = False, False
        adj[t, t] = False
        target[target == s] = t
    merged = target[labels].ravel()
    _, first = np.unique(merged, return_index=True)  # relabel by first position in raster order
    rank = np.empty(K, dtype=np.int64)
    rank[merged[np.sort(first)]] = np.arange(first.size)
    out = torch.from_numpy(rank[merged].reshape(labels.shape))
    return out.to(segments.device)


class MinAreaCut:
    """A cut method's recut-able object (``ovseg/settings/methods.py``) whose every cut has its
    segments under ``min_area`` merged (``merge_small``) on the feature grid: the same
    ``cut`` / ``leaves`` / ``num_segments`` / ``num_cuts``, so the demo's slider recuts it as
    the method's own object. feats: (C, h, w) of that image."""

    def __init__(self, inner, feats: torch.Tensor, min_area: float) -> None:
        self.inner, self.feats, self.min_area = inner, feats, check_min_area(min_area)
        self._k: dict = {}  # leaves -> K after merging (num_segments without a second merge)

    def cut(self, value) -> tuple[torch.Tensor, dict]:
        seg, info = self.inner.cut(value)
        return merge_small(seg, self.feats, self.min_area), info

    def leaves(self, value) -> tuple:
        return self.inner.leaves(value)  # the merge is a function of the method's cut

    def num_segments(self, value) -> int:
        key = self.leaves(value)
        if key not in self._k:
            self._k[key] = int(self.cut(value)[0].max()) + 1
        return self._k[key]

    def num_cuts(self) -> int:
        return self.inner.num_cuts()


def with_min_area(cuts: list, feats: torch.Tensor, min_area: float) -> list:
    """The B recut-able objects of a batch feats (B, C, h, w), each wrapped in ``MinAreaCut``
    when min_area > 0 (returned as they are for 0)."""
    if check_min_area(min_area) == 0:
        return cuts
    return [MinAreaCut(c, f, min_area) for c, f in zip(cuts, feats)]
