"""Vision transformers for comparison (METHOD.md section 8): DINOv2, CLIP, SigLIP patch tokens.

Features are the last layer's patch tokens (class token and registers dropped), reshaped to
(B, C, H/patch, W/patch), after the model's own mean/std normalisation. Position embeddings are
interpolated for resolutions other than the pretraining one.
"""
from __future__ import annotations

from functools import partial

import torch

from ovseg.settings.weights import resolve_weights
from ovseg.features._base import Backbone, BackboneOutput, check_finite, check_images, default_device_dtype
from ovseg.features._registry import register_backbone
from ovseg.settings.catalog import load_config  # the shipped architecture JSON (torch-free)

# config.json, and the weights as safetensors where the repository has them, else its PyTorch
# pickle (openai/clip-vit-base-patch16 holds pytorch_model.bin and no safetensors file, see
# docs/weights.md), which transformers reads with torch.load(weights_only=True): tensors only.
_REQUIRED = ["config.json", ("model.safetensors", "pytorch_model.bin")]
_DOWNLOADS = {"clip-b16": ["config.json", "pytorch_model.bin"]}  # what the official repo holds, for the hint


class ViTBackbone(Backbone):
    """A transformers vision model (Dinov2Model, CLIPVisionModel, SiglipVisionModel) as a backbone.

    num_prefix: tokens before the patch tokens (1 class token for DINOv2 and CLIP, 0 for SigLIP,
    1 + registers for DINOv2 with registers).
    """

    def __init__(self, name: str, model, *, mean, std, patch: int, resolution: int, num_prefix: int,
                 pass_interpolate: bool, device=None, dtype=None):
        super().__init__()
        device, dtype = default_device_dtype(device, dtype)
        self.name, self.stride, self.resolution, self.dtype = name, patch, resolution, dtype
        self.num_prefix, self.pass_interpolate = num_prefix, pass_interpolate
        self.model = model.to(device, dtype).eval()
        self.feature_dim = model.config.hidden_size
        self.num_layers = model.config.num_hidden_layers
        self.register_buffer("mean", torch.tensor(mean, device=device).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, device=device).view(1, 3, 1, 1), persistent=False)

    @torch.no_grad()
    def extract(self, images: torch.Tensor, *, attention_layers=None) -> BackboneOutput:
        """images (B, 3, H, W) float32 in [0, 1] -> BackboneOutput(features (B, C, H/patch, W/patch)
        float32, attentions {"layer.i": (B, N, N)}): heads averaged, prefix tokens dropped, rows
        renormalised to sum to 1. attention_layers: layer indices (negative allowed) or names "layer.i"."""
        images = check_images(images, self.stride)
        b, _, h, w = images.shape
        layers = [self._layer_index(i) for i in attention_layers or []]
        x = ((images.to(self.mean.device) - self.mean) / self.std).to(self.dtype)
        kwargs = {"interpolate_pos_encoding": True} if self.pass_interpolate else {}
        if layers:  # attention probabilities need the eager implementation
            previous = self.model.config._attn_implementation
            self.model.set_attn_implementation("eager")
            try:
                out = self.model(pixel_values=x, output_attentions=True, **kwargs)
            finally:
                self.model.set_attn_implementation(previous)
        else:
            out = self.model(pixel_values=x, **kwargs)
        tokens = out.last_hidden_state[:, self.num_prefix:]  # (B, N, C) patch tokens only
        feats = tokens.float().transpose(1, 2).reshape(b, -1, h // self.stride, w // self.stride)
        check_finite(feats, self.name, self.dtype)  # fp16 overflow: fail loudly, not NaN segments
        attentions = {}
        for i in layers:
            p = out.attentions[i].float().mean(dim=1)[:, self.num_prefix:, self.num_prefix:]
            attentions[f"layer.{i}"] = p / p.sum(dim=-1, keepdim=True)
        return BackboneOutput(feats, attentions)

    @property
    def attention_layer_names(self) -> list[str]:
        """Names of the layers whose attention maps `extract` can record ("layer.i")."""
        return [f"layer.{i}" for i in range(self.num_layers)]

    def _layer_index(self, i) -> int:
        if isinstance(i, str) and i in self.attention_layer_names:
            return int(i.split(".")[1])
        if isinstance(i, bool) or not isinstance(i, int) or not -self.num_layers <= i < self.num_layers:
            raise ValueError(f"attention layer {i!r} invalid: give an index in [0, {self.num_layers}) "
                             f"or a name layer.0 .. layer.{self.num_layers - 1}")
        return i % self.num_layers


_FAMILIES = {  # name prefix -> (transformers class, prefix tokens, forward takes interpolate_pos_encoding)
    "dinov2": ("Dinov2Model", 1, False),  # DINOv2 always interpolates its position embeddings
    "clip": ("CLIPVisionModel", 1, True),
    "siglip": ("SiglipVisionModel", 0, True),
}


def from_model(name: str, model, *, resolution: int | None = None, device=None, dtype=None) -> ViTBackbone:
    """Wrap an already built transformers vision model (used by the loaders and ovseg.testing)."""
    vision = load_config(name)["vision"]
    _, num_prefix, interp = _FAMILIES[name.split("-")[0]]
    num_prefix += getattr(model.config, "num_register_tokens", 0) or 0
    return ViTBackbone(name, model, mean=vision["image_mean"], std=vision["image_std"],
                       patch=model.config.patch_size, resolution=resolution or _info_resolution(name),
                       num_prefix=num_prefix, pass_interpolate=interp, device=device, dtype=dtype)


def _info_resolution(name: str) -> int:
    from ovseg.features._registry import backbone_info

    return backbone_info(name).resolution


def download_files(name: str) -> list[str]:
    """The files a run downloads from backbone `name`'s official repository (docs/weights.md)."""
    return _DOWNLOADS.get(name, ["config.json", "model.safetensors"])


def _build_vit(name: str, repo_id: str, download_size: str, *, weights=None, device=None, dtype=None,
               resolution: int | None = None) -> ViTBackbone:
    device, dtype = default_device_dtype(device, dtype)
    path = resolve_weights(weights, repo_id=repo_id, model=name, download_size=download_size,
                           required=_REQUIRED, hint_files=download_files(name))
    import transformers  # after resolving: an offline error comes in seconds
    cls = getattr(transformers, _FAMILIES[name.split("-")[0]][0])
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # the text tower's weights are expected to be unused
    try:
        model = cls.from_pretrained(path, dtype=dtype, attn_implementation="sdpa", weights_only=True)
    finally:
        transformers.logging.set_verbosity(verbosity)
    return from_model(name, model, resolution=resolution, device=device, dtype=dtype)


def _register(name, repo_id, size, resolution, stride, dim, description):
    layers = tuple(f"layer.{i}" for i in range(load_config(name)["vision"]["num_hidden_layers"]))
    register_backbone(name, repo_id=repo_id, download_size=size, resolution=resolution, stride=stride,
                      feature_dim=dim, description=description, download_files=tuple(download_files(name)),
                      attention_layers=layers,
                      conditioning="raw: the last layer's patch tokens (conditioning not measured)",
                      )(partial(_build_vit, name, repo_id, size))


_register("dinov2-s", "facebook/dinov2-small", "88 MB", 518, 14, 384, "DINOv2 ViT-S/14 patch tokens")
_register("dinov2-b", "facebook/dinov2-base", "346 MB", 518, 14, 768, "DINOv2 ViT-B/14 patch tokens")
_register("dinov2-l", "facebook/dinov2-large", "1.2 GB", 518, 14, 1024, "DINOv2 ViT-L/14 patch tokens")
_register("dinov2-g", "facebook/dinov2-giant", "4.5 GB", 518, 14, 1536, "DINOv2 ViT-g/14 patch tokens")
_register("clip-b16", "openai/clip-vit-base-patch16", "599 MB", 224, 16, 768,
          "OpenAI CLIP ViT-B/16 image tower, last-layer patch tokens")
_register("siglip-b16", "google/siglip-base-patch16-224", "813 MB", 224, 16, 768,
          "SigLIP ViT-B/16 image tower, last-layer patch tokens")
