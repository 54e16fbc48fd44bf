"""The builders of the two recursive-NCut methods of the cut-method registry (``ovseg/_cut_methods.py``).

* ``"diffcut"`` (METHOD.md sections 2-3): recursive NCut of the feature affinity W = C**alpha.
* ``"random-walk"`` (METHOD.md section 5): recursive NCut of the random-walk affinity of the
  backbone's self-attention, several layers combined on the fly into one transition matrix P
  (``AttentionCombiner``, in _random_walk.py), optionally k-step walks P^k.

Both take ``tau="auto"``: the per-image threshold of ``auto_tau`` (docs/random-walk.md), and
report the threshold they used (``tau_chosen``). The default attention recipe is documented in
docs/random-walk.md.
"""
from __future__ import annotations

import inspect
from typing import Callable, Sequence

import torch

from ovseg._defaults import ALPHA, TAU
from ovseg.masks._hierarchy import Hierarchy
from ovseg.masks._methods import get_method
from ovseg.masks._random_walk import (AUTO_TAU_MAX, AttentionCombiner, auto_tau, check_transition, cut_auto,
                                      random_walk_affinity)

__all__ = ["AttentionCombiner", "NCutTree", "capture_transitions", "hierarchy_builder", "segment_image"]


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


class NCutTree:
    """One image's recursive NCut, recut-able at any tau: ``build(tau) -> Hierarchy`` plus the tree
    built so far (at ``top``, when given: every later cut at tau <= top is a pruning of it).

    cut(tau) -> (segments (h, w) int64 ids 0..K-1 on `device`, info): info is {} for a number and
    {"tau_chosen": t} for "auto" (``auto_tau``, ceiling ``AUTO_TAU_MAX`` = 1).
    """

    def __init__(self, build: Callable[[float], Hierarchy], device, top: float | None = None) -> None:
        self.build, self.device, self.tree = build, device, None
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
            else:  # built at tau = 0.5, rebuilt at 1 only if that does not settle it
                seg, t = cut_auto(self.build)
            return seg.to(self.device), {"tau_chosen": float(t)}
        tau = float(tau)
        return self.hierarchy(tau).cut(tau).to(self.device), {}

    def leaves(self, tau: float) -> tuple:
        return tuple(self.hierarchy(float(tau)).leaves(float(tau)))

    def num_segments(self, tau: float) -> int:
        return self.hierarchy(float(tau)).num_segments(float(tau))

    def num_cuts(self) -> int:
        """Distinct segmentations the kept tree holds (one per threshold, plus one segment)."""
        return len(self.hierarchy(0.0).thresholds()) + 1


def _grid(feats: torch.Tensor) -> tuple[int, int]:
    if feats.ndim != 4:
        raise ValueError(f"feats must be (B, C, h, w), got shape {tuple(feats.shape)}")
    return tuple(feats.shape[2:])


def build_diffcut(feats: torch.Tensor, transitions=None, *, top: float | None = None, alpha: float = ALPHA,
                  **solver_options) -> list[NCutTree]:
    """DiffCut: per image, the recursive NCut of W = C**alpha (METHOD.md 2-3).
    feats (B, C, h, w) float32 -> B `NCutTree`s (the affinity is built with each tree)."""
    from ovseg.masks._segment import build_hierarchy

    _grid(feats)
    return [NCutTree(lambda t, f=f: build_hierarchy(f, alpha=alpha, tau=t, **solver_options), f.device, top)
            for f in feats]


def build_random_walk(feats: torch.Tensor, transitions: torch.Tensor | None, *, top: float | None = None,
                      walk_steps: int = 1, **solver_options) -> list[NCutTree]:
    """Random-walk NCut: per image, the NCut of the walk's affinity (Pi P^k + (P^k)^T Pi) / 2
    (Meila & Shi 2001; METHOD.md 5). feats (B, C, h, w) (only their grid is used), transitions
    P (B, h*w, h*w) row-stochastic float32 -> B `NCutTree`s."""
    from ovseg.masks._ncut import ncut_hierarchy

    shape = _grid(feats)
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


def _one_tree(feats, transition, method: str, alpha: float, steps: int, solver_options: dict) -> NCutTree:
    """One image's tree through the registry (the single-image wrappers below)."""
    if feats.ndim != 3:
        raise ValueError(f"feats must be (C, h, w), got shape {tuple(feats.shape)}")
    entry = get_method(method)
    given = {"alpha": alpha, "walk_steps": steps}
    options = {k: given[k] for k in entry.options if k in given}
    P = None if transition is None else transition[None]
    if entry.needs == "attention" and P is None:
        raise ValueError(f"the {method} method needs the attention transition matrix P")
    return entry.build(feats[None], P, **options, **solver_options)[0]


def hierarchy_builder(feats: torch.Tensor, transition: torch.Tensor | None = None, *,
                      method: str = "diffcut", alpha: float = ALPHA, steps: int = 1,
                      **solver_options) -> Callable[[float], Hierarchy]:
    """``build(tau) -> Hierarchy`` of one image's recursive NCut (an NCut method of the registry).

    Arguments:
        feats: (C, h, w) features (DiffCut's affinity; for random-walk only their grid is used).
        transition: P (h*w, h*w) row-stochastic (``capture_transitions``); random-walk only.
        method: "diffcut" or "random-walk".  alpha: DiffCut's affinity exponent.
        steps: k of the k-step walk P^k (random-walk).  solver_options: ``NCutConfig`` solver fields.

    Returns:
        build: tau -> the recursion tree built at tau (the affinity is computed once, here).
    """
    return _one_tree(feats, transition, method, alpha, steps, solver_options).build


@torch.no_grad()
def segment_image(feats: torch.Tensor, transition: torch.Tensor | None = None, *, method: str = "diffcut",
                  tau: float | str = TAU, alpha: float = ALPHA, steps: int = 1,
                  **solver_options) -> tuple[torch.Tensor, float]:
    """Low-resolution segments of one image by a registered method.

    Arguments:
        feats: (C, h, w) features (DiffCut's affinity; unused by the random-walk cut).
        transition: P (h*w, h*w) row-stochastic (e.g. from ``capture_transitions``); random-walk only.
        method: a name of ``list_methods()``.
        tau: NCut threshold, or "auto" (per image, ``auto_tau``, ceiling ``AUTO_TAU_MAX`` = 1).
        alpha: DiffCut's affinity exponent.  steps: k of the k-step walk P^k (random-walk).
        solver_options: ``NCutConfig`` solver fields (split, seed, ...).

    Returns:
        (segments (h, w) int64 ids 0..K-1 on feats' device, the tau used: tau itself, or the one
        "auto" chose).
    """
    if isinstance(tau, str) and tau != "auto":
        raise ValueError(f'tau must be a number or "auto", got {tau!r}')
    seg, info = _one_tree(feats, transition, method, alpha, steps, solver_options).cut(tau)
    return seg, info.get("tau_chosen", tau if tau == "auto" else float(tau))
