"""Features -> segments: the public DiffCut entry points (METHOD.md sections 2-4)."""
from __future__ import annotations

import torch

from ovseg.masks._affinity import affinity_checked, check_features
from ovseg.masks._hierarchy import Hierarchy
from ovseg.masks._ncut import NCutConfig, ncut_tree
from ovseg.masks._pamr import PAMRConfig, pamr
from ovseg.masks._upsample import assign_concepts


def _config(config: NCutConfig | None, alpha: float, tau: float, options: dict) -> NCutConfig:
    if config is None:
        return NCutConfig(alpha=alpha, tau=tau, **options)
    if not isinstance(config, NCutConfig):
        raise TypeError(f"config must be an NCutConfig, got {type(config).__name__}")
    if options or alpha != NCutConfig.alpha or tau != NCutConfig.tau:
        raise TypeError("pass either config=NCutConfig(...) or alpha/tau/solver options, not both")
    return config


@torch.no_grad()
def build_hierarchy(feats: torch.Tensor, *, alpha: float = 10.0, tau: float = 0.5,
                    config: NCutConfig | None = None, **solver_options) -> Hierarchy:
    """Recursion tree of DiffCut's normalized cut for one image.

    Args:
        feats: (C, h, w) feature map (cut() then gives (h, w) maps) or (N, C) rows; any device.
        alpha, tau: affinity exponent and NCut threshold (paper defaults 10.0 and 0.5).
        config: an NCutConfig, used instead of alpha/tau/solver_options (not with them).
        solver_options: NCutConfig's other fields (split, dense_below, ...).

    Returns:
        Hierarchy; ``.cut(t)`` gives the segmentation at any t <= tau without recomputation.
    """
    cfg = _config(config, alpha, tau, solver_options)
    feats = check_features(feats, finite=False)  # NaN/inf: found by the affinity, no extra pass
    if feats.ndim not in (2, 3):
        raise ValueError(f"feats must be (C, h, w) or (N, C) for one image, got shape {tuple(feats.shape)}")
    return _hierarchy(feats, cfg)


def _hierarchy(feats: torch.Tensor, cfg: NCutConfig) -> Hierarchy:
    """Affinity + cut of one validated (C, h, w) or (N, C) feature tensor; W is built here, so it
    is known finite, symmetric and in [0, 1] and is not re-validated (no extra pass over W)."""
    shape = tuple(feats.shape[1:]) if feats.ndim == 3 else None
    w, lo, hi = affinity_checked(feats, cfg.alpha)  # METHOD.md section 2
    return ncut_tree(w, lo, hi, cfg, shape)


@torch.no_grad()
def segment_features(feats: torch.Tensor, *, method: str = "diffcut", alpha: float = 10.0, tau: float = 0.5,
                     config: NCutConfig | None = None, **solver_options) -> torch.Tensor:
    """DiffCut segmentation of feature maps (or, with method="kway", the K-way cut).

    Args:
        feats: (C, h, w) or (B, C, h, w) float features (L2 normalisation happens here), any
            device; the cut runs on that device.
        method: "diffcut" (recursive two-way NCut) or "kway" (discrete K-way NCut, METHOD.md 9;
            solver_options are then KWayConfig fields: k (int or "auto"), k_max, seed, ...; tau is
            its merge threshold; see ``ovseg.masks.kway_segments`` for the info it reports).
        alpha: affinity exponent, default 10.0.  tau: NCut threshold, default 0.5 (lower = fewer
            segments).  config: an NCutConfig (or KWayConfig) instead of alpha/tau/solver_options.
        solver_options: NCutConfig's other fields (split, dense_below, ...).

    Returns:
        int64 segment ids 0..K-1 per image, numbered by first position in raster order, shape
        (h, w) or (B, h, w), on feats' device. Images of a batch are cut independently (each has
        its own tree), so a batch gives exactly the per-image results.
    """
    if method not in _FEATURE_CUTS:
        raise ValueError(f"method must be one of {', '.join(_FEATURE_CUTS)}, got {method!r}")
    if method != "diffcut":
        return _FEATURE_CUTS[method](feats, alpha=alpha, tau=tau, config=config, **solver_options)
    cfg = _config(config, alpha, tau, solver_options)
    feats = check_features(feats, finite=False)  # once for the batch; NaN/inf found by the affinity
    if feats.ndim == 3:
        return _hierarchy(feats, cfg).cut()
    if feats.ndim != 4:
        raise ValueError(f"feats must be (C, h, w) or (B, C, h, w), got shape {tuple(feats.shape)}")
    return torch.stack([_hierarchy(f, cfg).cut() for f in feats])


def _kway(feats: torch.Tensor, *, alpha: float, tau: float, config=None, **options) -> torch.Tensor:
    from ovseg.masks._kway_select import KWayConfig, kway_segments

    if config is None:
        config = KWayConfig(alpha=alpha, tau=tau, **options)
    elif not isinstance(config, KWayConfig) or options:
        raise TypeError("method='kway' takes config=KWayConfig(...) or its fields as keywords, not both")
    return kway_segments(feats, config)[0]


_FEATURE_CUTS = {"diffcut": None, "kway": _kway}  # method -> cut of (B, C, h, w) features


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
