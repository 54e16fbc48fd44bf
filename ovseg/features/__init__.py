"""image -> features: a registry of backbones mapping (B, 3, H, W) RGB in [0, 1] to (B, C, h, w).

    import ovseg
    backbone = ovseg.create_backbone("ssd-1b")            # DiffCut's default encoder
    feats = backbone(images)                              # (B, 1280, H/32, W/32) float32
    out = backbone.extract(images, attention_layers=[-1]) # features + self-attention maps

Features are raw (not L2-normalised); H, W that are not multiples of `backbone.stride` are resized
to the nearest multiples. Weights: `weights=None` (official repo id, HF cache), another repo id, or
a local directory; offline without them, `ovseg.WeightsNotFoundError` within seconds.
Third-party backbones: entry-point group "ovseg.backbones" (see `ovseg.features._registry`).
"""
from ovseg.features._base import Backbone, BackboneOutput
from ovseg.features._registry import (
    ENTRY_POINT_GROUP,
    BackboneInfo,
    attention_backbones,
    backbone_info,
    check_attention_layers,
    create_backbone,
    list_backbones,
    register_backbone,
)
from ovseg.features import _lite, _unet, _vit  # noqa: F401  (registers the built-in backbones)

__all__ = ["Backbone", "BackboneInfo", "BackboneOutput", "ENTRY_POINT_GROUP", "attention_backbones",
           "backbone_info", "check_attention_layers", "create_backbone", "list_backbones",
           "register_backbone"]
