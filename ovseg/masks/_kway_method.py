"""The K-way cut as a registered cut method ("kway", METHOD.md 9): one module, one registration.

Its setting is ``tau``, the merge threshold of the default K rule (``KWayConfig``): a pair of
clusters is merged while its two-way NCut inside their union is >= tau, so tau keeps DiffCut's
meaning and the demo slider, the evaluation's tau sweep and the CLI's --tau work unchanged; the
K chosen is reported as ``k_chosen``. ``tau="auto"`` is the config's default tau (0.5).
"""
from __future__ import annotations

from dataclasses import replace

import torch

from ovseg._defaults import ALPHA
from ovseg.masks._kway import solve
from ovseg.masks._kway_select import KWayConfig, KWayTree, batch_affinity, merge_sequence
from ovseg.masks._methods import register_method


class KWayCut:
    """One image's K-way cut, recut-able at any merge threshold tau (``KWayTree`` underneath).

    cut(tau) -> (segments (h, w) int64 ids 0..K-1 on `device`, {"k_chosen": K}).
    """

    def __init__(self, tree: KWayTree, device) -> None:
        self.tree, self.device = tree, device

    def _tau(self, tau) -> float:
        if isinstance(tau, str):
            if tau != "auto":
                raise ValueError(f'tau must be a number or "auto", got {tau!r}')
            return self.tree.config.tau
        return float(tau)

    def cut(self, tau) -> tuple[torch.Tensor, dict]:
        t = self._tau(tau)
        seg = self.tree.cut(tau=t).to(self.device)
        return seg, {"k_chosen": int(seg.max()) + 1}

    def leaves(self, tau) -> tuple:
        return (self.tree.num_segments(self._tau(tau)),)  # the cut at tau is fixed by its K

    def num_segments(self, tau) -> int:
        return self.tree.num_segments(self._tau(tau))

    def num_cuts(self) -> int:
        return self.tree.k_top


@register_method("kway", options=("alpha",), info=("k_chosen",))
def build_kway(feats: torch.Tensor, transitions=None, *, top: float | None = None, alpha: float = ALPHA,
               **options) -> list[KWayCut]:
    """K-way NCut (METHOD.md 9) of the B images of feats (B, C, h, w) float32 at once: the affinity
    per image, then one batched solve at k_max and the merge orders -> B ``KWayCut``s."""
    if feats.ndim != 4:
        raise ValueError(f"feats must be (B, C, h, w), got shape {tuple(feats.shape)}")
    config = KWayConfig(alpha=alpha, **options)
    W = batch_affinity(feats, alpha)
    gen = torch.Generator(device="cpu").manual_seed(config.seed)
    st = solve(W, config.k_max, config=replace(config.solver, max_iter=config.presolve_iter), generator=gen)
    k = max(1, min(config.k_max, W.shape[1]))
    a, b, v = merge_sequence(W, st.labels, k)
    shape = tuple(feats.shape[2:])
    return [KWayCut(KWayTree(W[i:i + 1], st.labels[i:i + 1], (a[i:i + 1], b[i:i + 1], v[i:i + 1]), config, shape),
                    feats.device) for i in range(feats.shape[0])]
