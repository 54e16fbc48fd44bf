"""Choosing K for the K-way cut, its merge tree (the slider's object), and the feature entry point.

K rules (METHOD.md 9: how K is chosen is the crux; measured in docs/kway.md):
* ``k=<int>``: that many clusters (clamped to N; clusters that empty are dropped).
* ``k="auto"`` (default, ours): solve at ``k_max``, then merge greedily the pair of clusters
  (a, b) whose two-way NCut inside a u b, cut(a, b) / assoc(a, a u b) + cut(a, b) / assoc(b, a u b)
  (Shi & Malik 2000, eq. 2), is largest while it is >= tau: the recursive cut would not split
  such a pair at tau, so tau keeps DiffCut's meaning (default 0.5). Then a few proximal steps
  from the merged partition (``refine``), which can only lower NCut.
* ``k="eigengap"``: the largest gap among the top ``k_max`` eigenvalues of D^-1/2 W D^-1/2
  (dense eigvalsh, O(N^3): for comparison only).
* ``k="tree"``: K of DiffCut's recursive cut at tau, and its partition as the start.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from ovseg.masks._affinity import affinity_checked, check_features
from ovseg.masks._kway import SolverConfig, _one_hot, _product, solve

K_RULES = ("auto", "eigengap", "tree")


@dataclass(frozen=True)
class KWayConfig:
    """Settings of the K-way cut. alpha and tau are DiffCut's (SSD-1B); the rest are ours."""

    alpha: float = 10.0  # affinity exponent W = C**alpha, as DiffCut
    k: int | str = "auto"  # clusters, or a rule: "auto" (merge at tau), "eigengap", "tree"
    k_max: int = 16  # clusters solved before merging ("auto"), eigenvalues read ("eigengap")
    tau: float = 0.5  # "auto": merge a pair while its two-way NCut is >= tau (DiffCut's tau)
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


def batch_affinity(feats: torch.Tensor, alpha: float) -> torch.Tensor:
    """(B, C, h, w) validated features -> W (B, N, N), DiffCut's affinity per image (section 2),
    each built in its slice of the batch (no stacking copy)."""
    B, N = feats.shape[0], feats.shape[2] * feats.shape[3]
    dtype = feats.dtype if feats.dtype in (torch.float32, torch.float64) else torch.float32
    W = torch.empty(B, N, N, dtype=dtype, device=feats.device)
    for f, w in zip(feats, W):
        affinity_checked(f, alpha, out=w)
    return W


def kway_affinity_cut(W: torch.Tensor, config: KWayConfig = KWayConfig(), *,
                      generator: torch.Generator | None = None, feats: torch.Tensor | None = None):
    """The K-way cut of affinities W (B, N, N). Returns (labels (B, N) int64 ids numbered by first
    position, info dict of (B,) tensors: k, ncut, f, iterations, converged, merges)."""
    B, N, _ = W.shape
    gen = generator if generator is not None else torch.Generator(device="cpu").manual_seed(config.seed)
    info = {}
    if config.k == "tree":
        from ovseg.masks._ncut import NCutConfig, ncut_tree

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
            from ovseg.masks._kway import ncut_value

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
    from ovseg.masks._kway import KWayState

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
