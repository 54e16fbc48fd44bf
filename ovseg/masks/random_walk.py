"""Random-walk normalized cuts on self-attention (METHOD.md section 5; seed 002).

Ivanova et al., "Unsupervised Segmentation by Diffusing, Walking and Cutting" (WACV 2026) read a
self-attention map softmax(QK^T / sqrt(d)) (heads averaged) as the transition matrix P of a random
walk over patches. Meila & Shi (2001): with the stationary distribution pi (pi^T P = pi^T) and
Pi = diag(pi), the symmetric affinity

    W = (Pi P + P^T Pi) / 2                                             (Meila & Shi 2001)

has degrees d = pi, W_ij = half the stationary probability flow between i and j, and

    NCut(A, B) = P(X_1 in B | X_0 in A) + P(X_1 in A | X_0 in B)

(the walk started from pi): the probability of leaving each side in one step. A split of an
unstructured chain costs about 1 (leaving probabilities proportional to the other side's mass),
which is why ``tau_max = 1`` below is the natural ceiling. P^k (k-step walks) replaces P for long-
range relations; pi is stationary for P^k too. The recursion is ovseg's ``ncut_hierarchy``.

Stationary distribution: solved exactly (float64 linear system pi^T (I - P) = 0, sum pi = 1) up
to ``solve_below`` nodes, else by power iteration on the *lazy* chain (I + P) / 2, which has the
same stationary distributions and no periodicity, so the iteration converges for periodic chains
too. A reducible chain has no unique pi: the linear system is then singular and we fall back to
the lazy power iteration from the uniform start, which converges to a valid stationary
distribution (each closed class gets the mass the uniform start drains into it; transient states
get 0, i.e. zero degree). ``teleport=eps`` (PageRank: P <- (1 - eps) P + eps/N) makes any chain
irreducible at the price of an O(eps) change of pi; self-attention maps are strictly positive
(softmax), so neither issue arises on real inputs.
"""
from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ovseg.masks.affinity import batch_grid
from ovseg.masks.ncut import ncut_hierarchy
from ovseg.masks.tree import Hierarchy, NCutTree, cut_auto
from ovseg.settings.defaults import AUTO_TAU_MAX, TAU

__all__ = [
    "check_transition", "stationary_distribution", "random_walk_affinity", "combine_attention", "AttentionCombiner",
    "random_walk_hierarchy", "random_walk_segments", "capture_transitions", "build_random_walk",
]


def check_transition(P: object, *, normalize: bool = False, atol: float = 1e-3) -> torch.Tensor:
    """Validate a transition matrix: (N, N), finite, non-negative, rows summing to 1 within atol.

    ``normalize=True`` divides each row by its sum instead of checking it (a zero row is still an
    error). Returns P as floating point (float32 unless it was float64).
    """
    if not isinstance(P, torch.Tensor):
        raise TypeError(f"P must be a torch.Tensor, got {type(P).__name__}")
    if P.ndim != 2 or P.shape[0] != P.shape[1] or P.shape[0] == 0:
        raise ValueError(f"P must be a non-empty square (N, N) matrix, got shape {tuple(P.shape)}")
    P = P if P.dtype == torch.float64 else P.float()
    if not bool(torch.isfinite(P).all()):
        raise ValueError("P holds NaN or inf")
    if bool((P < 0).any()):
        raise ValueError(f"P must be non-negative (min entry {float(P.min()):.3g})")
    rows = P.sum(1)
    if normalize:
        if bool((rows <= 0).any()):
            raise ValueError(f"P has {int((rows <= 0).sum())} all-zero rows: cannot normalise them")
        return P / rows[:, None]
    err = float((rows - 1).abs().max())
    if err > atol:
        raise ValueError(
            f"P is not row-stochastic: row sums deviate from 1 by up to {err:.3g} (atol={atol}); "
            "pass normalize=True to divide each row by its sum"
        )
    return P


def stationary_distribution(P: torch.Tensor, *, teleport: float = 0.0, tol: float = 1e-12,
                            max_iter: int = 100_000, solve_below: int = 4096) -> torch.Tensor:
    """Stationary distribution pi (N,) float64, pi >= 0, sum 1, pi^T P = pi^T (see module doc).

    P (N, N) row-stochastic (checked by the caller). ``teleport`` in [0, 1): PageRank mixing.
    """
    if not 0.0 <= teleport < 1.0:
        raise ValueError(f"teleport must be in [0, 1), got {teleport}")
    P = P.double()
    P = P / P.sum(1, keepdim=True)  # exactly stochastic in float64 (float32 rows are off by ~1e-7)
    N = P.shape[0]
    if teleport > 0:
        P = (1 - teleport) * P + teleport / N
    if N <= solve_below:  # exact: replace one equation of (I - P)^T pi = 0 by sum(pi) = 1
        A = torch.eye(N, dtype=P.dtype, device=P.device) - P.T
        A[-1] = 1.0
        b = torch.zeros(N, dtype=P.dtype, device=P.device)
        b[-1] = 1.0
        try:
            pi = torch.linalg.solve(A, b)
            residual = float((pi @ P - pi).abs().sum())
            if bool(torch.isfinite(pi).all()) and float(pi.min()) > -1e-9 and residual < 1e-11:
                pi = pi.clamp_min(0)
                return pi / pi.sum()
        except RuntimeError:  # singular: reducible chain
            pass
    pi = torch.full((N,), 1.0 / N, dtype=P.dtype, device=P.device)
    for _ in range(max_iter):  # lazy chain (I + P)/2: same pi, aperiodic
        nxt = 0.5 * (pi + pi @ P)
        done = float((nxt - pi).abs().sum()) < tol
        pi = nxt
        if done:
            break
    return pi / pi.sum()


def random_walk_affinity(P: torch.Tensor, *, steps: int = 1, normalize: bool = False,
                         teleport: float = 0.0, drop_self: bool = False,
                         atol: float = 1e-3) -> torch.Tensor:
    """W = (Pi P^k + (P^k)^T Pi) / 2 (Meila & Shi 2001), (N, N) symmetric, degrees pi, sum 1.

    P (N, N) row-stochastic (validated, see ``check_transition``); steps k >= 1 (P^k by repeated
    squaring: O(N^3 log k)). ``drop_self``: zero P's diagonal and renormalise the rows first (a
    walk that mostly stays put makes every split cheap: see docs/random-walk.md). Same
    dtype/device as P (float32 for anything but float64).
    """
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps}")
    P = check_transition(P, normalize=normalize, atol=atol)
    if drop_self:
        P = check_transition(P - torch.diag_embed(P.diagonal()), normalize=True)
    if teleport > 0:
        P = (1 - teleport) * P + teleport / P.shape[0]
    pi = stationary_distribution(P)  # stationary for P^k as well
    Pk = torch.linalg.matrix_power(P.double(), int(steps)) if steps > 1 else P.double()
    flow = pi[:, None] * Pk  # Pi P^k: stationary probability flow i -> j in k steps
    return ((flow + flow.T) / 2).to(P.dtype)


def combine_attention(maps: Sequence[torch.Tensor], *, size: tuple[int, int] | None = None,
                      shapes: Sequence[tuple[int, int]] | None = None,
                      weights: Sequence[float] | None = None) -> torch.Tensor:
    """Bring attention maps of several layers to one grid and average them (DiffSeg-style).

    maps: each (N_i, N_i) or (heads, N_i, N_i) (heads averaged), row-stochastic, on grids
    ``shapes[i]`` (default: square, sqrt(N_i)). size: target grid (default: the finest one).
    weights: default proportional to each map's resolution (grid height), as DiffSeg weights its
    layers by resolution; normalised to sum 1. Each map is resized on the query axes (which
    position attends) and on the key axes (where it attends): bilinear (align_corners=False) when
    enlarging, area averaging when shrinking; rows are renormalised after resizing, so every map,
    and the combination, stays row-stochastic. Returns P (h*w, h*w) float32. (The same as
    ``AttentionCombiner``, which takes the maps one at a time.)
    """
    if not maps:
        raise ValueError("need at least one attention map")
    mats = [m.float() for m in maps]
    for m in mats:
        if m.ndim not in (2, 3) or m.shape[-1] != m.shape[-2]:
            raise ValueError(f"each map must be (N, N) or (heads, N, N), got {tuple(m.shape)}")
    if shapes is None:
        shapes = []
        for m in mats:
            side = int(round(m.shape[-1] ** 0.5))
            if side * side != m.shape[-1]:
                raise ValueError(f"map with N={m.shape[-1]} is not a square grid: pass shapes=")
            shapes.append((side, side))
    shapes = [(int(a), int(b)) for a, b in shapes]
    if len(shapes) != len(mats) or any(a * b != m.shape[-1] for (a, b), m in zip(shapes, mats)):
        raise ValueError("shapes must give one (h, w) with h*w = N per map")
    if weights is None:
        weights = [float(s[0]) for s in shapes]  # DiffSeg: weight proportional to resolution
    if len(weights) != len(mats) or min(weights) < 0 or sum(weights) <= 0:
        raise ValueError("weights must be non-negative, one per map, not all zero")
    combiner = AttentionCombiner(size if size is not None else max(shapes, key=lambda s: s[0] * s[1]),
                                 {str(i): float(wt) for i, wt in enumerate(weights)})
    for i, (m, shape) in enumerate(zip(mats, shapes)):
        combiner.add(str(i), (m.mean(0) if m.ndim == 3 else m)[None], shape)
    return combiner.transition()[0]


class AttentionCombiner:
    """Combine attention maps of several layers into one transition matrix, one map at a time.

    Each map (B, N_i, N_i) (or (B, heads, N_i, N_i), heads averaged) on a square grid is brought to
    the target grid ``size`` on its key and query axes (bilinear when enlarging, area when
    shrinking, as ``combine_attention``), its rows renormalised, and added with weight proportional
    to its grid height (DiffSeg's resolution weights) unless ``weights`` {name: w} says otherwise.
    Only the running sum (B, h*w, h*w) is kept, so memory does not grow with the number of layers.
    Use ``add`` as the ``attention_sink`` of ``UNetEncoder.extract``.
    """

    def __init__(self, size: tuple[int, int], weights: dict[str, float] | None = None):
        self.size = (int(size[0]), int(size[1]))
        self.weights = dict(weights or {})
        self.total = 0.0
        self.sum: torch.Tensor | None = None
        self.names: list[str] = []

    def add(self, name: str, maps: torch.Tensor, shape: tuple[int, int] | None = None) -> None:
        """maps (B, N_i, N_i) or (B, heads, N_i, N_i), rows summing to 1, on grid ``shape``
        (hi, wi) with hi*wi = N_i (default: square)."""
        m = maps.float()
        if m.ndim == 4:
            m = m.mean(1)  # heads averaged
        if m.ndim != 3 or m.shape[1] != m.shape[2]:
            raise ValueError(f"attention map {name!r}: expected (B, N, N), got {tuple(maps.shape)}")
        b, n = m.shape[0], m.shape[1]
        if shape is None:
            side = round(n ** 0.5)
            if side * side != n:
                raise ValueError(f"map {name!r} with N={n} is not a square grid: pass shapes=")
            shape = (side, side)
        hi, wi = int(shape[0]), int(shape[1])
        if hi * wi != n:
            raise ValueError(f"map {name!r}: grid {shape} does not hold N={n} positions")
        h, w = self.size
        weight = float(self.weights.get(name, hi))  # DiffSeg: proportional to resolution
        if weight < 0:
            raise ValueError(f"attention weight of {name!r} must be >= 0, got {weight}")
        # keys to the target grid (where it attends), then queries (which position attends)
        m = _resize_grid(m.reshape(b * n, hi, wi), (h, w)).reshape(b, n, h * w)
        m = _resize_grid(m.transpose(1, 2).reshape(b * h * w, hi, wi), (h, w))
        m = m.reshape(b, h * w, h * w).transpose(1, 2).clamp_min(0)
        m = m / m.sum(-1, keepdim=True).clamp_min(1e-30)
        self.sum = m.mul_(weight) if self.sum is None else self.sum.add_(m, alpha=weight)
        self.total += weight
        self.names.append(name)

    def transition(self) -> torch.Tensor:
        """P (B, h*w, h*w) float32, row-stochastic: the weighted average of the maps added."""
        if self.sum is None or self.total <= 0:
            raise ValueError("no attention map was recorded (or all weights are 0)")
        return self.sum / self.total


def _resize_grid(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, hi, wi) -> (B, h, w): bilinear when enlarging, area when shrinking (both convex)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if size[0] >= x.shape[-2] and size[1] >= x.shape[-1]:
        return F.interpolate(x[None], size=size, mode="bilinear", align_corners=False)[0]
    return F.interpolate(x[None], size=size, mode="area")[0]


def random_walk_hierarchy(P: torch.Tensor, *, shape: tuple[int, int] | None = None, steps: int = 1,
                          tau: float = AUTO_TAU_MAX, normalize: bool = False, teleport: float = 0.0,
                          drop_self: bool = False, **solver_options) -> Hierarchy:
    """Recursive NCut tree of the random-walk affinity of P (see ``random_walk_affinity``)."""
    W = random_walk_affinity(P, steps=steps, normalize=normalize, teleport=teleport, drop_self=drop_self)
    return ncut_hierarchy(W, tau=tau, shape=shape, **solver_options)


def random_walk_segments(P: torch.Tensor, *, shape: tuple[int, int], steps: int = 1,
                         tau: float | str = TAU, tau_max: float = AUTO_TAU_MAX,
                         auto_build_tau: float = TAU, normalize: bool = False, teleport: float = 0.0,
                         drop_self: bool = False, **solver_options) -> torch.Tensor:
    """Segments (h, w) int64, ids 0..K-1, by random-walk NCut on P (N, N) row-stochastic, N = h*w.

    tau: fixed NCut threshold, or "auto" (``auto_tau`` with ceiling ``tau_max``; the tree is first
    built at ``auto_build_tau`` and rebuilt at tau_max only if that does not settle the answer).
    steps: k of P^k (larger k merges more on block-structured chains; not guaranteed in general,
    see docs/random-walk.md). ``solver_options`` go to ``ncut_hierarchy`` (split, tol, seed, ...).
    """
    if isinstance(tau, str):
        if tau != "auto":
            raise ValueError(f'tau must be a number or "auto", got {tau!r}')
        W = random_walk_affinity(P, steps=steps, normalize=normalize, teleport=teleport,
                                 drop_self=drop_self)
        return cut_auto(lambda t: ncut_hierarchy(W, tau=t, shape=shape, **solver_options),
                        tau_max=tau_max, build_tau=auto_build_tau)[0]
    h = random_walk_hierarchy(P, shape=shape, steps=steps, tau=float(tau), normalize=normalize,
                              teleport=teleport, drop_self=drop_self, **solver_options)
    return h.cut()


def capture_transitions(backbone, images: torch.Tensor, layers: Sequence[int | str] | None = None,
                        weights: dict[str, float] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One backbone pass -> (features (B, C, h, w) float32, P (B, h*w, h*w) float32).

    layers: indices or names for ``backbone.extract(attention_layers=)``; None: every layer the
    backbone records (``backbone.attention_layer_names``: for a UNet encoder, every encoder attn1
    up to the hooked one). The maps are combined on the feature grid (h, w) by
    ``AttentionCombiner``: streamed when ``extract`` takes an ``attention_sink``, else afterwards.
    """
    if layers is None:
        layers = list(getattr(backbone, "attention_layer_names", None) or [])
        if not layers:
            raise ValueError(f"backbone {getattr(backbone, 'name', backbone)!r} names no attention layers: "
                             "pass attention_layers")
    layers = list(layers)
    stride = backbone.stride
    size = (images.shape[-2] // stride, images.shape[-1] // stride)  # the feature grid
    combiner = AttentionCombiner(size, weights)
    if "attention_sink" in inspect.signature(backbone.extract).parameters:
        out = backbone.extract(images, attention_layers=layers, attention_sink=combiner.add)
    else:
        out = backbone.extract(images, attention_layers=layers)
    for name, maps in out.attentions.items():
        combiner.add(name, maps)
        out.attentions[name] = None  # drop each map once combined
    feats = out.features.float()
    if tuple(feats.shape[-2:]) != size:
        raise ValueError(f"features on a {tuple(feats.shape[-2:])} grid, attention combined on {size}")
    return feats, combiner.transition()


def build_random_walk(feats: torch.Tensor, transitions: torch.Tensor | None, *, top: float | None = None,
                      walk_steps: int = 1, **solver_options) -> list[NCutTree]:
    """Random-walk NCut: per image, the NCut of the walk's affinity (Pi P^k + (P^k)^T Pi) / 2
    (Meila & Shi 2001; METHOD.md 5). feats (B, C, h, w) (only their grid is used), transitions
    P (B, h*w, h*w) row-stochastic float32 -> B `NCutTree`s."""
    shape = batch_grid(feats)
    if transitions is None:
        raise ValueError("the random-walk method needs the attention transition matrix P")
    trees = []
    for f, P in zip(feats, transitions):
        P = check_transition(P)
        if P.shape[0] != shape[0] * shape[1]:
            raise ValueError(f"P is {tuple(P.shape)} but the feature grid {shape} has {shape[0] * shape[1]} cells")
        W = random_walk_affinity(P, steps=walk_steps)  # (Pi P^k + (P^k)^T Pi) / 2, Meila & Shi 2001
        trees.append(NCutTree(lambda t, W=W: ncut_hierarchy(W, tau=t, shape=shape, **solver_options),
                              f.device, top))
    return trees
