"""features -> segments: DiffCut's affinity and recursive normalized cut (METHOD.md sections 2-3),
then upsampling, PAMR refinement and random-walk cuts (the maskrefine modules)."""
from ovseg.masks._affinity import affinity
from ovseg.masks._hierarchy import Hierarchy, HierarchyNode
from ovseg.masks._ncut import NCutConfig, ncut_hierarchy
from ovseg.masks._segment import build_hierarchy, segment_features

# Stages built on the cut, in their own modules (docs/architecture.md); resolved on first use.
_LAZY = {
    "assign_concepts": "ovseg.masks._upsample",
    "pamr": "ovseg.masks._pamr",
    "random_walk_segments": "ovseg.masks._random_walk",
}

__all__ = ["Hierarchy", "HierarchyNode", "NCutConfig", "affinity", "build_hierarchy",
           "ncut_hierarchy", "segment_features", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ovseg.masks' has no attribute {name!r}")
