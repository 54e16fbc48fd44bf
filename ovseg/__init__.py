"""ovseg: training-free, open-vocabulary image segmentation.

image -> features (diffusion UNet encoder) -> masks (recursive normalized cut) -> labels (CLIP).
"""
from ovseg.settings.checks import SettingError
from ovseg.settings.weights import WeightsNotFoundError

__version__ = "0.1.0"

# Heavy modules (torch, diffusers, open_clip) load on first use, so `ovseg --help` stays quick.
_LAZY = {
    "create_backbone": "ovseg.features",
    "list_backbones": "ovseg.features",
    "segment_features": "ovseg.masks",
    "create_labeler": "ovseg.labels",
    "Vocabulary": "ovseg.labels",
    "Segmenter": "ovseg.pipeline",
    "SegmenterConfig": "ovseg.pipeline",
    "SegmentationResult": "ovseg.pipeline",
    "load_vocabulary": "ovseg.labels",
    "list_vocabularies": "ovseg.labels",
    "ModelLoadError": "ovseg.pipeline",
    "Models": "ovseg.pipeline",
    "stages": "ovseg.pipeline",
    "list_methods": "ovseg.masks",
    "evaluate": "ovseg.evaluation",
}

__all__ = ["SettingError", "WeightsNotFoundError", "__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ovseg' has no attribute {name!r}")


def __dir__() -> list[str]:  # the public names (the lazy ones included), not the helpers above
    return sorted(set(__all__) | {n for n in globals() if n.startswith("__")})
