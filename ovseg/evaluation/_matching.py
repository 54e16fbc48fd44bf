"""Per-image scoring: Hungarian matching of class-agnostic segments to ground-truth classes.

Both protocols end the same way: every scored pixel gets a predicted class (or none, -1) and
`counts_from_class_map` turns that into per-class TP/FP/FN. The unsupervised protocol first has to
decide which class each predicted segment stands for; that is `match_segments`. The rules (and
where they are our reading of the published protocol) are written out in docs/evaluation.md.
"""
from __future__ import annotations

import numpy as np

from ovseg.evaluation._datasets import IGNORE

UNMATCHED = -1  # predicted class of pixels in a segment matched to no class


def overlap_matrix(gt: np.ndarray, seg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel overlap of every present class with every predicted segment.

    gt, seg: (N,) int64 over the scored pixels. Returns (classes (G,), segments (K,),
    overlap (G, K) int64) where overlap[g, k] = #pixels of class classes[g] in segment segments[k].
    """
    classes, g = np.unique(gt, return_inverse=True)
    segments, s = np.unique(seg, return_inverse=True)
    overlap = np.bincount(g * len(segments) + s, minlength=len(classes) * len(segments))
    return classes, segments, overlap.reshape(len(classes), len(segments))


def hungarian(overlap: np.ndarray) -> list[tuple[int, int]]:
    """One-to-one (row, column) pairs that maximise the total overlap.

    Pairs with zero overlap are dropped: a segment that shares no pixel with a class is not its
    match (keeping it would charge the segment as FP to a class chosen by solver tie-breaking).
    """
    from scipy.optimize import linear_sum_assignment

    if overlap.size == 0:
        return []
    rows, cols = linear_sum_assignment(overlap, maximize=True)  # Kuhn-Munkres, maximise overlap
    return [(int(r), int(c)) for r, c in zip(rows, cols) if overlap[r, c] > 0]


def match_segments(gt: np.ndarray, seg: np.ndarray, *, background: int | None = None) -> np.ndarray:
    """Predicted class per scored pixel, by per-image Hungarian matching.

    gt (N,) int64 classes of the scored pixels (no IGNORE left); seg (N,) int64 segment ids.
    Returns (N,) int64: the class of the pixel's matched segment, or UNMATCHED.

    Without `background`: segments and the classes present in the image are matched one-to-one,
    maximising the total overlap. With `background` (VOC, Context, COCO-Object), three steps:
    1. match segments to the present *foreground* classes only;
    2. merge every segment not matched in step 1 into one background segment;
    3. match the resulting segments (step-1 matches + merged one) to all present classes.
    """
    if gt.shape != seg.shape or gt.ndim != 1:
        raise ValueError(f"gt and seg must be flat arrays of one shape, got {gt.shape} and {seg.shape}")
    seg = seg.astype(np.int64)
    if background is not None:
        classes, segments, overlap = overlap_matrix(gt, seg)
        fg = np.flatnonzero(classes != background)
        matched = {segments[c] for _, c in hungarian(overlap[fg])}  # step 1
        merged = np.int64(segments.max() + 1 if len(segments) else 0)
        seg = np.where(np.isin(seg, list(matched)), seg, merged)  # step 2: one background segment
    classes, segments, overlap = overlap_matrix(gt, seg)  # step 3 (or the only step)
    lookup = {segments[c]: classes[r] for r, c in hungarian(overlap)}
    out = np.full(seg.shape, UNMATCHED, dtype=np.int64)
    for segment, cls in lookup.items():
        out[seg == segment] = cls
    return out


def counts_from_class_map(gt: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Per-class TP, FP, FN for one image.

    gt (N,) int64 in 0..C-1; pred (N,) int64 in 0..C-1 or negative (no class).
    Returns (3, C) int64: rows TP, FP, FN. A pixel predicted as no class is a FN of its class
    and a FP of no class.
    """
    hit = pred == gt
    tp = np.bincount(gt[hit], minlength=num_classes)
    fp = np.bincount(pred[~hit & (pred >= 0)], minlength=num_classes)
    fn = np.bincount(gt[~hit], minlength=num_classes)
    return np.stack([tp, fp, fn])[:, :num_classes].astype(np.int64)


def _scored(gt: np.ndarray, pred: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    if gt.shape != pred.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from label shape {gt.shape}")
    gt, pred = gt.reshape(-1).astype(np.int64), pred.reshape(-1).astype(np.int64)
    keep = (gt != IGNORE) & (gt >= 0) & (gt < num_classes)
    return gt[keep], pred[keep]


MATCHINGS = ("present", "published")


def unsupervised_counts(gt: np.ndarray, seg: np.ndarray, num_classes: int, *,
                        background: int | None = None, matching: str = "present") -> np.ndarray:
    """(3, C) TP/FP/FN of a class-agnostic segment map seg (h, w) against classes gt (h, w).

    Pixels whose label is IGNORE are removed before matching, from both maps.
    matching: "present" (ovseg's rule, `match_segments`) or "published" (`published_counts`).
    """
    if matching not in MATCHINGS:
        raise ValueError(f"unknown matching {matching!r}; choose one of {', '.join(MATCHINGS)}")
    g, s = _scored(gt, seg, num_classes)
    if matching == "published":
        return published_counts(g, s, num_classes, background=background)
    return counts_from_class_map(g, match_segments(g, s, background=background), num_classes)


def _histogram(gt: np.ndarray, seg: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, max(C, K)) overlap of every class (present or not) with segment ids 0..K-1."""
    width = max(num_classes, int(seg.max()) + 1 if seg.size else 0)
    return np.bincount(gt * width + seg, minlength=num_classes * width).reshape(num_classes, width)


def published_counts(gt: np.ndarray, seg: np.ndarray, num_classes: int, *,
                     background: int | None = None) -> np.ndarray:
    """(3, C) TP/FP/FN by the rule of the published DiffCut evaluation, for comparison only.

    gt, seg (N,) over the scored pixels. The matching there runs over *all* C classes, present or
    not, on a square-or-wider overlap matrix: every segment beyond the present classes is matched
    to some absent class (which one is the solver's tie-break) and all its pixels become FP of that
    class. Background datasets: step 1 matches foreground classes (background rows left out); a
    segment counts as kept if its class overlaps any matched segment; all others are merged; the
    background row is last in the final matching. Segment ids are first renumbered 0..K-1 in
    increasing order, so which absent class absorbs a leftover segment may differ from the
    published run; the totals of TP and FN do not.
    """
    from scipy.optimize import linear_sum_assignment

    seg = np.unique(seg, return_inverse=True)[1].reshape(-1).astype(np.int64)
    rank = np.arange(num_classes)
    if background is not None:
        order = [c for c in range(num_classes) if c != background] + [background]
        rank[order] = np.arange(num_classes)  # background becomes the last row, as published
        gt = rank[gt]
        fg = gt != num_classes - 1
        hist = _histogram(gt[fg], seg[fg], num_classes - 1)
        _, cols = linear_sum_assignment(hist, maximize=True)
        kept = {int(cols[i]) for i in range(len(cols)) if hist[i, cols].max() > 0}
        seg = np.where(np.isin(seg, list(kept)), seg, seg.max() + 1 if seg.size else 0)
    hist = _histogram(gt, seg, num_classes)
    rows, cols = linear_sum_assignment(hist, maximize=True)
    tp = hist[rows, cols]
    fn = hist.sum(1)[rows] - tp
    fp = hist[:, cols].sum(0) - tp
    counts = np.zeros((3, num_classes), dtype=np.int64)
    counts[:, rows] = np.stack([tp, fp, fn])
    return counts[:, rank]


def open_vocabulary_counts(gt: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(3, C) TP/FP/FN of a class map pred (h, w) (values outside 0..C-1 = no class) against gt."""
    g, p = _scored(gt, pred, num_classes)
    p = np.where((p >= 0) & (p < num_classes), p, UNMATCHED)
    return counts_from_class_map(g, p, num_classes)
