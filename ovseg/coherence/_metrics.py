"""Semantic coherence as a number: does patch similarity separate same-class from other-class pairs?

For each image with ground truth, every feature cell gets the majority ground-truth class of the
pixels it covers (cells whose majority is the ignore label are dropped). Random pairs of cells are
drawn with a seeded generator; the score is the ROC AUC of cosine similarity as a predictor of
"same class": the probability that a random same-class pair is more similar than a random
other-class pair (ties count 1/2). 1.0 is perfect separation, 0.5 is chance.
Beside it, the unsupervised mIoU the backbone's features give through the normalized cut.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from ovseg.coherence._inputs import (
    BackboneSpec,
    extract,
    grid_cells,
    iter_backbones,
    load_image,
    load_mask,
)
from ovseg.evaluation._metrics import mean_iou  # the evaluation's mIoU: NaN classes left out
from ovseg.settings.config import SegmenterConfig  # the other options' defaults, as `ovseg label`
from ovseg.settings.defaults import ALPHA, AUTO, TAU
from ovseg.settings.methods import get_method, list_methods

DROPPED = -1  # label of a cell with no usable ground truth


@dataclass(frozen=True)
class CoherenceScore:
    """One backbone's row of the comparison."""

    backbone: str
    auc: float               # ROC AUC of same-class vs other-class pair similarity; nan if undefined
    cross_auc: float         # the same over pairs across consecutive images (the figure's target row)
    miou: float | None       # unsupervised mIoU through the cut; None when not measured
    images: int              # images used
    positive_pairs: int      # sampled same-class pairs
    negative_pairs: int      # sampled other-class pairs
    mean_positive: float     # mean cosine similarity of same-class pairs
    mean_negative: float     # mean cosine similarity of other-class pairs
    cut: dict | None = None  # the cut behind miou: method, alpha, tau (k), segments_mean, k_chosen_mean

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC from ranks (Mann-Whitney U): P(score of a positive > score of a negative),
    ties counted 1/2. scores (N,) float, positive (N,) bool. nan without both classes."""
    from scipy.stats import rankdata

    scores = np.asarray(scores, dtype=np.float64).ravel()
    positive = np.asarray(positive, dtype=bool).ravel()
    if scores.shape != positive.shape:
        raise ValueError(f"scores {scores.shape} and positive {positive.shape} differ in length")
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores, method="average")  # tied scores share their mean rank
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2  # Mann & Whitney 1947, U statistic
    return float(u / (n_pos * n_neg))


def patch_labels(mask: np.ndarray, grid: tuple[int, int], ignore_index: int | None = 255) -> np.ndarray:
    """mask (H, W) int -> (h * w,) int64: the majority class of the pixels each cell covers
    (row-major cells; ties go to the smaller class id). Cells whose majority is `ignore_index`
    (or a negative id) are DROPPED (-1)."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W), got {mask.shape}")
    h, w = grid
    cells = grid_cells(mask.shape, grid).ravel()
    values, inverse = np.unique(mask.ravel(), return_inverse=True)
    counts = np.bincount(cells * len(values) + inverse.ravel(), minlength=h * w * len(values))
    counts = counts.reshape(h * w, len(values))
    labels = values[counts.argmax(1)].astype(np.int64)
    bad = (counts.sum(1) == 0) | (labels < 0)
    if ignore_index is not None:
        bad |= labels == ignore_index
    labels[bad] = DROPPED
    return labels


def sample_pairs(n: int, num_pairs: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`num_pairs` ordered pairs (i, j), i != j, uniform over the n * (n - 1) such pairs."""
    if n < 2 or num_pairs <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    i = rng.integers(0, n, size=num_pairs)
    j = rng.integers(0, n - 1, size=num_pairs)
    return i, j + (j >= i)  # skip i itself: uniform over the other n - 1 cells


def _unit_cells(feats: "torch.Tensor") -> np.ndarray:  # noqa: F821
    """feats (C, h, w) -> (h * w, C) float32, each row L2-normalised (cosine = dot product)."""
    import torch.nn.functional as F

    return F.normalize(feats.reshape(feats.shape[0], -1).float(), dim=0).T.numpy()


def pair_similarities(
    feats: "torch.Tensor",  # noqa: F821
    labels: np.ndarray,
    num_pairs: int,
    rng: np.random.Generator,
    other: tuple["torch.Tensor", np.ndarray] | None = None,  # noqa: F821
) -> tuple[np.ndarray, np.ndarray]:
    """feats (C, h, w), labels (h * w,) -> (cosine similarity (P,), same class (P,) bool) of
    `num_pairs` random pairs of labelled cells: two distinct cells of this image, or, with
    `other` = (feats', labels') of a second image, one cell of each (cross-image pairs)."""
    a_cells = _unit_cells(feats)
    if a_cells.shape[0] != labels.shape[0]:
        raise ValueError(f"{a_cells.shape[0]} feature cells but {labels.shape[0]} cell labels")
    valid_a = np.flatnonzero(labels != DROPPED)
    if other is None:
        b_cells, labels_b = a_cells, labels
        i, j = sample_pairs(len(valid_a), num_pairs, rng)
        a, b = valid_a[i], valid_a[j]
    else:
        b_cells, labels_b = _unit_cells(other[0]), other[1]
        valid_b = np.flatnonzero(labels_b != DROPPED)
        if len(valid_a) == 0 or len(valid_b) == 0:
            a = b = np.zeros(0, np.int64)
        else:
            a = valid_a[rng.integers(0, len(valid_a), size=num_pairs)]
            b = valid_b[rng.integers(0, len(valid_b), size=num_pairs)]
    if a_cells.shape[1] != b_cells.shape[1]:
        raise ValueError(f"feature dims differ between images: {a_cells.shape[1]} vs {b_cells.shape[1]}")
    sims = np.einsum("pc,pc->p", a_cells[a], b_cells[b]).astype(np.float64)
    return sims, labels[a] == labels_b[b]


def _default_segment(method: str, alpha: float | None, tau: float | str | None, options: dict,
                     backbone: Any = None) -> Callable:
    """feats (1, C, h, w) -> (h, w) ids by the registered cut `method` (`ovseg.masks.get_method`);
    alpha / tau None: `backbone`'s registry defaults (`backbone_info(name)`, as `ovseg label`),
    or the paper's 10 and 0.5 for an unregistered backbone object."""
    entry = get_method(method)
    if entry.needs != "features":
        raise ValueError(f"method {method!r} needs the backbone's self-attention; coherence scores feature "
                         f"maps only: use a method that cuts features ({', '.join(_feature_methods())})")
    name = backbone if isinstance(backbone, str) else getattr(backbone, "name", None)
    info = None
    if name is not None:
        from ovseg.features import backbone_info

        try:
            info = backbone_info(name)
        except ValueError:  # not a registered backbone: the paper's defaults
            info = None
    alpha = alpha if alpha is not None else (info.alpha if info.alpha == AUTO else float(info.alpha)) if info else ALPHA
    tau = tau if tau is not None else float(info.tau) if info else TAU
    options = dict(options)
    min_area = options.pop("min_area", None)  # any method's (ovseg.masks.min_area); None: the backbone's
    min_area = min_area if min_area is not None else float(info.min_area) if info else 0.0
    given = {**{f.name: f.default for f in fields(SegmenterConfig)}, "alpha": alpha, **options}
    build_options = {k: given[k] for k in entry.options if k in given}

    def segment(feats):
        from ovseg.masks.min_area import with_min_area  # the cut needs torch; this module does not

        tree = with_min_area(entry.build(feats, None, **build_options), feats, min_area)[0]  # then its cut at tau
        seg, info = tree.cut(tau)
        segment.infos.append(info)
        return seg

    segment.settings = {"method": method, **build_options, entry.setting: tau, **({"min_area": min_area} if min_area else {})}
    segment.infos = []  # per image, what the cut reported (kway: {"k_chosen": K})
    return segment


def _cut_record(cut: Callable, chosen: list[int]) -> dict | None:
    """The cut's settings, the mean number of segments per image and the mean of what the cut
    reported (k_chosen, tau_chosen); None for a cut of the caller's own (segment_fn)."""
    if not hasattr(cut, "settings"):
        return None
    out = {**cut.settings, "segments_mean": float(np.mean(chosen)) if chosen else None}
    for key in dict.fromkeys(k for info in cut.infos for k in info):
        values = [float(info[key]) for info in cut.infos if key in info]
        out[f"{key}_mean"] = float(np.mean(values))
    return out


def _feature_methods() -> list[str]:
    return [m for m in list_methods() if get_method(m).needs == "features"]


def _default_counts(num_classes: int | None, background: int | None) -> Callable:
    """gt (H, W) (-1 = not scored), seg (H, W) -> (3, C) TP/FP/FN by the evaluation's per-image
    Hungarian matching (`ovseg.evaluation.unsupervised_counts`)."""

    def counts(gt: np.ndarray, seg: np.ndarray) -> np.ndarray:
        from ovseg.evaluation import unsupervised_counts

        n = num_classes or int(gt.max()) + 1  # classes present so far: absent ones score nothing
        return unsupervised_counts(gt, seg, max(n, 1), background=background)

    return counts


def _add(total: np.ndarray | None, counts: np.ndarray) -> np.ndarray:
    """Sum (3, C) count arrays whose C may differ (missing classes count zero)."""
    counts = np.asarray(counts, dtype=np.int64)
    if total is None:
        return counts.copy()
    width = max(total.shape[1], counts.shape[1])
    out = np.zeros((3, width), np.int64)
    out[:, : total.shape[1]] += total
    out[:, : counts.shape[1]] += counts
    return out


def coherence_scores(
    pairs: Iterable[tuple[Any, Any]],
    backbones: str | Sequence[BackboneSpec] | Mapping[str, BackboneSpec],
    *,
    num_pairs: int = 2000,
    seed: int = 0,
    ignore_index: int | None = 255,
    resolution: int | None = None,
    miou: bool = True,
    alpha: float | None = None,
    tau: float | None = None,
    method: str = "diffcut",
    method_options: Mapping[str, Any] | None = None,
    num_classes: int | None = None,
    background: int | None = None,
    read_mask: Callable[[Any], np.ndarray] = load_mask,
    weights: Mapping[str, str] | None = None,
    device: str | None = None,
    dtype: Any = None,
    segment_fn: Callable | None = None,
    counts_fn: Callable | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[CoherenceScore]:
    """Score each backbone on images with ground truth.

    pairs: (image, mask) items: paths, PIL images, (3, H, W) tensors / (H, W) class arrays
        (`read_pairs(folder)` gives them for a folder of name.jpg + name.png, `dataset_pairs`
        for a dataset the evaluation reads).
    num_pairs: cell pairs drawn within each image, and as many between each image and the one
        before it (cross-image pairs), with `numpy.random.default_rng([seed, image index])`, so
        backbones with the same feature grid see the same pairs.
    miou: also run the cut (the registered cut `method`, "diffcut" by default, or "kway", with
        alpha, tau and `method_options` such as {"k": 6}; alpha / tau None = each backbone's
        registry defaults, as `ovseg label`), upsample its segments to the mask by nearest cell,
        and score them by the evaluation's per-image Hungarian matching, counts summed over images,
        then mIoU. Each score's `cut` records the cut's settings (method, alpha, tau, k) and, when
        the cut reports one, the mean K chosen (k_chosen).
    num_classes, background: for the matching (background: the class that absorbs unmatched
        segments, as on VOC); num_classes None = the largest class id seen + 1.
    read_mask: reads a mask item into (H, W) int64 (e.g. a dataset's `read_label`).
    segment_fn, counts_fn: replace the cut (feats (1, C, h, w) -> (h, w) ids) and the per-image
        scoring (gt (H, W) with -1 = not scored, seg (H, W) -> (3, C) TP/FP/FN counts).
    """
    pairs = list(pairs)
    if not pairs:
        raise ValueError("no (image, mask) pairs to score")
    if num_pairs < 1:
        raise ValueError(f"num_pairs must be positive, got {num_pairs}")
    if miou and segment_fn is None:
        _default_segment(method, alpha, tau, dict(method_options or {}))  # a bad method fails before any model
    counts_fn = counts_fn or _default_counts(num_classes, background)
    results = []
    for label, backbone in iter_backbones(backbones, weights=weights, device=device, dtype=dtype):
        cut = segment_fn or _default_segment(method, alpha, tau, dict(method_options or {}), backbone)
        chosen = []  # what the cut reported per image (kway: K)
        sims, same, cross_sims, cross_same = [], [], [], []
        counts, previous = None, None
        for index, (image_spec, mask_spec) in enumerate(pairs):
            # as stored, no EXIF rotation: label maps carry none, so a rotated image would not line up
            image, mask = load_image(image_spec, exif_transpose=False), read_mask(mask_spec)
            if tuple(image.shape[-2:]) != mask.shape:
                raise ValueError(
                    f"pair {index} ({image_spec}): image is {tuple(image.shape[-2:])} but its mask "
                    f"is {mask.shape} (H, W)"
                )
            feats = extract(backbone, image, resolution=resolution, device=device)
            grid = tuple(feats.shape[-2:])
            labels = patch_labels(mask, grid, ignore_index)
            rng = np.random.default_rng([seed, index])
            s, p = pair_similarities(feats, labels, num_pairs, rng)
            sims.append(s)
            same.append(p)
            if previous is not None:
                s, p = pair_similarities(feats, labels, num_pairs, rng, other=previous)
                cross_sims.append(s)
                cross_same.append(p)
            previous = (feats, labels)
            if miou:
                segments = np.asarray(cut(feats[None])).reshape(grid)
                chosen.append(int(segments.max()) + 1)
                scored = mask if ignore_index is None else np.where(mask == ignore_index, -1, mask)
                # nearest cell by exact integer arithmetic (grid_cells = ovseg.io.resize_nearest
                # mode "floor", as for patch_labels); the evaluation's mode "torch" rounds the
                # scale to float32 as torch does, which moves a row on some sizes
                counts = _add(counts, counts_fn(scored, segments.ravel()[grid_cells(mask.shape, grid)]))
            if progress is not None:
                progress(f"{label}: image {index + 1}/{len(pairs)}")
        sims, same = np.concatenate(sims), np.concatenate(same)
        cross_auc = roc_auc(np.concatenate(cross_sims), np.concatenate(cross_same)) if cross_sims else float("nan")
        results.append(CoherenceScore(
            backbone=label,
            auc=roc_auc(sims, same),
            cross_auc=cross_auc,
            miou=mean_iou(counts) if miou else None,
            images=len(pairs),
            positive_pairs=int(same.sum()),
            negative_pairs=int((~same).sum()),
            mean_positive=float(sims[same].mean()) if same.any() else float("nan"),
            mean_negative=float(sims[~same].mean()) if (~same).any() else float("nan"),
            cut=_cut_record(cut, chosen) if miou else None,
        ))
    return results


def dataset_pairs(name: str, root: str, *, image_list: str | None = None
                  ) -> tuple[list[tuple[Any, Any]], dict[str, Any]]:
    """(image, label) pairs of a dataset the evaluation reads (`ovseg.evaluation.list_datasets()`),
    and the keyword arguments that score it by that dataset's rules (label reader, ignore label,
    class count, background class): `coherence_scores(pairs, backbones, **options)`."""
    from ovseg.evaluation import IGNORE, get_dataset

    spec = get_dataset(name)
    pairs = [(sample.image, sample.label) for sample in spec.samples(root, image_list)]
    options = {"read_mask": spec.read_label, "ignore_index": IGNORE,
               "num_classes": spec.num_classes, "background": spec.background}
    return pairs, options
