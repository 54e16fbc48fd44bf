"""Dataset-level scores from accumulated per-class TP/FP/FN counts."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


def iou_per_class(counts: np.ndarray) -> np.ndarray:
    """counts (3, C) TP/FP/FN summed over a dataset -> IoU (C,) float64 = TP / (TP + FP + FN).

    A class with TP + FP + FN = 0 (never in the ground truth, never predicted) gets NaN and is
    left out of the mean, as in the published evaluation (np.nanmean).
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[0] != 3:
        raise ValueError(f"counts must have shape (3, C), got {counts.shape}")
    tp, fp, fn = counts
    denominator = tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, tp / np.maximum(denominator, 1), np.nan)


def mean_iou(counts: np.ndarray) -> float:
    """Mean of the defined per-class IoUs (NaN if none is defined)."""
    iou = iou_per_class(counts)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else math.nan


@dataclass(frozen=True)
class EvaluationResult:
    """Scores of one predictor (one setting) on one dataset.

    counts: (3, C) int64 TP/FP/FN over all scored pixels of all images (rows TP, FP, FN).
    """

    dataset: str
    protocol: str
    classes: tuple[str, ...]
    counts: np.ndarray
    num_images: int
    settings: dict = field(default_factory=dict)
    # the published open-vocabulary score (recipe="published"): per-image mIoU averaged over images;
    # when set, `miou` is this number (per-class `iou` stays the dataset-level TP/FP/FN ratio)
    image_miou: float | None = None

    @property
    def iou(self) -> np.ndarray:
        return iou_per_class(self.counts)

    @property
    def miou(self) -> float:
        if self.image_miou is not None:
            return self.image_miou
        return mean_iou(self.counts)

    @property
    def pixel_accuracy(self) -> float:
        """Share of scored pixels whose predicted class is right (sum TP / sum(TP + FN))."""
        tp, _, fn = self.counts.astype(np.float64)
        total = (tp + fn).sum()
        return float(tp.sum() / total) if total else math.nan

    def to_dict(self) -> dict:
        iou = self.iou
        return {
            "dataset": self.dataset,
            "protocol": self.protocol,
            "settings": self.settings,
            "num_images": self.num_images,
            "miou": None if math.isnan(self.miou) else self.miou,
            "miou_averaging": "per image" if self.image_miou is not None else "dataset",
            "pixel_accuracy": None if math.isnan(self.pixel_accuracy) else self.pixel_accuracy,
            "classes": [
                {"class": name, "iou": None if math.isnan(v) else float(v),
                 "tp": int(tp), "fp": int(fp), "fn": int(fn)}
                for name, v, tp, fp, fn in zip(self.classes, iou, *self.counts)
            ],
        }
