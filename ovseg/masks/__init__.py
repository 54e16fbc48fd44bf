"""features -> segments: DiffCut's affinity and recursive normalized cut (METHOD.md sections 2-3),
the full-resolution concept assignment and PAMR refinement (section 4), and random-walk cuts on
self-attention (section 5), and the discrete K-way cut (section 9).

Cut methods are chosen by name through the registry (`get_method`, `list_methods`,
`register_method`; ovseg/settings/methods.py, torch-free): a new method is one module (its builder)
plus one registration there."""
from ovseg.masks.affinity import affinity
from ovseg.masks.tree import Hierarchy, HierarchyNode
from ovseg.settings.defaults import ALPHA, TAU
from ovseg.settings.methods import CutMethod, get_method, list_methods, register_method
from ovseg.masks.random_walk import AttentionCombiner, capture_transitions
from ovseg.masks.tree import NCutTree
from ovseg.masks.segment import hierarchy_builder, segment_image
from ovseg.masks.kway_solver import SolverConfig, ncut_value
from ovseg.masks.kway import KWayConfig, KWayTree, kway_affinity_cut, kway_segments, kway_tree
from ovseg.masks.ncut import NCutConfig, ncut_hierarchy
from ovseg.masks.pamr import PAMRConfig, pamr
from ovseg.masks.tree import auto_tau, cut_auto
from ovseg.masks.random_walk import combine_attention, random_walk_affinity, random_walk_hierarchy, random_walk_segments, stationary_distribution
from ovseg.masks.diffcut import build_hierarchy
from ovseg.masks.segment import refine_segments, segment_features
from ovseg.masks.upsample import assign_concepts

__all__ = [
    "ALPHA", "TAU", "AttentionCombiner", "CutMethod", "NCutTree", "Hierarchy", "HierarchyNode", "NCutConfig", "PAMRConfig",
    "KWayConfig", "KWayTree", "SolverConfig", "kway_affinity_cut", "kway_segments", "kway_tree", "ncut_value",
    "affinity", "assign_concepts", "auto_tau", "build_hierarchy", "capture_transitions",
    "combine_attention", "cut_auto", "get_method", "hierarchy_builder", "list_methods", "ncut_hierarchy", "pamr", "random_walk_affinity",
    "random_walk_hierarchy", "random_walk_segments", "register_method", "refine_segments", "segment_features",
    "segment_image", "stationary_distribution",
]
