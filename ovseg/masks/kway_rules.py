"""The K-way cut's merge rules and K rules, on affinities and labels (the config and the entry
points are in ``kway.py``, the solver in ``kway_solver.py``).

* ``merge_sequence``: the greedy merge order of k="auto" (the pair whose two-way NCut inside
  their union, Shi & Malik 2000 eq. 2, is largest first), with ``merges_at`` (how many merges a
  threshold tau allows), ``apply_merges`` / ``merge_map`` / ``merged_start`` to replay them.
* ``eigengap_k``: K of k="eigengap" (Ng, Jordan & Weiss 2002).
* ``relabel``: ids numbered by first position in raster order, batched.
"""
from __future__ import annotations

import torch

from ovseg.masks.kway_solver import _one_hot, _product


def relabel(labels: torch.Tensor) -> torch.Tensor:
    """(B, N) int64 cluster indices -> ids 0..K'-1 per image numbered by first position in raster
    order (empty clusters dropped), batched, no host sync."""
    B, N = labels.shape
    K = int(labels.max()) + 1 if labels.numel() else 1
    pos = torch.arange(N, device=labels.device).expand(B, N)
    first = torch.full((B, K), N, dtype=torch.int64, device=labels.device).scatter_reduce_(1, labels, pos, "amin")
    order = first.argsort(1)  # clusters by first position; empty ones (first = N) last
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(K, device=labels.device).expand(B, K))
    return rank.gather(1, labels)


def merge_sequence(W: torch.Tensor, labels: torch.Tensor, K: int, *,
                   product: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Greedy merge order of the clusters of labels (B, N) in [0, K) on W (B, N, N).

    At each step the live pair with the largest two-way NCut inside their union (Shi & Malik 2000,
    eq. 2, on the sub-graph a u b) is merged; ties go to the lowest (a, b). Returns (a, b, value),
    each (B, K - 1): b merged into a at that step, value its NCut (-inf once one cluster is left).
    Works on the (B, K, K) inter-cluster association matrix only; ``product`` (B, N, K) = W X of
    labels, when the caller has it (the solver returns it), saves the read of W.
    """
    X = _one_hot(labels[..., None], K, W.dtype)
    G = product if product is not None and product.shape[-1] == K else _product(W, X)[:, :, 0]
    A = torch.bmm(X[:, :, 0].transpose(1, 2).double(), G.double())  # X^T W X (K x K)
    alive = X[:, :, 0].sum(1) > 0
    B = W.shape[0]
    rows = torch.arange(B, device=W.device)
    upper = torch.ones(K, K, dtype=torch.bool, device=W.device).triu(1)
    out_a, out_b, out_v = [], [], []
    for _ in range(K - 1):
        q = A.diagonal(dim1=1, dim2=2)
        c = A
        ncut2 = _ratio(c, q[:, :, None] + c) + _ratio(c, q[:, None, :] + c)  # eq. (2) inside a u b
        ok = upper & alive[:, :, None] & alive[:, None, :]
        ncut2 = ncut2.masked_fill(~ok, float("-inf"))
        val, flat = ncut2.reshape(B, K * K).max(1)
        a, b = flat // K, flat % K
        live = val > float("-inf")
        A = A.clone()
        A[rows, a] += torch.where(live[:, None], A[rows, b], 0.0)  # rows a += rows b
        A[rows, :, a] += torch.where(live[:, None], A[rows, :, b], 0.0)  # then columns
        A[rows, b] = torch.where(live[:, None], 0.0, A[rows, b])
        A[rows, :, b] = torch.where(live[:, None], 0.0, A[rows, :, b])
        alive[rows, b] &= ~live
        out_a.append(a), out_b.append(b), out_v.append(val)
    if K == 1:
        empty = torch.zeros(B, 0, device=W.device)
        return empty.long(), empty.long(), empty.double()
    return torch.stack(out_a, 1), torch.stack(out_b, 1), torch.stack(out_v, 1)


def _ratio(num, den):
    return torch.where(den > 0, num / den.clamp_min(1e-300), torch.zeros_like(num))


def apply_merges(labels: torch.Tensor, a: torch.Tensor, b: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """labels (B, N) after the first ``count`` (B,) merges of (a, b) (B, S); batched."""
    return merge_map(int(labels.max()) + 1, a, b, count).gather(1, labels)


def merge_map(K: int, a: torch.Tensor, b: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """(B, K) cluster -> cluster it is merged into after the first ``count`` merges of (a, b)."""
    B = a.shape[0]
    target = torch.arange(K, device=a.device).expand(B, K).clone()
    for j in range(a.shape[1]):
        on = (j < count)[:, None] & (target == b[:, j:j + 1])
        target = torch.where(on, a[:, j:j + 1], target)
    return target


def merged_start(labels: torch.Tensor, product: torch.Tensor | None, a, b, count, K: int):
    """The partition (B, N) after the first ``count`` merges, relabelled, and its W X (B, N, K')
    summed from the presolve's G = W X (B, N, K) column by column (W X is linear in X, so no read
    of W; equal to the product up to float rounding), or None without ``product``."""
    merged = relabel(merge_map(K, a, b, count).gather(1, labels))
    if product is None:
        return merged, None
    B, N = labels.shape
    # the merged id of each presolve cluster (an empty one has a zero column: any id will do)
    col = torch.zeros(B, K, dtype=torch.int64, device=labels.device).scatter_(1, labels, merged)
    G = torch.zeros(B, N, int(merged.max()) + 1, dtype=product.dtype, device=product.device)
    return merged, G.scatter_add_(2, col[:, None, :].expand(B, N, K), product)


def merges_at(values: torch.Tensor, tau: float) -> torch.Tensor:
    """Number of merges (B,) performed at tau: merging stops at the first step whose NCut < tau."""
    return (values.cummin(1).values >= tau).sum(1)


def eigengap_k(W: torch.Tensor, k_max: int) -> torch.Tensor:
    """K (B,) in [1, k_max]: position of the largest gap among the top eigenvalues of
    D^-1/2 W D^-1/2 (Ng, Jordan & Weiss 2002; Falcon counts eigenvalues above kappa)."""
    d = W.sum(2).clamp_min(1e-30).rsqrt()
    lam = torch.linalg.eigvalsh((d[:, :, None] * W * d[:, None, :]).double()).flip(1)[:, : k_max + 1]
    if lam.shape[1] < 2:
        return torch.ones(W.shape[0], dtype=torch.int64, device=W.device)
    return (lam[:, :-1] - lam[:, 1:]).argmax(1) + 1


