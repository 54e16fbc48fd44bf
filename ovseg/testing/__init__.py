"""Tiny random-weight checkpoints of every model ovseg loads, to run the whole pipeline offline.

They are written to a directory in the same layout as the real weights and loaded back through
the same `from_pretrained` code, so tests exercise the real loaders. Their outputs mean nothing.

    from ovseg.testing import make_tiny_backbone_weights
    weights = make_tiny_backbone_weights("ssd-1b", "/tmp/tiny-ssd")
    backbone = ovseg.create_backbone("ssd-1b", weights=weights)
"""
_LAZY = {
    "make_tiny_backbone_weights": "ovseg.testing._features",
    "make_tiny_clip_weights": "ovseg.testing._labels",
    "make_random_backbone": "ovseg.testing._features",
    "make_random_labeler": "ovseg.testing._labels",
    "PLANTED_SET": "ovseg.testing._planted",
    "planted_case": "ovseg.testing._planted",
    "planted_features": "ovseg.testing._planted",
    "planted_layout": "ovseg.testing._planted",
    "planted_miou": "ovseg.testing._planted",
    "STATISTICS": "ovseg.testing._planted",
    "STATISTICS_SET": "ovseg.testing._planted",
    "planted_statistics": "ovseg.testing._planted",
    "make_planted_labeler": "ovseg.testing._labels",
    "FakeHub": "ovseg.testing._hub",
    "quadrants": "ovseg.testing._walk",
    "planted_pairs": "ovseg.testing._walk",
    "register_planted_walk": "ovseg.testing._walk",
    "PlantedWalk": "ovseg.testing._walk",
    "QUADRANT_COLOURS": "ovseg.testing._walk",
    "WALK_LAYERS": "ovseg.testing._walk",
}
__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ovseg.testing' has no attribute {name!r}")
