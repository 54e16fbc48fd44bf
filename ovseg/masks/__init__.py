"""features -> segments: DiffCut's affinity and recursive normalized cut (METHOD.md sections 2-3),
the full-resolution concept assignment and PAMR refinement (section 4), random-walk cuts on
self-attention (section 5) and the discrete K-way cut (section 9).

The entry points a user needs are here; everything else stays importable from the module that
holds it (`ovseg.masks.tree.NCutTree`, `ovseg.masks.ncut.ncut_hierarchy`, ...; docs/architecture.md).

    segment_features(feats, method=, alpha=, tau=)  features (B, C, h, w) -> segments, any method
    build_hierarchy / kway_segments / random_walk_segments   one method each, with its config
    affinity, assign_concepts, refine_segments, pamr         the stages around the cut
    get_method, list_methods, register_method                the cut-method registry

Cut methods are chosen by name through the registry (ovseg/settings/methods.py, torch-free): a
new method is one module (its builder) plus one registration there."""
from ovseg.masks.affinity import affinity
from ovseg.masks.diffcut import build_hierarchy
from ovseg.masks.kway import KWayConfig, kway_segments
from ovseg.masks.ncut import NCutConfig
from ovseg.masks.pamr import PAMRConfig, pamr
from ovseg.masks.random_walk import capture_transitions, random_walk_segments
from ovseg.masks.segment import refine_segments, segment_features
from ovseg.masks.upsample import assign_concepts
from ovseg.settings.methods import get_method, list_methods, register_method

__all__ = ["KWayConfig", "NCutConfig", "PAMRConfig", "affinity", "assign_concepts", "build_hierarchy",
           "capture_transitions", "get_method", "kway_segments", "list_methods", "pamr", "random_walk_segments",
           "refine_segments", "register_method", "segment_features"]
