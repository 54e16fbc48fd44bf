"""features -> segments: DiffCut's affinity and recursive normalized cut (METHOD.md sections 2-3)."""
from ovseg.masks._affinity import affinity
from ovseg.masks._hierarchy import Hierarchy, HierarchyNode
from ovseg.masks._ncut import NCutConfig, ncut_hierarchy
from ovseg.masks._segment import build_hierarchy, segment_features

__all__ = ["Hierarchy", "HierarchyNode", "NCutConfig", "affinity", "build_hierarchy",
           "ncut_hierarchy", "segment_features"]
