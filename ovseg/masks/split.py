"""Split search of one tree node: the best threshold on the Fiedler vector, all at once.

Two implementations of the same search: ``best_split`` in torch on any device (large nodes), and
``best_split_small`` in NumPy float64 for small nodes (on the host, whatever the device), where a handful of single-threaded
NumPy calls beat torch's per-operation overhead (which dominates below a few hundred positions).
Both return the paper's threshold for "grid" and the exact optimum for "exact".
"""
from __future__ import annotations

import numpy as np
import torch


def best_split(w: torch.Tensor, y: torch.Tensor, *, split: str = "grid",
               num_thresholds: int = 100) -> tuple[float, torch.Tensor | None]:
    """Best sweep split of y, every threshold evaluated at once (no loop over thresholds).

    Positions are binned by where y falls among the thresholds (the paper's grid, or every
    distinct value of y for "exact"); one pass over W sums it into the (B, B) matrix E of
    inter-bin affinities. Cumulative sums over the sorted bins then give assoc(low, V) and
    cut(low, high) for every threshold at once.

    Args:
        w: (n, n) affinities of the node; y: (n,) Fiedler vector.

    Returns:
        (NCut, low) with low (n,) bool marking the side y <= threshold, or (inf, None) if no
        threshold leaves both sides non-empty (y constant).
    """
    n = y.numel()
    if split == "grid":
        lo, hi = float(y.min()), float(y.max())
        t = torch.linspace(0.99 * lo, 0.99 * hi, num_thresholds, dtype=y.dtype, device=y.device)
        bins = torch.searchsorted(t, y.contiguous(), right=False)  # y <= t[m]  <=>  bin <= m
        nbins = num_thresholds + 1
    else:
        _, bins = torch.unique(y, sorted=True, return_inverse=True)  # threshold between values
        nbins = int(bins.max()) + 1
    # E = B^T W B (B: one-hot bins), rows first: adding whole rows of W into their bin's row is
    # faster on CPU than scattering its columns (docs/benchmarks-ncut.md; no symmetry of W assumed)
    r = torch.zeros(nbins, n, dtype=w.dtype, device=w.device).index_add_(0, bins, w)
    e = torch.zeros(nbins, nbins, dtype=torch.float64, device=w.device).index_add_(1, bins, r.double())
    deg = e.sum(1)  # assoc(bin, V)
    assoc_low = torch.cumsum(deg, 0)  # assoc(low_m, V), low_m = bins <= m
    # cut(low_m, high_m) = sum_{c <= m < c'} E[c, c'] (Shi & Malik 2000, eq. 1): suffix sums over
    # c', prefix sums over c; sums of non-negative terms only, so no cancellation
    suffix = e.flip(1).cumsum(1).flip(1)  # suffix[c, j] = sum_{c' >= j} E[c, c']
    cut = torch.cat([suffix.cumsum(0).diagonal(1), suffix.new_zeros(1)])
    assoc_high = deg.sum() - assoc_low
    tiny = float(deg.sum()) * 1e-15 + 1e-300  # isolated positions: 0/0 -> 0, never NaN
    ncut = cut / assoc_low.clamp_min(tiny) + cut / assoc_high.clamp_min(tiny)  # eq. (2): Ncut(A, B)
    count_low = torch.cumsum(torch.bincount(bins, minlength=nbins), 0)
    valid = (count_low > 0) & (count_low < n)  # both sides non-empty: no 0/0 cut (defect 5)
    valid[-1] = False  # the last bin holds everything above the last threshold
    if not bool(valid.any()):
        if split == "grid":  # y one-signed at round-off level (it is D-orthogonal to 1)
            return best_split(w, y, split="exact")
        return float("inf"), None
    masked = torch.where(valid, ncut, torch.full_like(ncut, float("inf")))
    m = int(torch.argmin(masked))  # first threshold on ties, as the paper's argmin
    return float(masked[m]), bins <= m


def best_split_small(w: np.ndarray, y: np.ndarray, *, split: str = "grid",
                     num_thresholds: int = 100) -> tuple[float, np.ndarray | None]:
    """``best_split`` for small nodes: w (n, n) and y (n,) float64 NumPy arrays; same result.

    Sort y; with W in sorted order, lower_i = sum_{j before i} W_ij and upper_i = sum_{j after i}
    W_ij, so cut(first k, rest) = sum_{i<k} (upper_i - lower_i) and assoc(first k, V) =
    sum_{i<k} d_i for every k at once (Shi & Malik 2000, eq. 1 and 2).
    """
    n = y.size
    order = np.argsort(y, kind="stable")
    ys = y[order]
    ws = w.take(order, 0).take(order, 1)  # == w[np.ix_(order, order)], faster (docs/benchmarks-ncut.md)
    lower = np.tril(ws, -1).sum(1)
    upper = np.triu(ws, 1).sum(1)
    cut = np.cumsum(upper - lower)[:-1].clip(min=0.0)  # cut(A_k, B_k), k = 1..n-1, eq. (1)
    d = ws.sum(1)
    assoc_a = np.cumsum(d)[:-1]
    assoc_b = d.sum() - assoc_a
    tiny = d.sum() * 1e-15 + 1e-300
    with np.errstate(divide="ignore", invalid="ignore"):
        ncut = cut / np.maximum(assoc_a, tiny) + cut / np.maximum(assoc_b, tiny)  # eq. (2)
    if split == "grid":
        t = np.linspace(0.99 * ys[0], 0.99 * ys[-1], num_thresholds)
        k = np.searchsorted(ys, t, side="right")  # |{y <= t}| for each threshold
        k = k[(k > 0) & (k < n)]
        if k.size:
            j = int(np.argmin(ncut[k - 1]))  # first threshold on ties, as the paper's argmin
            return float(ncut[k[j] - 1]), _low(order, int(k[j]), n)
    valid = ys[1:] > ys[:-1]  # thresholds between distinct values only
    if not valid.any():
        return float("inf"), None
    masked = np.where(valid, ncut, np.inf)
    j = int(np.argmin(masked))
    return float(masked[j]), _low(order, j + 1, n)


def _low(order: np.ndarray, k: int, n: int) -> np.ndarray:
    low = np.zeros(n, dtype=bool)
    low[order[:k]] = True
    return low
