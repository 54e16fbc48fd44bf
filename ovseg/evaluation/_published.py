"""The published evaluation recipe (`evaluate(..., recipe="published")`, `ovseg eval --recipe published`).

DiffCut's evaluation scripts (read, not copied; docs/fidelity.md) prepare and score images in ways
ovseg's own protocol does not. This module reproduces them, so that the published table can be
recomputed and set beside ovseg's protocol:

- crop: the centred square of side min(H, W) - 1, at torchvision `CenterCrop`'s offsets
  (`int(round((H - side) / 2))`, Python's round: halves go to the even integer);
- image: `F.interpolate` bilinear (align_corners=False, no antialias) on the float image to 1024;
- labels: nearest-exact to 1024 (torchvision `Resize(NEAREST_EXACT)`), then for the unsupervised
  protocol `F.interpolate`'s default nearest to 128;
- label rules: VOC's 255 (object boundaries) and COCO-Object's 255 scored as background; ADE20K
  raw ids 0..149 scored as 150 classes (id 0 "other" is one of them: a published defect kept here
  only to reproduce the table) and raw id 150 dropped;
- open vocabulary: IoU per image over the classes present in its label or prediction (torchmetrics
  `JaccardIndex(task="multiclass")`, macro average, 1.x semantics), averaged over images.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ovseg.io.nearest import resize_nearest
from ovseg.evaluation._datasets import IGNORE, DatasetSpec

RECIPES = ("ovseg", "published")


def center_crop_box(height: int, width: int, side: int) -> tuple[int, int]:
    """(top, left) of torchvision's CenterCrop((side, side)) on an H x W image.

    torchvision computes `int(round((H - side) / 2.0))`: Python's round, so an offset of x.5 goes
    to the even integer (0.5 -> 0, 1.5 -> 2, 2.5 -> 2).
    """
    return int(round((height - side) / 2.0)), int(round((width - side) / 2.0))


def published_side(height: int, width: int) -> int:
    """DiffCut's crop side: the short side minus one (`c = min(w, h) - 1` in its data loader)."""
    return max(1, min(height, width) - 1)


def nearest_exact(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """labels (H, W) -> (h, w) by nearest-exact (torchvision `Resize(NEAREST_EXACT)`, which calls
    torch's "nearest-exact"): ovseg's one rule, `ovseg.io.nearest.nearest_exact_index`. At the
    published sizes (1024 and 2048, powers of two) torch's float32 arithmetic is exact for sides
    up to 4096, so this equals the published loader (tests/io/test_nearest.py)."""
    return resize_nearest(labels, size, mode="center")


def nearest(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """labels (H, W) -> (h, w) by F.interpolate's default "nearest", bit for bit
    (`ovseg.io.nearest.torch_nearest_index`): the published unsupervised script's label resize."""
    return resize_nearest(labels, size, mode="torch")


def published_spec(spec: DatasetSpec) -> DatasetSpec:
    """The dataset with the published label rules (unchanged where they equal ovseg's)."""
    lut = list(spec.lut)
    classes = spec.classes
    if spec.name in ("voc", "coco-object"):  # boundaries / unlabeled (255) scored as background
        lut[255] = spec.background
    elif spec.name == "ade20k":  # raw 0..149 -> classes 0..149 ("other" = 0), raw 150 dropped
        lut = [v if v < 150 else IGNORE for v in range(256)]
        classes = ("other", *spec.classes[:149])
    else:
        return spec
    return dataclasses.replace(spec, lut=tuple(lut), classes=tuple(classes))


def prepare_published(spec: DatasetSpec, sample, protocol: str, image_size: int, score_size: int):
    """One sample as the published loaders give it. Returns (image (3, S, S) float32 [0, 1] tensor,
    labels int64: (score_size,)^2 for the unsupervised protocol, (image_size,)^2 otherwise)."""
    import torch
    import torch.nn.functional as F

    from ovseg.io import open_image  # a bad file: ImageReadError naming it, one line in the CLI

    labels = spec.read_label(sample.label)
    with open_image(sample.image) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    if rgb.shape[:2] != labels.shape:
        raise ValueError(f"{sample.image} is {rgb.shape[1]}x{rgb.shape[0]} but its label is "
                         f"{labels.shape[1]}x{labels.shape[0]}")
    H, W = labels.shape
    side = published_side(H, W)
    top, left = center_crop_box(H, W, side)
    image = torch.from_numpy(rgb[top:top + side, left:left + side]).permute(2, 0, 1).contiguous()
    image = F.interpolate(image[None], size=(image_size, image_size), mode="bilinear", align_corners=False,
                          antialias=False)[0]
    labels = nearest_exact(labels[top:top + side, left:left + side], (image_size, image_size))
    if protocol == "unsupervised":
        labels = nearest(labels, (score_size, score_size))
    return image, labels


def image_jaccard(counts: np.ndarray, *, absent: str = "skip") -> float:
    """Mean IoU of one image from its (3, C) TP/FP/FN, as torchmetrics' multiclass JaccardIndex.

    absent="skip": classes with TP + FP + FN = 0 (neither in the label nor predicted) are left out
    of the mean (torchmetrics 1.x, after its fix of issue #1693); absent="zero": they count as IoU 0
    (torchmetrics 0.11-1.0). Returns NaN only if no pixel was scored.
    """
    tp, fp, fn = np.asarray(counts, dtype=np.float64)
    union = tp + fp + fn
    iou = np.divide(tp, union, out=np.zeros_like(tp), where=union > 0)
    if absent == "zero":
        return float(iou.mean()) if union.sum() > 0 else float("nan")
    if absent != "skip":
        raise ValueError(f"absent must be 'skip' or 'zero', got {absent!r}")
    return float(iou[union > 0].mean()) if (union > 0).any() else float("nan")
