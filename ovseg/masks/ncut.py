"""Recursive two-way normalized cut (Shi & Malik 2000) as DiffCut uses it (METHOD.md section 3).

Each node: Fiedler vector y of (D - W) y = lambda D y on the node's own sub-graph (all of its
positions take part, at every level), the best sweep split of y, accepted iff its NCut < tau;
each side is cut again. The whole recursion tree is kept (see ``Hierarchy``).
"""
from __future__ import annotations

import contextlib
import functools
import math
import warnings
from collections import deque
from dataclasses import dataclass, fields

import numpy as np
import torch

from ovseg.settings.defaults import ALPHA, TAU
from ovseg.masks.eigen import fiedler_small, fiedler_vector
from ovseg.masks.tree import Hierarchy, HierarchyNode
from ovseg.masks.split import best_split, best_split_small

SPLITS = ("grid", "exact")


@dataclass(frozen=True)
class NCutConfig:
    """Settings of the recursive normalized cut. Defaults reproduce DiffCut.

    Split search: the default "grid" evaluates the paper's 100 thresholds evenly spaced in
    [0.99 min y, 0.99 max y], because tau = 0.5 and the published results were tuned with it; the
    exact search ("exact", every distinct value of y) never finds a worse cut, so at the same tau
    it gives slightly more segments, which would silently change what tau means. Both are
    evaluated in one vectorised pass (no loop over thresholds). Deviations from the published
    code are fixes of its defects only (docs/benchmarks-ncut.md).
    """

    alpha: float | str = ALPHA  # affinity exponent W = C**alpha (paper default): a soft threshold;
    # "auto": chosen per image (ovseg.masks.calibrate, METHOD.md 10)
    tau: float = TAU  # accept a split iff NCut < tau (paper default); lower tau = fewer segments
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
        if not (isinstance(self.alpha, str) and self.alpha == "auto") and not (0 < self.alpha < float("inf")):
            raise ValueError(f'alpha must be positive and finite, or "auto", got {self.alpha}')
        if not (self.tau >= 0 and self.tau < float("inf")):
            raise ValueError(f"tau must be >= 0 and finite, got {self.tau}")
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {self.split!r}")
        if self.num_thresholds < 1 or self.dense_below < 0 or self.krylov_dim < 2:
            raise ValueError("num_thresholds >= 1, dense_below >= 0 and krylov_dim >= 2 are required")

    def solver_options(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("alpha", "tau")}


def _is_uniform(lo: float, hi: float) -> bool:
    return hi - lo <= 1e-7 * abs(hi) + 1e-30


def check_affinity(w: object) -> tuple[torch.Tensor, float, float]:
    """Validate W at the edge; returns (W as float, min, max). Symmetry is probed with two
    matrix-vector products (W x vs W^T x), which costs O(N^2) reads but no transpose copy."""
    if not isinstance(w, torch.Tensor):
        raise TypeError(f"W must be a torch.Tensor, got {type(w).__name__}")
    if w.ndim != 2 or w.shape[0] != w.shape[1] or w.shape[0] == 0:
        raise ValueError(f"W must be a non-empty square (N, N) matrix, got shape {tuple(w.shape)}")
    w = w.detach()
    if not w.is_floating_point() or w.dtype in (torch.float16, torch.bfloat16):
        w = w.float()
    lo, hi = (float(v) for v in torch.aminmax(w))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError("W holds NaN or inf")
    if lo < 0:
        raise ValueError(f"W must be non-negative (min {lo:g})")
    if hi * w.shape[0] > 1e30:  # degree sums would overflow; NCut does not change when W is scaled
        w, lo, hi = w / hi, lo / hi, 1.0
    i = torch.arange(w.shape[0], dtype=w.dtype, device=w.device)
    x = torch.stack([torch.cos(0.37 * i), torch.sin(1.71 * i + 0.5)], 1)  # two fixed probes
    wx, wtx = w @ x, w.T @ x
    if not float((wx - wtx).abs().max()) <= 1e-4 * (float(wx.abs().max()) + hi * 1e-6 + 1e-30):
        raise ValueError("W must be symmetric")
    return w, lo, hi


def ncut_hierarchy(W: torch.Tensor, *, tau: float = TAU, shape: tuple[int, int] | None = None,
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
    w, lo, hi = check_affinity(W)
    if shape is not None:
        shape = (int(shape[0]), int(shape[1]))
        if shape[0] * shape[1] != w.shape[0]:
            raise ValueError(f"shape {shape} does not hold N={w.shape[0]} positions")
    return ncut_tree(w, lo, hi, cfg, shape)


@functools.cache
def _blas_controller():
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # a declared dependency; without it the cut is only slower
        return None
    return ThreadpoolController()


def _single_threaded_blas():
    """NumPy/SciPy's BLAS limited to one thread for the duration of a CPU cut.

    The small nodes are solved by SciPy (LAPACK, n < 256), the large ones by torch. OpenBLAS's
    worker threads keep spinning after each small call and take the cores from torch's threads
    (the cost: docs/benchmarks-ncut.md, "One BLAS thread during the cut"). Matrices below 256
    rows gain nothing from BLAS threads.
    """
    controller = _blas_controller()
    return contextlib.nullcontext() if controller is None else controller.limit(limits=1, user_api="blas")


def ncut_tree(w: torch.Tensor, lo: float, hi: float, cfg: NCutConfig,
              shape: tuple[int, int] | None) -> Hierarchy:
    """``ncut_hierarchy`` without input validation (callers validate once at their entry).

    Args:
        w: (N, N) float32/float64 symmetric non-negative finite affinities, degree sums finite.
        lo, hi: min and max of w (hi may be any upper bound <= 1 that keeps ``hi - lo`` above the
            uniformity test when w is not uniform; only the root's uniformity test reads them).
        cfg: the settings; shape: (h, w) with h*w = N, or None.

    Returns:
        The recursion tree, as ``ncut_hierarchy``.
    """
    with _single_threaded_blas():  # small nodes are solved by SciPy on the host, whatever w's device
        return _ncut_tree(w, lo, hi, cfg, shape)


def _is_host(t: torch.Tensor) -> bool:
    """True for tensors in host memory (NumPy can read them in place)."""
    return t.device.type == "cpu"


def _block(source: tuple[torch.Tensor, torch.Tensor], on_cpu: bool) -> torch.Tensor:
    """Rows and columns ``idx`` of the parent's block ``mat``: NumPy's ``take`` on CPU (row copies,
    faster than torch's ``index_select`` there: docs/benchmarks-ncut.md), ``index_select`` elsewhere."""
    mat, idx = source
    if on_cpu:
        i = idx.numpy()
        return torch.from_numpy(mat.detach().numpy().take(i, 0).take(i, 1))
    return mat.index_select(0, idx).index_select(1, idx)


def _ncut_tree(w: torch.Tensor, lo: float, hi: float, cfg: NCutConfig,
               shape: tuple[int, int] | None) -> Hierarchy:
    n_all = w.shape[0]
    eig = dict(dense_below=cfg.dense_below, krylov_dim=cfg.krylov_dim,
               max_restarts=cfg.max_restarts, tol=cfg.tol, seed=cfg.seed)
    on_cpu = _is_host(w)
    nodes: list[HierarchyNode | None] = []
    # queue entries: (members, parent index, depth, warm start y restricted to members, the
    # parent's affinity block and the child's positions in it: the child's block is read from
    # there, a smaller matrix than w, as the blocks of one tree level are disjoint parts of w)
    queue = deque([(torch.arange(n_all, device=w.device), None, 0, None, None)])
    while queue:
        members, parent, depth, start, source = queue.popleft()
        index = len(nodes)
        nodes.append(None)
        n = members.numel()
        cost, solver, reason, children = float("inf"), "none", "single", ()
        if n > 1:
            # NumPy float64 on the host, whatever w's device: cheaper than torch's per-op overhead
            # on a CPU, and than an accelerator's small dense eigh plus ~15 host syncs per node
            small = n < cfg.dense_below
            block = w if source is None else _block(source, on_cpu)  # == w[members][:, members]
            sub = block
            if small:
                sub = block.detach().cpu().numpy().astype(np.float64)  # <= 256 x 256 to the host
                lo, hi = float(sub.min()), float(sub.max())
            elif n < n_all:
                lo, hi = (float(v) for v in torch.aminmax(sub))
            if _is_uniform(lo, hi):
                reason = "uniform"  # every split has the same NCut: there is nothing to find
            else:
                try:
                    if small:
                        y_np = fiedler_small(sub)
                        solver = "dense"
                        cost, low_np = best_split_small(sub, y_np, split=cfg.split,
                                                        num_thresholds=cfg.num_thresholds)
                        y = torch.from_numpy(y_np).to(w.device)
                        low = None if low_np is None else torch.from_numpy(low_np).to(w.device)
                    else:
                        d = sub.sum(1)  # degrees d_i = sum_j W_ij (Shi & Malik 2000, sec. 2)
                        y, solver = fiedler_vector(sub, d, start=start, **eig)
                        cost, low = best_split(sub, y, split=cfg.split, num_thresholds=cfg.num_thresholds)
                except torch.cuda.OutOfMemoryError:
                    raise  # not a solver failure: fail loudly
                except (RuntimeError, ValueError, np.linalg.LinAlgError) as err:
                    cost, low, reason = float("inf"), None, "solver-failed"  # even dense failed
                    warnings.warn(f"normalized cut: eigensolvers failed on a node of {n} positions "
                                  f"({err}); it is kept as one segment", RuntimeWarning, stacklevel=2)
                if low is not None and cost < cfg.tau:
                    reason = "split"
                    a, b = members[low], members[~low]
                    first = len(nodes) + len(queue)
                    children = (first, first + 1)
                    parent_block, side = block, low
                    if small and not on_cpu:  # an accelerator's small subtree stays on the host
                        parent_block, side = torch.from_numpy(sub), torch.from_numpy(low_np)
                    queue.append((a, index, depth + 1, y[low], (parent_block, torch.nonzero(side).flatten())))
                    queue.append((b, index, depth + 1, y[~low], (parent_block, torch.nonzero(~side).flatten())))
                elif reason != "solver-failed":
                    reason = "cost>=tau" if low is not None else "uniform"
        nodes[index] = HierarchyNode(index=index, parent=parent, children=children, members=members,
                                     cost=cost, depth=depth, reason=reason, solver=solver,
                                     first=int(members.min()))
    return Hierarchy(nodes, tau=cfg.tau, num_positions=n_all, shape=shape, device=w.device)
