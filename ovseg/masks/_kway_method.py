"""The K-way cut's builder for the cut-method registry ("kway", METHOD.md 9; registered in
``ovseg/_cut_methods.py``).

Options: ``alpha`` (DiffCut's affinity) and ``k``, the number of clusters or a rule
(``KWayConfig.k``): a positive int (that many; clusters that empty are dropped), "auto" (the
default: solve at k_max, then merge while a pair's two-way NCut is >= tau), "eigengap" or "tree".
Setting: ``tau``, the merge threshold of k="auto", so with "auto" the demo slider, the
evaluation's tau sweep and the CLI's --tau keep DiffCut's meaning; with any other k the cut is
fixed and tau plays no part. The K chosen is reported as ``k_chosen``. ``tau="auto"`` is the
config's default tau (0.5).
"""
from __future__ import annotations

from dataclasses import replace

import torch

from ovseg._defaults import ALPHA
from ovseg.masks._kway import solve
from ovseg.masks._kway_select import KWayConfig, KWayTree, batch_affinity, kway_affinity_cut, merge_sequence


class KWayCut:
    """One image's K-way cut. With k="auto", recut-able at any merge threshold tau (a ``KWayTree``
    underneath); with a fixed k (or the eigengap / tree rule), one partition that every tau gives.

    cut(tau) -> (segments (h, w) int64 ids 0..K-1 on `device`, {"k_chosen": K}).
    """

    def __init__(self, tree: KWayTree | None, device, fixed: torch.Tensor | None = None,
                 default_tau: float = 0.5) -> None:
        self.tree, self.device, self.fixed, self.default_tau = tree, device, fixed, default_tau

    def _tau(self, tau) -> float:
        if isinstance(tau, str):
            if tau != "auto":
                raise ValueError(f'tau must be a number or "auto", got {tau!r}')
            return self.default_tau
        return float(tau)

    def cut(self, tau) -> tuple[torch.Tensor, dict]:
        t = self._tau(tau)
        seg = self.fixed if self.fixed is not None else self.tree.cut(tau=t)
        seg = seg.to(self.device)
        return seg, {"k_chosen": int(seg.max()) + 1}

    def leaves(self, tau) -> tuple:
        return (self.num_segments(tau),)  # the cut at tau is fixed by its K

    def num_segments(self, tau) -> int:
        if self.fixed is not None:
            return int(self.fixed.max()) + 1
        return self.tree.num_segments(self._tau(tau))

    def num_cuts(self) -> int:
        return 1 if self.fixed is not None else self.tree.k_top


def build_kway(feats: torch.Tensor, transitions=None, *, top: float | None = None, alpha: float = ALPHA,
               k: int | str = "auto", **options) -> list[KWayCut]:
    """K-way NCut (METHOD.md 9) of the B images of feats (B, C, h, w) float32 at once: the affinity
    per image, then one batched solve (k="auto": at k_max, and the merge orders; else at k, or at
    the rule's K) -> B ``KWayCut``s. A batch gives exactly the per-image results."""
    if feats.ndim != 4:
        raise ValueError(f"feats must be (B, C, h, w), got shape {tuple(feats.shape)}")
    config = KWayConfig(alpha=alpha, k=k, **options)
    W = batch_affinity(feats, alpha)
    shape = tuple(feats.shape[2:])
    B = feats.shape[0]
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
