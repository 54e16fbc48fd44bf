"""The recursion tree of the normalized cut, and what is read off it.

* ``Hierarchy`` / ``HierarchyNode``: the tree of a recursive two-way cut built at tau; its pruning
  at any tau up to the build tau (``Hierarchy.cut``), with nothing recomputed.
* ``auto_tau`` / ``cut_auto``: the per-image threshold (widest stable tau interval,
  docs/random-walk.md), used by every recursive-NCut method for ``tau="auto"``.
* ``NCutTree``: one image's tree as the cut-method registry hands it out (recut-able at any tau).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ovseg.settings.defaults import AUTO_TAU_MAX, TAU


@dataclass(frozen=True)
class HierarchyNode:
    """One node of the recursion tree.

    index: position in Hierarchy.nodes (the root is 0; a parent always precedes its children).
    parent: parent index, None for the root.
    children: the two children if this node was split at the build tau, else ().
    members: (n,) int64 positions of this node (raster order indices into the h*w grid).
    cost: best two-way NCut found at this node (Shi & Malik 2000, eq. (2)); the node is split at
        threshold t iff cost < t. inf where no split exists (one position, uniform affinities,
        solver failure), so such a node is never split.
    depth: 0 for the root.
    reason: "split", "cost>=tau", "single", "uniform" or "solver-failed": why it was (not) split.
    solver: how its Fiedler vector was found: "dense", "lanczos", "dense-fallback", "none", or
        "isolated" (large nodes with isolated positions: no eigenvector, see masks/eigen.py;
        small nodes (solved on the host on any device) record "dense" for the same rule).
    first: smallest member, used to order segment ids by first position in raster order.
    """

    index: int
    parent: int | None
    children: tuple[int, ...]
    members: torch.Tensor
    cost: float
    depth: int
    reason: str
    solver: str
    first: int

    @property
    def size(self) -> int:
        return int(self.members.numel())


class Hierarchy:
    """Recursion tree of a recursive two-way normalized cut built at threshold ``tau``.

    A split's acceptance depends only on its own cost, so the segmentation at any tau' <= tau is
    a pruning of this tree: descend from the root while ``cost < tau'``; the nodes where the
    descent stops are the segments. Nothing is recomputed.
    """

    def __init__(self, nodes: list[HierarchyNode], *, tau: float, num_positions: int,
                 shape: tuple[int, int] | None, device: torch.device):
        self.nodes = nodes
        self.tau = float(tau)
        self.num_positions = int(num_positions)
        self.shape = shape
        self.device = device

    def __repr__(self) -> str:
        return (f"Hierarchy(tau={self.tau}, positions={self.num_positions}, nodes={len(self.nodes)}, "
                f"segments={self.num_segments()})")

    def _check_tau(self, tau: float | None) -> float:
        if tau is None:
            return self.tau
        tau = float(tau)
        if math.isnan(tau):
            raise ValueError("tau must not be NaN")
        if tau > self.tau + 1e-12:
            raise ValueError(
                f"tau={tau} exceeds the tau this hierarchy was built with ({self.tau}); splits with "
                f"cost in [{self.tau}, {tau}) were never explored: rebuild with a larger tau"
            )
        return tau

    def leaves(self, tau: float | None = None) -> list[int]:
        """Indices of the nodes that are segments at ``tau`` (default: the build tau), ordered by
        their first position in raster order (that order gives the segment ids)."""
        tau = self._check_tau(tau)
        out, stack = [], [0]
        while stack:
            node = self.nodes[stack.pop()]
            if node.children and node.cost < tau:  # the recursion's acceptance test
                stack.extend(node.children)
            else:
                out.append(node.index)
        return sorted(out, key=lambda i: self.nodes[i].first)

    def num_segments(self, tau: float | None = None) -> int:
        return len(self.leaves(tau))

    def cut(self, tau: float | None = None) -> torch.Tensor:
        """Segment ids at ``tau`` <= build tau: int64 (N,), or (h, w) if the tree has a shape; ids
        0..K-1 numbered by first position in raster order."""
        labels = torch.empty(self.num_positions, dtype=torch.int64, device=self.device)
        for k, i in enumerate(self.leaves(tau)):
            labels[self.nodes[i].members] = k
        return labels.view(self.shape) if self.shape is not None else labels

    def thresholds(self) -> list[float]:
        """Distinct taus at which the segmentation changes, ascending.

        Node i is split at tau iff tau > max(cost on the path root..i), so the segmentation is
        constant for tau in each interval (t_j, t_{j+1}] and changes just above each t_j. For a
        granularity slider: ``[h.cut(t + eps) for t in h.thresholds()]`` (eps small, and the last
        one capped at the build tau) runs coarse to fine, plus ``h.cut(0.0)``, one segment.
        """
        gate = [0.0] * len(self.nodes)
        values = set()
        for node in self.nodes:  # parents precede children
            g = node.cost if node.parent is None else max(gate[node.parent], node.cost)
            gate[node.index] = g
            if node.children:
                values.add(g)
        return sorted(values)

    def segmentations(self) -> list[torch.Tensor]:
        """Every distinct segmentation the tree holds, coarse (one segment) to fine (build tau)."""
        ts = self.thresholds()
        cuts = [self.cut(0.0)]
        for j, t in enumerate(ts):
            hi = ts[j + 1] if j + 1 < len(ts) else self.tau
            cuts.append(self.cut((t + hi) / 2 if hi > t else hi))
        return cuts


# AUTO_TAU_MAX = 1: the random-walk NCut of a split of an unstructured chain (a random split) ~ 1


def auto_tau(hierarchy: Hierarchy, *, tau_max: float | None = None,
             one_segment_weight: float = 1.0) -> float | None:
    """Per-image NCut threshold: the middle of the widest tau interval with one segmentation.

    The segmentation of a hierarchy is piecewise constant in tau, changing at
    ``hierarchy.thresholds()`` t_1 < ... < t_m. With t_0 = 0 (one segment) and t_{m+1} = tau_max
    (default: the build tau), pick the j maximising t_{j+1} - t_j (the segmentation that persists
    over the widest range of tau, as the cluster-lifetime rule for dendrograms) and return
    (t_j + t_{j+1}) / 2. Ties go to the coarser segmentation. Uses the tree only. The first
    interval [0, t_1] (one segment) counts with weight ``one_segment_weight`` (default 1; 0.5
    helps chains whose real splits are expensive and hurts attention-like ones: see
    docs/random-walk.md). If the tree ends in
    single patches only (no leaf was rejected, none uniform), the last interval does not count.

    ``tau_max`` may exceed the build tau: the next change point above it is then known exactly
    (the smallest cost of a rejected leaf), the unknown ones lie between that and tau_max, so the
    answer is still determined when a known gap is at least as wide as that unknown stretch;
    otherwise None is returned (rebuild the tree at tau_max). See docs/random-walk.md.
    """
    top = hierarchy.tau if tau_max is None else float(tau_max)
    all_ts = hierarchy.thresholds()
    ts = [0.0] + [t for t in all_ts if t < min(top, hierarchy.tau)]
    rejected = [n.cost for n in hierarchy.nodes if not n.children and n.cost < float("inf")]
    unknown = 0.0  # width of the stretch below top whose change points were not explored
    if top > hierarchy.tau:
        nxt = min(rejected, default=float("inf"))  # exact next change point above the build tau
        if nxt < top:
            unknown = top - nxt
        top = min(top, nxt)
    ts.append(top)
    gaps = [b - a for a, b in zip(ts[:-1], ts[1:])]
    gaps[0] *= one_segment_weight  # the one-segment interval starts at the bound 0, not a change
    leaves = [n for n in hierarchy.nodes if not n.children]
    exhausted = (not rejected and all(n.size == 1 for n in leaves)  # the finest cut: single patches
                 and len(ts) == len(all_ts) + 2)
    if exhausted and len(gaps) > 1:
        # every leaf is a single patch: the finest segmentation "persists" only because nothing
        # is left to split, so its interval measures the ceiling, not the data. (A uniform leaf
        # is different: nothing in it to find is a property of the data, and its range counts.)
        gaps[-1] = -1.0
    j = max(range(len(gaps)), key=lambda i: (gaps[i], -i))  # widest; first (coarsest) on ties
    if unknown > 0.0 and gaps[j] < unknown:
        return None
    return (ts[j] + ts[j + 1]) / 2


def cut_auto(build: Callable[[float], Hierarchy], *, tau_max: float = AUTO_TAU_MAX,
             build_tau: float = TAU) -> tuple[torch.Tensor, float]:
    """Segments at the automatic tau (``auto_tau``) of the tree ``build(tau)`` returns.

    The tree is first built at ``build_tau``; only when that does not settle the answer is it
    rebuilt at ``tau_max`` (see ``auto_tau``). Returns (segments, the tau used).
    """
    tree = build(min(build_tau, tau_max))
    t = auto_tau(tree, tau_max=tau_max)
    if t is None:  # a wider gap may hide above the build tau: explore up to tau_max
        tree = build(tau_max)
        t = auto_tau(tree)
    return tree.cut(min(t, tree.tau)), float(t)  # no change point lies between the build tau and t


class NCutTree:
    """One image's recursive NCut, recut-able at any tau: ``build(tau) -> Hierarchy`` plus the tree
    built so far (at ``top``, when given: every later cut at tau <= top is a pruning of it).

    cut(tau) -> (segments (h, w) int64 ids 0..K-1 on `device`, info): info is {} for a number and
    {"tau_chosen": t} for "auto" (``auto_tau``, ceiling ``AUTO_TAU_MAX`` = 1), plus ``info``: what
    the builds report (alpha="auto": {"alpha_chosen": a}, filled by the first build).
    """

    def __init__(self, build: Callable[[float], Hierarchy], device, top: float | None = None,
                 info: dict | None = None) -> None:
        self.build, self.device, self.tree = build, device, None
        self.info = {} if info is None else info  # shared with the build, which may fill it
        if top is not None:
            self.tree = build(float(top))

    def hierarchy(self, tau: float) -> Hierarchy:
        """The tree at `tau`: the kept one when it was built at tau or above, else a new one."""
        if self.tree is not None and tau <= self.tree.tau:
            return self.tree
        return self.build(float(tau))

    def cut(self, tau) -> tuple[torch.Tensor, dict]:
        if isinstance(tau, str):
            if tau != "auto":
                raise ValueError(f'tau must be a number or "auto", got {tau!r}')
            if self.tree is not None and self.tree.tau >= AUTO_TAU_MAX:  # the kept tree reaches tau = 1
                t = auto_tau(self.tree, tau_max=AUTO_TAU_MAX)
                seg = self.tree.cut(t)
            else:  # built at TAU, rebuilt at 1 only if that does not settle it
                seg, t = cut_auto(self.build)
            return seg.to(self.device), {**self.info, "tau_chosen": float(t)}
        tau = float(tau)
        seg = self.hierarchy(tau).cut(tau).to(self.device)
        return seg, dict(self.info)

    def leaves(self, tau: float) -> tuple:
        return tuple(self.hierarchy(float(tau)).leaves(float(tau)))

    def num_segments(self, tau: float) -> int:
        return self.hierarchy(float(tau)).num_segments(float(tau))

    def num_cuts(self) -> int:
        """Distinct segmentations the kept tree holds (one per threshold, plus one segment)."""
        return len(self.hierarchy(0.0).thresholds()) + 1
