"""The "kway" cut method (METHOD.md 9): the discrete K-way NCut, its config, its entry points and
the registry's builder (``build_kway``, registered in ``ovseg/settings/methods.py``).

Options: ``alpha`` (DiffCut's affinity) and ``k``, the number of clusters or a rule
(``KWayConfig.k``; the rules are in ``kway_rules.py``, the solver in ``kway_solver.py``):
* ``k=<int>``: that many clusters (clamped to N; clusters that empty are dropped).
* ``k="auto"`` (default, ours): solve at ``k_max``, then merge greedily the pair of clusters
  whose two-way NCut inside their union (Shi & Malik 2000, eq. 2) is largest while it is >= tau:
  the recursive cut would not split such a pair at tau, so tau keeps DiffCut's meaning. Then a
  few proximal steps from the merged partition (``refine``), which can only lower NCut.
* ``k="eigengap"``: the largest gap among the top ``k_max`` eigenvalues of D^-1/2 W D^-1/2
  (dense eigvalsh, O(N^3): for comparison only).
* ``k="tree"``: K of DiffCut's recursive cut at tau, and its partition as the start.
Setting: ``tau``, the merge threshold of k="auto" (and the recursive cut's threshold of
k="tree"), so the demo slider, the evaluation's tau sweep and the CLI's --tau keep DiffCut's
meaning; with a number or "eigengap" the cut is fixed and tau plays no part. The K chosen is
reported as ``k_chosen``. ``tau="auto"`` is the config's tau.

    build_kway(feats (B, C, h, w), None, alpha=, k=) -> [KWayCut]; KWayCut.cut(tau) -> (h, w) int64
    kway_segments(feats (C, h, w) | (B, C, h, w), KWayConfig) -> (ids, info)
    kway_tree(feats (C, h, w), KWayConfig) -> KWayTree (every K from 1 to K')
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from ovseg.masks.affinity import batch_affinity, check_features
from ovseg.masks.kway_rules import apply_merges, eigengap_k, merge_sequence, merged_start, merges_at, relabel
from ovseg.masks.kway_solver import KWayState, SolverConfig, _one_hot, _product, ncut_value, solve
from ovseg.settings.defaults import ALPHA, TAU
from ovseg.settings.methods import K_RULES

@dataclass(frozen=True)
class KWayConfig:
    """Settings of the K-way cut. alpha and tau are DiffCut's (SSD-1B); the rest are ours."""

    alpha: float = ALPHA  # affinity exponent W = C**alpha, as DiffCut
    k: int | str = "auto"  # clusters, or a rule: "auto" (merge at tau), "eigengap", "tree"
    k_max: int = 16  # clusters solved before merging ("auto"), eigenvalues read ("eigengap")
    tau: float = TAU  # "auto": merge a pair while its two-way NCut is >= tau (DiffCut's tau)
    presolve_iter: int = 4  # "auto": steps at k_max before merging (the merges fix what they leave)
    refine: bool = True  # "auto": proximal steps from the merged partition (NCut can only fall)
    seed: int = 0  # generator seed of the starts when no generator is passed
    solver: SolverConfig = field(default_factory=SolverConfig)

    def __post_init__(self) -> None:
        if isinstance(self.k, str):
            if self.k not in K_RULES:
                raise ValueError(f'k must be a positive int or one of {K_RULES}, got {self.k!r}')
        elif isinstance(self.k, bool) or int(self.k) != self.k or self.k < 1:
            raise ValueError(f"k must be a positive int or one of {K_RULES}, got {self.k!r}")
        if not (self.alpha > 0 and self.alpha < float("inf")):
            raise ValueError(f"alpha must be positive and finite, got {self.alpha}")
        if not (self.tau >= 0 and self.tau < float("inf")) or int(self.k_max) < 1:
            raise ValueError("tau must be >= 0 and finite, k_max >= 1")


def kway_affinity_cut(W: torch.Tensor, config: KWayConfig = KWayConfig(), *,
                      generator: torch.Generator | None = None, feats: torch.Tensor | None = None):
    """The K-way cut of affinities W (B, N, N). Returns (labels (B, N) int64 ids numbered by first
    position, info dict of (B,) tensors: k, ncut, f, iterations, converged, merges)."""
    B, N, _ = W.shape
    gen = generator if generator is not None else torch.Generator(device="cpu").manual_seed(config.seed)
    info = {}
    if config.k == "tree":
        from ovseg.masks.ncut import NCutConfig, ncut_tree  # the recursive cut's module imports nothing of kway

        init = torch.stack([ncut_tree(w, 0.0, 1.0, NCutConfig(alpha=config.alpha, tau=config.tau), None).cut()
                            for w in W])
        st = solve(W, int(init.max()) + 1, config=config.solver, init=init)
    elif config.k == "eigengap":
        ks = eigengap_k(W, config.k_max)
        st = _solve_each_k(W, ks, config, gen)
    elif config.k == "auto":
        st = solve(W, config.k_max, config=replace(config.solver, max_iter=config.presolve_iter), generator=gen)
        k = max(1, min(config.k_max, N))
        a, b, vals = merge_sequence(W, st.labels, k, product=st.product)
        count = merges_at(vals, config.tau)
        merged, G = merged_start(st.labels, st.product, a, b, count, k)
        info["merges"] = count
        if config.refine:
            st2 = solve(W, 1, config=replace(config.solver, restarts=1), init=merged, product=G)
            st2.iterations = st2.iterations + st.iterations
            st = st2
        else:
            st = replace(st, labels=merged, product=None)
            st.ncut = ncut_value(W, merged)
            st.k = merged.max(1).values + 1
            st.f = st.k.double() - st.ncut
    else:
        st = solve(W, int(config.k), config=config.solver, generator=gen)
    labels = relabel(st.labels)
    info.update(k=labels.max(1).values + 1, ncut=st.ncut, f=st.f, iterations=st.iterations,
                converged=st.converged, history=st.history)
    return labels, info


def _solve_each_k(W, ks, config, gen):
    """Solve at a per-image K (B,) by solving at max K with the surplus columns masked: each image
    gets its own K in one batched call (labels outside [0, K_b) are never proposed)."""
    k_top = int(ks.max())
    if bool((ks == k_top).all()):
        return solve(W, k_top, config=config.solver, generator=gen)
    states = [solve(W[i:i + 1], int(ks[i]), config=config.solver, generator=gen) for i in range(W.shape[0])]
    return _stack_states(states)


def _stack_states(states):
    t = max(s.history.shape[1] for s in states)
    hist = torch.cat([torch.nn.functional.pad(s.history, (0, t - s.history.shape[1]), value=float(s.history[0, -1]))
                      for s in states])
    return KWayState(**{f: torch.cat([getattr(s, f) for s in states]) for f in
                        ("labels", "f", "ncut", "k", "iterations", "accepted", "converged")}, history=hist)


@torch.no_grad()
def kway_segments(feats: torch.Tensor, config: KWayConfig = KWayConfig(), *,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
    """K-way NCut segments of feature maps.

    Args:
        feats: (C, h, w) or (B, C, h, w) float features, any device (the cut runs there).
        config: KWayConfig (alpha, k rule, k_max, tau, solver settings).
        generator: torch.Generator for the starts (default: one seeded with ``config.seed``).

    Returns:
        (ids (h, w) or (B, h, w) int64 0..K-1 numbered by first position in raster order,
        info: dict of (B,) tensors k, ncut, f, iterations, converged (and merges for "auto")).
    """
    feats = check_features(feats, finite=False)
    single = feats.ndim == 3
    if single:
        feats = feats[None]
    if feats.ndim != 4:
        raise ValueError(f"feats must be (C, h, w) or (B, C, h, w), got shape {tuple(feats.shape)}")
    B, _, h, w = feats.shape
    labels, info = kway_affinity_cut(batch_affinity(feats, config.alpha), config, generator=generator)
    labels = labels.view(B, h, w)
    return (labels[0], info) if single else (labels, info)


class KWayTree:
    """One image's K-way cut at every K from 1 to K' (the demo slider's object; ``Hierarchy``'s
    counterpart for method "kway").

    Built once from the affinity (the k_max solution and its greedy merge order, see
    ``merge_sequence``); ``cut(k)`` replays the first K' - k merges and, if the config refines,
    runs the proximal steps from there on the cached W: no backbone pass, no new affinity.
    ``cut()`` (tau of the config) equals ``kway_segments`` on the same features and seed.
    """

    def __init__(self, W: torch.Tensor, labels: torch.Tensor, merges, config: KWayConfig,
                 shape: tuple[int, int] | None, product: torch.Tensor | None = None):
        self.W, self.labels, self.config, self.shape = W, labels, config, shape
        self.a, self.b, self.values = merges
        self.k_top = int(labels.max()) + 1
        self.k_merge = self.a.shape[1] + 1  # the clusters the merge order is over (k_max)
        self._product = product  # W X of labels (B, N, k_merge), made on the first refined cut

    def __repr__(self) -> str:
        return f"KWayTree(positions={self.labels.shape[1]}, k_top={self.k_top}, k_at_tau={self.num_segments()})"

    def num_segments(self, tau: float | None = None) -> int:
        """K at merge threshold tau (default: the config's)."""
        t = self.config.tau if tau is None else float(tau)
        return self.k_top - int(merges_at(self.values, t)[0])

    def ks(self) -> list[int]:
        """Every K the tree holds, 1..K' (the slider's range)."""
        return list(range(1, self.k_top + 1))

    def thresholds(self) -> list[float]:
        """Distinct merge thresholds at which the K chosen by tau changes, ascending."""
        gate = self.values[0].cummin(0).values
        return sorted({float(v) for v in gate if v > float("-inf")})

    def cut(self, k: int | None = None, *, tau: float | None = None) -> torch.Tensor:
        """Segment ids (h, w) (or (N,)) int64 0..k-1 at k clusters (clamped to 1..K'), or at the
        merge threshold tau (default: the config's) when k is None."""
        k = self.num_segments(tau) if k is None else max(1, min(int(k), self.k_top))
        count = torch.tensor([self.k_top - k], device=self.W.device)
        if not (self.config.refine and k > 1):
            merged = relabel(apply_merges(self.labels, self.a, self.b, count))
        else:
            if self._product is None or self._product.shape[-1] != self.k_merge:
                self._product = _product(self.W, _one_hot(self.labels[..., None], self.k_merge, self.W.dtype))[:, :, 0]
            merged, G = merged_start(self.labels, self._product, self.a, self.b, count, self.k_merge)
            st = solve(self.W, 1, config=replace(self.config.solver, restarts=1), init=merged, product=G)
            merged = relabel(st.labels)
        return merged[0].view(self.shape) if self.shape is not None else merged[0]


@torch.no_grad()
def kway_tree(feats: torch.Tensor, config: KWayConfig = KWayConfig(), *,
              generator: torch.Generator | None = None) -> KWayTree:
    """The ``KWayTree`` of one image's features (C, h, w) (the "auto" rule's k_max solution)."""
    feats = check_features(feats, finite=False)
    if feats.ndim != 3:
        raise ValueError(f"feats must be (C, h, w), got shape {tuple(feats.shape)}")
    W = batch_affinity(feats[None], config.alpha)
    gen = generator if generator is not None else torch.Generator(device="cpu").manual_seed(config.seed)
    st = solve(W, config.k_max, config=replace(config.solver, max_iter=config.presolve_iter), generator=gen)
    k = max(1, min(config.k_max, W.shape[1]))
    return KWayTree(W, st.labels, merge_sequence(W, st.labels, k, product=st.product), config,
                    tuple(feats.shape[1:]), product=st.product)


class KWayCut:
    """One image's K-way cut. With k="auto", recut-able at any merge threshold tau (a ``KWayTree``
    underneath); with a fixed k (or the eigengap / tree rule), one partition that every tau gives.

    cut(tau) -> (segments (h, w) int64 ids 0..K-1 on `device`, {"k_chosen": K}).
    """

    def __init__(self, tree: KWayTree | None, device, fixed: torch.Tensor | None = None,
                 default_tau: float = TAU, at_tau=None) -> None:
        self.tree, self.device, self.fixed, self.default_tau = tree, device, fixed, default_tau
        self.at_tau, self._cuts = at_tau, {}  # k="tree": tau -> the partition (solved on first use)

    def _partition(self, t: float) -> torch.Tensor:
        if self.at_tau is None:
            return self.fixed if self.fixed is not None else self.tree.cut(tau=t)
        if t not in self._cuts:
            self._cuts[t] = self.at_tau(t)
        return self._cuts[t]

    def _tau(self, tau) -> float:
        if isinstance(tau, str):
            if tau != "auto":
                raise ValueError(f'tau must be a number or "auto", got {tau!r}')
            return self.default_tau
        return float(tau)

    def cut(self, tau) -> tuple[torch.Tensor, dict]:
        seg = self._partition(self._tau(tau)).to(self.device)
        return seg, {"k_chosen": int(seg.max()) + 1}

    def leaves(self, tau) -> tuple:
        return (self.num_segments(tau),)  # the cut at tau is fixed by its K

    def num_segments(self, tau) -> int:
        if self.tree is None:
            return int(self._partition(self._tau(tau)).max()) + 1
        return self.tree.num_segments(self._tau(tau))

    def num_cuts(self) -> int:
        return self.tree.k_top if self.tree is not None else 1


def build_kway(feats: torch.Tensor, transitions=None, *, top: float | None = None, alpha: float = ALPHA,
               k: int | str = "auto", config: KWayConfig | None = None, **options) -> list[KWayCut]:
    """K-way NCut (METHOD.md 9) of the B images of feats (B, C, h, w) float32 at once: the affinity
    per image, then one batched solve (k="auto": at k_max, and the merge orders; k="tree": per
    image at each tau asked for; else at k, or at the rule's K) -> B ``KWayCut``s. A batch gives
    exactly the per-image results. config: a KWayConfig instead of alpha, k and options."""
    if feats.ndim != 4:
        raise ValueError(f"feats must be (B, C, h, w), got shape {tuple(feats.shape)}")
    if config is None:
        config = KWayConfig(alpha=alpha, k=k, **options)
    elif options or alpha != ALPHA or k != "auto":
        raise TypeError("pass either config=KWayConfig(...) or alpha/k/options, not both")
    W = batch_affinity(feats, config.alpha)
    shape = tuple(feats.shape[2:])
    B = feats.shape[0]
    if config.k == "tree":  # the recursive cut at tau gives K and the start: solved per tau
        return [KWayCut(None, feats.device, default_tau=config.tau,
                        at_tau=lambda t, i=i: kway_affinity_cut(W[i:i + 1], replace(config, tau=t))[0][0].view(shape))
                for i in range(B)]
    if config.k != "auto":  # one partition per image: kway_segments' own path
        labels, _ = kway_affinity_cut(W, config)
        return [KWayCut(None, feats.device, labels[i].view(shape), config.tau) for i in range(B)]
    gen = torch.Generator(device="cpu").manual_seed(config.seed)
    st = solve(W, config.k_max, config=replace(config.solver, max_iter=config.presolve_iter), generator=gen)
    kk = max(1, min(config.k_max, W.shape[1]))
    a, b, v = merge_sequence(W, st.labels, kk, product=st.product)  # W X of the solve: no extra product
    P = st.product if st.product is not None and st.product.shape[-1] == kk else None
    return [KWayCut(KWayTree(W[i:i + 1], st.labels[i:i + 1], (a[i:i + 1], b[i:i + 1], v[i:i + 1]), config, shape,
                             product=None if P is None else P[i:i + 1]),
                    feats.device, default_tau=config.tau) for i in range(B)]
