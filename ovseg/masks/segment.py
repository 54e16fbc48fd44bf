"""Features -> segments by any registered cut method: the entry points that take a method's name.

Every path goes through the cut-method registry (``ovseg/settings/methods.py``): the method's
builder makes one recut-able object per image (``NCutTree`` for the recursive cuts, ``KWayCut``
for the K-way cut), and ``cut(value)`` gives its segments. Nothing here branches on a name.

    segment_features(feats (B, C, h, w), method=, alpha=, tau=, ...) -> (B, h, w) int64
    segment_image(feats (C, h, w), P | None, method=, tau=, ...)     -> ((h, w) int64, tau used)
    hierarchy_builder(feats (C, h, w), P | None, method=, ...)      -> build(tau) -> Hierarchy
    refine_segments(feats (C, h, w), segments (h, w), image (3, H, W)) -> (H, W) int64
"""
from __future__ import annotations

from typing import Callable

import torch

from ovseg.masks.affinity import check_features
from ovseg.masks.min_area import with_min_area
from ovseg.masks.pamr import PAMRConfig, pamr
from ovseg.masks.tree import Hierarchy, NCutTree
from ovseg.masks.upsample import assign_concepts
from ovseg.settings.defaults import ALPHA, TAU
from ovseg.settings.methods import get_method

__all__ = ["hierarchy_builder", "refine_segments", "segment_features", "segment_image"]


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


@torch.no_grad()
def segment_features(feats: torch.Tensor, *, method: str = "diffcut", alpha: float | str = ALPHA,
                     tau: float | str = TAU, min_area: float = 0.0, config=None, **options) -> torch.Tensor:
    """Segments of feature maps by a cut method of the registry that needs features only.

    Args:
        feats: (C, h, w) or (B, C, h, w) float features (L2 normalisation happens here), any
            device; the cut runs on that device.
        method: a name of ``list_methods()`` whose ``needs`` is "features": "diffcut" (recursive
            two-way NCut, the paper) or "kway" (discrete K-way NCut, METHOD.md 9: options are
            then KWayConfig fields, k (int or a rule), k_max, seed, ...; tau is its merge
            threshold; ``ovseg.masks.kway.kway_segments`` also reports what it chose).
        alpha: affinity exponent (the paper's 10), or "auto": chosen per image, self-loops removed
            (``ovseg.masks.calibrate``, METHOD.md 10).  tau: NCut threshold (the paper's 0.5; lower =
            fewer segments), or "auto" where the method has a per-image rule.
        min_area: segments under this fraction of the grid merged into their most similar
            adjacent segment (``ovseg.masks.min_area``); 0 (default): none.
        config: the method's own config (NCutConfig, KWayConfig) instead of alpha/tau/options.
        options: the method's other settings (NCutConfig's split, dense_below, ...).

    Returns:
        int64 segment ids 0..K-1 per image, numbered by first position in raster order, shape
        (h, w) or (B, h, w), on feats' device. Images of a batch are cut independently, so a batch
        gives exactly the per-image results.
    """
    entry = get_method(method)
    if entry.needs != "features":
        raise ValueError(f"method {method!r} needs the backbone's attention maps, not features alone: "
                         "use ovseg.masks.segment.segment_image with its transition matrix")
    feats = check_features(feats, finite=False)  # once for the batch; NaN/inf found by the affinity
    single = feats.ndim == 3
    if feats.ndim not in (3, 4):
        raise ValueError(f"feats must be (C, h, w) or (B, C, h, w), got shape {tuple(feats.shape)}")
    if config is not None:
        if options or alpha != ALPHA or tau != TAU:
            raise TypeError("pass either config=... or alpha/tau/options, not both")
        options, tau = {"config": config}, config.tau
    else:
        options = {"alpha": alpha, **options}
    batch = feats[None] if single else feats
    cuts = with_min_area(entry.build(batch, None, **options), batch, min_area)
    segments = torch.stack([c.cut(tau)[0] for c in cuts])
    return segments[0] if single else segments


def refine_segments(feats: torch.Tensor, segments: torch.Tensor, image: torch.Tensor, *,
                    refine: PAMRConfig | None = PAMRConfig()) -> torch.Tensor:
    """Low-res segments -> a segment map at the image's size (METHOD.md section 4).

    Concept assignment on the bilinearly upsampled features, then PAMR on the image unless
    ``refine`` is None. feats (C, h, w); segments (h, w) int64; image (3, H, W) float in [0, 1],
    at the output size. Returns (H, W) int64 with the input's ids (a segment may vanish).
    """
    out = assign_concepts(feats, segments.to(feats.device), size=tuple(image.shape[-2:]))
    if refine is not None:
        out = pamr(image.to(feats.device), out, config=refine)
    return out
