"""One image's low-resolution segments by either method (the pipeline's single entry point).

* ``"diffcut"`` (METHOD.md sections 2-3): recursive NCut of the feature affinity W = C**alpha.
* ``"random-walk"`` (METHOD.md section 5): recursive NCut of the random-walk affinity of the
  backbone's self-attention, several layers combined on the fly into one transition matrix P
  (``AttentionCombiner``, in _random_walk.py), optionally k-step walks P^k.

Both take ``tau="auto"``: the per-image threshold of ``auto_tau`` (docs/random-walk.md), and
report the threshold they used. The default attention recipe is documented in docs/random-walk.md.
"""
from __future__ import annotations

import inspect
from typing import Callable, Sequence

import torch

from ovseg.masks._hierarchy import Hierarchy
from ovseg.masks._random_walk import AttentionCombiner, check_transition, cut_auto, random_walk_affinity

METHODS = ("diffcut", "random-walk")

__all__ = ["METHODS", "AttentionCombiner", "capture_transitions", "hierarchy_builder", "segment_image"]


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


def hierarchy_builder(feats: torch.Tensor, transition: torch.Tensor | None = None, *,
                      method: str = "diffcut", alpha: float = 10.0, steps: int = 1,
                      **solver_options) -> Callable[[float], Hierarchy]:
    """``build(tau) -> Hierarchy`` of one image's recursive NCut by DiffCut or random-walk NCut.

    Arguments:
        feats: (C, h, w) features (DiffCut's affinity; for random-walk only their grid is used).
        transition: P (h*w, h*w) row-stochastic (``capture_transitions``); random-walk only.
        method: "diffcut" or "random-walk".  alpha: DiffCut's affinity exponent.
        steps: k of the k-step walk P^k (random-walk).  solver_options: ``NCutConfig`` solver fields.

    Returns:
        build: tau -> the recursion tree built at tau (the affinity is computed once, here).
    """
    from ovseg.masks._ncut import ncut_hierarchy
    from ovseg.masks._segment import build_hierarchy

    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if feats.ndim != 3:
        raise ValueError(f"feats must be (C, h, w), got shape {tuple(feats.shape)}")
    shape = tuple(feats.shape[1:])
    if method == "diffcut":
        return lambda t: build_hierarchy(feats, alpha=alpha, tau=t, **solver_options)
    if transition is None:
        raise ValueError("the random-walk method needs the attention transition matrix P")
    P = check_transition(transition)
    if P.shape[0] != shape[0] * shape[1]:
        raise ValueError(f"P is {tuple(P.shape)} but the feature grid {shape} has {shape[0] * shape[1]} cells")
    W = random_walk_affinity(P, steps=steps)  # (Pi P^k + (P^k)^T Pi) / 2, Meila & Shi 2001
    return lambda t: ncut_hierarchy(W, tau=t, shape=shape, **solver_options)


@torch.no_grad()
def segment_image(feats: torch.Tensor, transition: torch.Tensor | None = None, *, method: str = "diffcut",
                  tau: float | str = 0.5, alpha: float = 10.0, steps: int = 1,
                  **solver_options) -> tuple[torch.Tensor, float]:
    """Low-resolution segments of one image by DiffCut or random-walk NCut.

    Arguments:
        feats: (C, h, w) features (DiffCut's affinity; unused by the random-walk cut).
        transition: P (h*w, h*w) row-stochastic (e.g. from ``capture_transitions``); random-walk only.
        method: "diffcut" or "random-walk".
        tau: NCut threshold, or "auto" (per image, ``auto_tau``, ceiling ``AUTO_TAU_MAX`` = 1).
        alpha: DiffCut's affinity exponent.  steps: k of the k-step walk P^k (random-walk).
        solver_options: ``NCutConfig`` solver fields (split, seed, ...).

    Returns:
        (segments (h, w) int64 ids 0..K-1 on feats' device, the tau used: tau itself, or the one
        "auto" chose).
    """
    if isinstance(tau, str) and tau != "auto":
        raise ValueError(f'tau must be a number or "auto", got {tau!r}')
    build = hierarchy_builder(feats, transition, method=method, alpha=alpha, steps=steps, **solver_options)
    if tau == "auto":
        seg, used = cut_auto(build)
    else:
        seg, used = build(float(tau)).cut(), float(tau)
    return seg.to(feats.device), used
