"""What every backbone is: a module mapping RGB images in [0, 1] to a stride-s feature map."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ovseg.settings.devices import resolve_device, resolve_dtype
import torch.nn.functional as F


@dataclass
class BackboneOutput:
    features: torch.Tensor  # (B, C, h, w) float32
    attentions: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> (B, N, N), N = h*w


class Backbone(torch.nn.Module):
    """Base class. Subclasses set the attributes below and implement `extract`.

    Input sizes: H and W must be multiples of `stride`; other sizes are resized (bilinear,
    antialiased) to the nearest multiple of `stride` (at least one stride) before the pass,
    so the output is (B, C, round(H/stride), round(W/stride)). Pipelines normally resize to
    `resolution` themselves.
    """

    name: str
    stride: int
    resolution: int
    feature_dim: int

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, H, W) float32 RGB in [0, 1] -> features (B, C, H/stride, W/stride) float32.

        Raises FloatingPointError when the features hold NaN or inf (see `check_finite`)."""
        return check_finite(self.extract(images).features, self.name, getattr(self, "dtype", None))

    def extract(self, images: torch.Tensor, *, attention_layers=None) -> BackboneOutput:
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def extra_repr(self) -> str:
        return f"name={self.name!r}, resolution={self.resolution}, stride={self.stride}, feature_dim={self.feature_dim}"


def check_finite(x: torch.Tensor, backbone: str, dtype, stage: str = "features") -> torch.Tensor:
    """Return `x` when it is all finite; else raise FloatingPointError naming the backbone, the
    dtype and the stage, so that an fp16 overflow fails loudly instead of giving NaN segments.
    One reduction and one host sync per call (per batch, not per image)."""
    if not bool(torch.isfinite(x).all()):
        raise FloatingPointError(
            f"backbone {backbone!r}: {stage} contain NaN or inf with dtype {dtype} (a numeric overflow, "
            "typical of float16); rerun with --dtype float32 or --dtype bfloat16 (API: dtype=\"float32\")")
    return x


def check_images(images: torch.Tensor, stride: int) -> torch.Tensor:
    """Validate (B, 3, H, W) float RGB in [0, 1]; resize H, W to the nearest multiples of `stride`."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor (B, 3, H, W), got {type(images).__name__}.")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape (B, 3, H, W), got {tuple(images.shape)}.")
    if not images.is_floating_point():
        raise TypeError(f"images must be float in [0, 1], got {images.dtype} (divide uint8 by 255).")
    if images.numel() and (images.min() < -1e-3 or images.max() > 1 + 1e-3):
        raise ValueError(
            f"images must be in [0, 1], got values in [{images.min():.3g}, {images.max():.3g}]."
        )
    h, w = images.shape[-2:]
    size = tuple(max(stride, round(s / stride) * stride) for s in (h, w))
    if size != (h, w):
        images = F.interpolate(images.float(), size=size, mode="bilinear", align_corners=False, antialias=True)
        images = images.clamp(0, 1)
    return images.float()


def default_device_dtype(device, dtype) -> tuple[torch.device, torch.dtype]:
    """device None -> cuda if available else cpu; dtype None -> float16 on CUDA, float32 elsewhere."""
    device = resolve_device(device)  # the one rule (ovseg.settings.devices): a device that is not there is a SettingError
    return device, getattr(torch, resolve_dtype(dtype, device))
