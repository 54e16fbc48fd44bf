"""The "diffcut" cut method (METHOD.md sections 2-3): the recursive two-way NCut of the feature
affinity W = C**alpha, one image's tree (``build_hierarchy``) and the registry's builder
(``build_diffcut``, registered in ``ovseg/settings/methods.py``)."""
from __future__ import annotations

from dataclasses import replace

import torch

from ovseg.masks.affinity import affinity_checked, batch_grid, check_features
from ovseg.masks.calibrate import graph, is_auto
from ovseg.masks.ncut import NCutConfig, ncut_tree
from ovseg.masks.tree import Hierarchy, NCutTree
from ovseg.settings.defaults import ALPHA, TAU


def _config(config: NCutConfig | None, alpha: float, tau: float, options: dict) -> NCutConfig:
    if config is None:
        return NCutConfig(alpha=alpha, tau=tau, **options)
    if not isinstance(config, NCutConfig):
        raise TypeError(f"config must be an NCutConfig, got {type(config).__name__}")
    if options or alpha != ALPHA or tau != TAU:
        raise TypeError("pass either config=NCutConfig(...) or alpha/tau/solver options, not both")
    return config


@torch.no_grad()
def build_hierarchy(feats: torch.Tensor, *, alpha: float = ALPHA, tau: float = TAU,
                    config: NCutConfig | None = None, **solver_options) -> Hierarchy:
    """Recursion tree of DiffCut's normalized cut for one image.

    Args:
        feats: (C, h, w) feature map (cut() then gives (h, w) maps) or (N, C) rows; any device.
        alpha, tau: affinity exponent and NCut threshold (the paper's: ovseg.settings.defaults.ALPHA, TAU).
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
    if is_auto(cfg.alpha):  # calibrated per image (METHOD.md 10)
        w, lo, hi, _ = graph(feats, cfg.alpha)
    else:
        w, lo, hi = affinity_checked(feats, cfg.alpha)  # METHOD.md section 2
    return ncut_tree(w, lo, hi, cfg, shape)


def _calibrated_tree(feats: torch.Tensor, cfg: NCutConfig, top: float | None) -> NCutTree:
    """One image's tree on the calibrated affinity: the first build chooses alpha and records it
    (``alpha_chosen``, in every cut's info); a rebuild at a larger tau reuses it (no new search)."""
    info: dict = {}

    def build(tau: float) -> Hierarchy:
        w, lo, hi, a = graph(feats, cfg.alpha, known=info.get("alpha_chosen"))
        info["alpha_chosen"] = a
        return ncut_tree(w, lo, hi, replace(cfg, tau=tau), tuple(feats.shape[1:]))

    return NCutTree(build, feats.device, top, info=info)


def build_diffcut(feats: torch.Tensor, transitions=None, *, top: float | None = None, alpha: float = ALPHA,
                  config: NCutConfig | None = None, **solver_options) -> list[NCutTree]:
    """DiffCut: per image, the recursive NCut of W = C**alpha (METHOD.md 2-3).
    feats (B, C, h, w) float32 -> B `NCutTree`s (the affinity is built with each tree).
    config: an NCutConfig instead of alpha and solver_options (its tau is replaced by each cut's)."""
    feats = check_features(feats, finite=False)  # once for the batch; NaN/inf found by the affinity
    batch_grid(feats)
    cfg = _config(config, alpha, TAU, solver_options)  # config alone, or alpha and solver options
    if is_auto(cfg.alpha):
        return [_calibrated_tree(f, cfg, top) for f in feats]
    return [NCutTree(lambda t, f=f: _hierarchy(f, replace(cfg, tau=t)), f.device, top) for f in feats]
