"""What the coherence tools take in: images, masks, a point, and backbones by name or object.

A "backbone" here is anything with the interface of `ovseg.create_backbone`'s result: called on
`images (B, 3, H, W) float32 RGB in [0, 1]` it returns `feats (B, C, H/stride, W/stride)`, and it
carries `stride` (and, ideally, `name` and `resolution`). Names are created through
`ovseg.create_backbone`, one at a time, so only one large model sits in memory at once.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np

ImageLike = Union[str, os.PathLike, "PIL.Image.Image", "torch.Tensor", np.ndarray]  # noqa: F821
BackboneSpec = Union[str, Callable[..., Any]]

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)%?"
_POINT_RE = re.compile(rf"^\s*({_NUMBER})\s*,\s*({_NUMBER})\s*$")


@dataclass(frozen=True)
class Point:
    """A point of the reference image: pixels (x right, y down, from the top-left corner) when
    `relative` is False; fractions of the width and height (0..1) when it is True."""

    x: float
    y: float
    relative: bool = False

    def to_pixels(self, width: int, height: int) -> tuple[float, float]:
        """(x, y) in pixels of a `width` x `height` image; ValueError when outside it."""
        if self.relative:
            if not (0.0 <= self.x <= 1.0 and 0.0 <= self.y <= 1.0):
                raise ValueError(
                    f"point ({self.x:g}, {self.y:g}) as fractions must lie in [0, 1] x [0, 1]"
                )
            # A fraction of 1.0 is the far edge: keep it inside the last pixel.
            return min(self.x * width, width - 0.5), min(self.y * height, height - 0.5)
        if not (0 <= self.x < width and 0 <= self.y < height):
            raise ValueError(
                f"point ({self.x:g}, {self.y:g}) lies outside the reference image, which is "
                f"{width} x {height} pixels (x in [0, {width}), y in [0, {height}))"
            )
        return float(self.x), float(self.y)

    def to_cell(self, width: int, height: int, grid: tuple[int, int]) -> tuple[int, int]:
        """(row, col) of the feature cell of a `grid` = (h, w) map covering the whole image."""
        x, y = self.to_pixels(width, height)
        h, w = grid
        return min(int(y / height * h), h - 1), min(int(x / width * w), w - 1)


def parse_point(point: str | Sequence[float] | Point) -> Point:
    """Read a point: "X,Y" integers are pixels ("120,80"); numbers with a decimal point are
    fractions of the width and height ("0.5,0.4"), and so are percentages ("50%,40%").
    A tuple of ints is pixels, a tuple of floats fractions. Mixing the two forms is an error."""
    if isinstance(point, Point):
        return point
    if isinstance(point, str):
        match = _POINT_RE.match(point)
        if match is None:
            raise ValueError(
                f"cannot read point {point!r}: write X,Y in pixels (e.g. 120,80) or as "
                f"fractions of the image (e.g. 0.5,0.4 or 50%,40%)"
            )
        parts = match.groups()
        kinds = {"%" if p.endswith("%") else ("." if "." in p else "int") for p in parts}
        if len(kinds) > 1:
            raise ValueError(f"point {point!r} mixes pixels and fractions; use one form for both")
        kind = kinds.pop()
        if kind == "%":
            return Point(float(parts[0][:-1]) / 100, float(parts[1][:-1]) / 100, relative=True)
        if kind == ".":
            return Point(float(parts[0]), float(parts[1]), relative=True)
        return Point(int(parts[0]), int(parts[1]), relative=False)
    if isinstance(point, Sequence) and len(point) == 2:
        x, y = point
        if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in point):
            return Point(int(x), int(y), relative=False)
        if all(isinstance(v, (float, np.floating)) for v in point):
            return Point(float(x), float(y), relative=True)
        raise TypeError(
            f"point {point!r}: give two ints (pixels) or two floats (fractions), not a mix"
        )
    raise TypeError(f"point must be a string 'X,Y', a pair of numbers or a Point, not {point!r}")


def load_image(image: ImageLike, *, exif_transpose: bool = True) -> "torch.Tensor":  # noqa: F821
    """Any image -> `(3, H, W) float32 RGB in [0, 1]` on the CPU.

    Accepts a file path, a PIL image, a `(3, H, W)` tensor in [0, 1] or an `(H, W, 3)` uint8 array.
    exif_transpose: turn a file upright by its EXIF orientation tag (as viewers show it); False
    reads the pixels as stored, which is how label maps (and the evaluation) see them.
    """
    import torch

    if isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"image tensor must be (3, H, W) RGB in [0, 1], got {tuple(image.shape)}")
        return image.detach().to("cpu", torch.float32)
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image array must be (H, W, 3), got {image.shape}")
        scale = 255.0 if image.dtype == np.uint8 else 1.0
        image = np.ascontiguousarray(image) if image.flags.writeable else image.copy()  # torch warns
        return torch.from_numpy(image).permute(2, 0, 1).float() / scale
    from PIL import Image

    from ovseg.io import open_image, to_rgb  # the pipeline's reader: modes, alpha, 16-bit alike

    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"image not found: {path}")
        with open_image(path) as opened:  # full size: dataset masks must line up with it;
            # a bad file: ImageReadError naming it
            array = to_rgb(opened, max_pixels=None, exif_transpose=exif_transpose)
    elif isinstance(image, Image.Image):
        array = to_rgb(image, max_pixels=None, exif_transpose=False)
    else:
        raise TypeError(f"cannot read an image from {type(image).__name__}")
    return torch.from_numpy(array).permute(2, 0, 1).float() / 255.0


def load_mask(mask: str | os.PathLike | np.ndarray | "torch.Tensor") -> np.ndarray:  # noqa: F821
    """A ground-truth class map -> `(H, W) int64`. PNG files are read as class indices (the
    palette index for VOC-style "P" images, the grey value for "L"/"I" images)."""
    if isinstance(mask, np.ndarray):
        array = mask
    elif hasattr(mask, "detach"):
        array = mask.detach().cpu().numpy()
    else:
        from ovseg.io import open_image

        path = Path(mask)
        if not path.is_file():
            raise FileNotFoundError(f"mask not found: {path}")
        with open_image(path) as opened:
            if opened.mode not in {"P", "L", "I", "I;16", "1"}:
                raise ValueError(
                    f"{path}: mask is a {opened.mode} image; a class map must be single-channel "
                    f"(palette 'P' or greyscale 'L'), one class index per pixel"
                )
            array = np.array(opened)
    if array.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {array.shape}")
    return array.astype(np.int64)


def read_pairs(folder: str | os.PathLike) -> list[tuple[Path, Path]]:
    """The (image, mask) pairs of a folder: `name.jpg` (or .jpeg/.png/.bmp/.webp image) with
    `name.png` as its class map. Masks may also sit in a `masks/` subfolder next to `images/`."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"pairs folder not found: {root}")
    image_dir, mask_dir = root, root
    if (root / "images").is_dir() and (root / "masks").is_dir():
        image_dir, mask_dir = root / "images", root / "masks"
    pairs = []
    for image in sorted(image_dir.iterdir()):
        if image.suffix.lower() not in {".jpg", ".jpeg", ".png", ".bmp", ".webp"}:
            continue
        mask = mask_dir / f"{image.stem}.png"
        if mask != image and mask.is_file():
            pairs.append((image, mask))
    if not pairs:
        raise ValueError(
            f"no image/mask pairs in {root}: expected name.jpg next to name.png "
            f"(or images/name.jpg with masks/name.png)"
        )
    return pairs


def iter_backbones(
    backbones: str | Sequence[BackboneSpec] | Mapping[str, BackboneSpec],
    *,
    weights: Mapping[str, str] | None = None,
    device: str | None = None,
    dtype: Any = None,
) -> Iterator[tuple[str, Any]]:
    """Yield `(label, backbone)` one at a time, creating named ones through `ovseg.create_backbone`
    only when reached (and dropping each before the next is made).

    backbones: "ssd-1b,dinov2-b", a list of names/objects, or a {label: name or object} mapping.
    weights: {backbone name: local directory or repo id}; names not in it use the default weights.
    """
    if isinstance(backbones, str):
        backbones = [b.strip() for b in backbones.split(",") if b.strip()]
    items = list(backbones.items()) if isinstance(backbones, Mapping) else [(None, b) for b in backbones]
    if not items:
        raise ValueError("no backbone given")
    for _, spec in items:
        if not (isinstance(spec, str) or callable(spec)):
            raise TypeError(f"a backbone must be a name or a callable, not {type(spec).__name__}")
    weights = dict(weights or {})
    unknown = set(weights) - {b for _, b in items if isinstance(b, str)}
    if unknown:
        raise ValueError(f"weights given for {sorted(unknown)}, which are not among the backbones")
    labels = [label or (spec if isinstance(spec, str) else str(getattr(spec, "name", type(spec).__name__)))
              for label, spec in items]
    twice = sorted({x for x in labels if labels.count(x) > 1})
    if twice:
        raise ValueError(f"backbone {twice} given twice; to compare copies, pass {{label: backbone}}")
    for label, (_, spec) in zip(labels, items):
        if isinstance(spec, str):
            import ovseg

            kwargs = {k: v for k, v in {"weights": weights.get(spec), "device": device,
                                        "dtype": dtype}.items() if v is not None}
            model = ovseg.create_backbone(spec, **kwargs)
            yield label, model
            del model
        else:
            yield label, spec


def _device_of(backbone: Any, default: str | None) -> "torch.device":  # noqa: F821
    import torch

    parameters = getattr(backbone, "parameters", None)
    if callable(parameters):
        first = next(iter(parameters()), None)
        if first is not None:
            return first.device
    return torch.device(default or "cpu")


def input_size(backbone: Any, image_hw: tuple[int, int], resolution: int | None) -> tuple[int, int]:
    """The (H, W) the image is resized to: `resolution` (else the backbone's own) as a square,
    rounded down to a multiple of the stride; the image's size (so rounded) when neither is known."""
    stride = int(getattr(backbone, "stride", 1) or 1)
    size = resolution or getattr(backbone, "resolution", None)
    h, w = (size, size) if size else image_hw
    h, w = max(stride, h // stride * stride), max(stride, w // stride * stride)
    return h, w


def extract(backbone: Any, image: "torch.Tensor", *, resolution: int | None = None,  # noqa: F821
            device: str | None = None) -> "torch.Tensor":  # noqa: F821
    """Features of one image: `image (3, H, W)` in [0, 1] -> `(C, h, w) float32` on the CPU.

    The image is resized (bilinear, antialiased) to `input_size(...)` before the backbone sees it.
    """
    import torch
    import torch.nn.functional as F

    size = input_size(backbone, tuple(image.shape[-2:]), resolution)
    batch = image.unsqueeze(0).to(torch.float32)
    if tuple(batch.shape[-2:]) != size:
        batch = F.interpolate(batch, size=size, mode="bilinear", antialias=True, align_corners=False)
    batch = batch.clamp(0, 1).to(_device_of(backbone, device))
    with torch.no_grad():
        feats = backbone(batch)
    if not isinstance(feats, torch.Tensor) or feats.ndim != 4 or feats.shape[0] != 1:
        shape = tuple(feats.shape) if isinstance(feats, torch.Tensor) else type(feats).__name__
        raise ValueError(f"backbone returned {shape}; expected features (1, C, h, w)")
    if not torch.isfinite(feats).all():
        raise ValueError("backbone returned non-finite features (NaN or inf)")
    return feats[0].detach().to("cpu", torch.float32)


def grid_cells(shape: tuple[int, int], grid: tuple[int, int]) -> np.ndarray:
    """`(H, W) int64`: the index `row * w + col` of the feature cell that covers each pixel
    (``ovseg.io.resize_nearest`` of the cell indices, mode "floor": exact integer arithmetic)."""
    from ovseg.io import resize_nearest

    h, w = grid
    return resize_nearest(np.arange(h * w, dtype=np.int64).reshape(h, w), shape, mode="floor")