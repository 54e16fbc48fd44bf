"""Recursive two-way normalized cut (Shi & Malik 2000) as DiffCut uses it (METHOD.md section 3).

Each node: Fiedler vector y of (D - W) y = lambda D y on the node's own sub-graph (all of its
positions take part, at every level), the best sweep split of y, accepted iff its NCut < tau;
each side is cut again. The whole recursion tree is kept (see ``Hierarchy``).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from ovseg.masks._eigen import fiedler_vector
from ovseg.masks._hierarchy import Hierarchy, HierarchyNode

SPLITS = ("grid", "exact")


@dataclass(frozen=True)
class NCutConfig:
    """Settings of the recursive normalized cut. Defaults reproduce DiffCut."""

    alpha: float = 10.0  # affinity exponent W = C**alpha (paper default): a soft threshold
    tau: float = 0.5  # accept a split iff NCut < tau (paper default); lower tau = fewer segments
    split: str = "grid"  # "grid": the paper's 100 thresholds in [0.99 min y, 0.99 max y], so tau
    # keeps the meaning it was tuned with; "exact": every distinct value of y (never a worse cut,
    # so slightly more segments at the same tau)
    num_thresholds: int = 100  # grid size of the paper
    dense_below: int = 256  # nodes smaller than this: dense float64 eigh is as fast as Krylov
    krylov_dim: int = 48  # Lanczos basis per restart; planted/real spectra converge in < 48
    max_restarts: int = 3  # restarts from the best Ritz vector before accepting it as is
    tol: float = 1e-5  # Lanczos residual ||M v - theta v|| at which v counts as converged
    seed: int = 0  # start vector of a node with no usable warm start (the root)

    def __post_init__(self) -> None:
        if not (self.alpha > 0 and self.alpha < float("inf")):
            raise ValueError(f"alpha must be positive and finite, got {self.alpha}")
        if not (self.tau >= 0 and self.tau < float("inf")):
            raise ValueError(f"tau must be >= 0 and finite, got {self.tau}")
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {self.split!r}")
        if self.num_thresholds < 1 or self.dense_below < 0 or self.krylov_dim < 2:
            raise ValueError("num_thresholds >= 1, dense_below >= 0 and krylov_dim >= 2 are required")

    def solver_options(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("alpha", "tau")}


def best_split(w: torch.Tensor, d: torch.Tensor, y: torch.Tensor, *, split: str = "grid",
               num_thresholds: int = 100) -> tuple[float, torch.Tensor | None]:
    """Best sweep split of y, all thresholds evaluated at once.

    Args:
        w: (n, n) affinities of the node; d: (n,) degrees; y: (n,) Fiedler vector.

    Returns:
        (NCut, low) with low (n,) bool marking the side y <= threshold, or (inf, None) if no
        threshold leaves both sides non-empty (y constant).
    """
    n = y.numel()
    order = torch.argsort(y, stable=True)
    ys = y[order]
    ws = w.index_select(0, order).index_select(1, order)
    lower = ws.tril(-1).sum(1).double()  # sum_{j before i} W_ij, in sorted order
    diag = ws.diagonal().double()
    ds = d[order].double()
    upper = ds - lower - diag  # sum_{j after i} W_ij
    # A_k = first k sorted positions. cut(A_k, B_k) = sum_{i<k} (upper_i - lower_i), and
    # assoc(A_k, V) = sum_{i<k} d_i (Shi & Malik 2000, eq. (2)); k = 1..n-1.
    cut = torch.cumsum(upper - lower, 0)[:-1].clamp_min(0.0)
    assoc_a = torch.cumsum(ds, 0)[:-1]
    assoc_b = ds.sum() - assoc_a
    tiny = float(ds.sum()) * 1e-15 + 1e-300
    ncut = cut / assoc_a.clamp_min(tiny) + cut / assoc_b.clamp_min(tiny)  # eq. (2): NCut(A, B)
    valid = ys[1:] > ys[:-1]  # a threshold between two distinct values: both sides non-empty
    if split == "grid":
        lo, hi = float(ys[0]), float(ys[-1])
        t = torch.linspace(0.99 * lo, 0.99 * hi, num_thresholds, dtype=ys.dtype, device=ys.device)
        k = torch.searchsorted(ys.contiguous(), t, right=True)  # |{y <= t}| for each threshold
        ok = (k > 0) & (k < n)
        if bool(ok.any()):
            cand = ncut[(k[ok] - 1)]
            j = int(torch.argmin(cand))  # first threshold on ties, as the paper's argmin
            best_k, best = int(k[ok][j]), float(cand[j])
            return best, _side(order, best_k, n)
        # y has one sign only at round-off level (it is D-orthogonal to 1): fall back to exact
    if not bool(valid.any()):
        return float("inf"), None
    masked = torch.where(valid, ncut, torch.full_like(ncut, float("inf")))
    j = int(torch.argmin(masked))
    return float(masked[j]), _side(order, j + 1, n)


def _side(order: torch.Tensor, k: int, n: int) -> torch.Tensor:
    low = torch.zeros(n, dtype=torch.bool, device=order.device)
    low[order[:k]] = True
    return low


def _is_uniform(w: torch.Tensor) -> bool:
    lo, hi = torch.aminmax(w)
    return float(hi - lo) <= 1e-7 * float(hi.abs()) + 1e-30


def check_affinity(w: object) -> torch.Tensor:
    if not isinstance(w, torch.Tensor):
        raise TypeError(f"W must be a torch.Tensor, got {type(w).__name__}")
    if w.ndim != 2 or w.shape[0] != w.shape[1] or w.shape[0] == 0:
        raise ValueError(f"W must be a non-empty square (N, N) matrix, got shape {tuple(w.shape)}")
    if not w.is_floating_point():
        w = w.float()
    if not bool(torch.isfinite(w).all()):
        raise ValueError("W holds NaN or inf")
    if bool((w < 0).any()):
        raise ValueError("W must be non-negative")
    scale = float(w.abs().max()) + 1e-30
    if float((w - w.T).abs().max()) > 1e-4 * scale:
        raise ValueError("W must be symmetric")
    return (w + w.T) / 2


def ncut_hierarchy(W: torch.Tensor, *, tau: float = 0.5, shape: tuple[int, int] | None = None,
                   **solver_options) -> Hierarchy:
    """Recursive two-way normalized cut of an affinity matrix.

    Args:
        W: (N, N) symmetric non-negative affinities, any device (the work stays there).
        tau: accept a split iff its NCut < tau. The tree is built at this tau; ``Hierarchy.cut``
            gives the segmentation at any smaller tau without recomputation.
        shape: (h, w) with h*w = N to get (h, w) maps from ``Hierarchy.cut``.
        **solver_options: any NCutConfig field except alpha/tau (split, num_thresholds,
            dense_below, krylov_dim, max_restarts, tol, seed).

    Returns:
        The recursion tree; ``.cut()`` is the segmentation at ``tau``.
    """
    cfg = NCutConfig(tau=tau, **solver_options)
    w = check_affinity(W)
    n_all = w.shape[0]
    if shape is not None:
        shape = (int(shape[0]), int(shape[1]))
        if shape[0] * shape[1] != n_all:
            raise ValueError(f"shape {shape} does not hold N={n_all} positions")
    eig = dict(dense_below=cfg.dense_below, krylov_dim=cfg.krylov_dim,
               max_restarts=cfg.max_restarts, tol=cfg.tol, seed=cfg.seed)
    nodes: list[HierarchyNode | None] = []
    # queue entries: (members, parent index, depth, warm start y restricted to members)
    queue = [(torch.arange(n_all, device=w.device), None, 0, None)]
    while queue:
        members, parent, depth, start = queue.pop(0)
        index = len(nodes)
        nodes.append(None)
        n = members.numel()
        cost, solver, reason, children = float("inf"), "none", "single", ()
        if n > 1:
            sub = w if n == n_all else w.index_select(0, members).index_select(1, members)
            if _is_uniform(sub):
                reason = "uniform"  # every split has the same NCut: there is nothing to find
            else:
                d = sub.sum(1)  # degrees d_i = sum_j W_ij (Shi & Malik 2000, sec. 2)
                try:
                    y, solver = fiedler_vector(sub, d, start=start, **eig)
                    cost, low = best_split(sub, d, y, split=cfg.split, num_thresholds=cfg.num_thresholds)
                except (RuntimeError, ValueError):  # even the dense fallback failed: keep as leaf
                    cost, low, reason = float("inf"), None, "solver-failed"
                if low is not None and cost < cfg.tau:
                    reason = "split"
                    a, b = members[low], members[~low]
                    first = len(nodes) + len(queue)
                    children = (first, first + 1)
                    queue.append((a, index, depth + 1, y[low]))
                    queue.append((b, index, depth + 1, y[~low]))
                elif reason != "solver-failed":
                    reason = "cost>=tau" if low is not None else "uniform"
        nodes[index] = HierarchyNode(index=index, parent=parent, children=children, members=members,
                                     cost=cost, depth=depth, reason=reason, solver=solver,
                                     first=int(members.min()))
    return Hierarchy(nodes, tau=cfg.tau, num_positions=n_all, shape=shape, device=w.device)
