"""The recursion tree of the normalized cut, and its pruning at any tau up to the build tau."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch


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
        "isolated" (large nodes with isolated positions: no eigenvector, see masks/_eigen.py;
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
