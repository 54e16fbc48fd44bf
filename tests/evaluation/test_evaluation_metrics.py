"""Scoring rules of ovseg.evaluation against hand-computed values and brute force."""
import itertools
import math

import numpy as np
import pytest

from ovseg.evaluation import IGNORE, iou_per_class, mean_iou, open_vocabulary_counts, unsupervised_counts
from ovseg.evaluation._matching import UNMATCHED, hungarian, match_segments, overlap_matrix


def test_hand_computed_case():
    gt = np.array([[0, 0, 1, 1],
                   [0, 0, 1, 1],
                   [2, 2, 2, IGNORE]])
    seg = np.array([[5, 5, 5, 9],
                    [5, 5, 9, 9],
                    [9, 3, 3, 3]])
    # overlaps: class0-seg5 4; class1-seg5 1, class1-seg9 3; class2-seg9 1, class2-seg3 2
    # best: 0<-5 (4), 1<-9 (3), 2<-3 (2) ; the ignored pixel (seg 3) is dropped
    tp, fp, fn = unsupervised_counts(gt, seg, 3)
    assert tp.tolist() == [4, 3, 2]
    assert fp.tolist() == [1, 1, 0]  # seg5 has a class-1 pixel, seg9 a class-2 pixel
    assert fn.tolist() == [0, 1, 1]
    iou = iou_per_class(np.stack([tp, fp, fn]))
    np.testing.assert_allclose(iou, [4 / 5, 3 / 5, 2 / 3])
    assert mean_iou(np.stack([tp, fp, fn])) == pytest.approx((0.8 + 0.6 + 2 / 3) / 3)


def test_more_classes_than_segments_and_nan_classes():
    gt = np.array([0, 0, 1, 1, 2, 2])
    seg = np.zeros(6, dtype=np.int64)  # one segment for everything
    counts = unsupervised_counts(gt, seg, 5)
    assert counts[0].sum() == 2 and counts[1].sum() == 4 and counts[2].sum() == 4
    iou = iou_per_class(counts)
    assert math.isnan(iou[3]) and math.isnan(iou[4])  # never present, never predicted
    assert mean_iou(counts) == pytest.approx((2 / 6 + 0 + 0) / 3)
    assert math.isnan(mean_iou(np.zeros((3, 4))))


def _brute_force_max(overlap):
    g, k = overlap.shape
    best = 0
    if k >= g:
        for perm in itertools.permutations(range(k), g):
            best = max(best, sum(overlap[i, perm[i]] for i in range(g)))
    else:
        for perm in itertools.permutations(range(g), k):
            best = max(best, sum(overlap[perm[j], j] for j in range(k)))
    return best


@pytest.mark.parametrize("seed", range(40))
def test_hungarian_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    n_cls, n_seg = rng.integers(1, 6), rng.integers(1, 7)
    gt = rng.integers(0, n_cls, size=(6, 7))
    seg = rng.integers(0, n_seg, size=(6, 7)) * 3 + 11  # arbitrary segment ids
    _, _, overlap = overlap_matrix(gt.ravel(), seg.ravel())
    assert sum(overlap[r, c] for r, c in hungarian(overlap)) == _brute_force_max(overlap)
    counts = unsupervised_counts(gt, seg, 6)
    assert counts[0].sum() == _brute_force_max(overlap)
    # TP + FN = class areas; TP + FP = area of the matched segments
    np.testing.assert_array_equal(counts[0] + counts[2], np.bincount(gt.ravel(), minlength=6))
    published = unsupervised_counts(gt, seg, 6, matching="published")
    assert published[0].sum() == counts[0].sum()  # same optimum: only FP differ
    np.testing.assert_array_equal(published[0] + published[2], counts[0] + counts[2])
    pred = match_segments(gt.ravel(), seg.ravel())
    assert counts[1].sum() == (pred != UNMATCHED).sum() - counts[0].sum()


def test_background_merge_rule():
    # class 0 = background; segments 1, 2 cover background, 3 covers class 1, 4 half of class 2
    gt = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    seg = np.array([1, 1, 2, 2, 3, 3, 4, 4, 5, 5])
    tp, fp, fn = unsupervised_counts(gt, seg, 3, background=0)
    # step 1 matches 3 -> class 1 and one half of class 2; 1, 2 and the other half merge into
    # background, which is then matched to class 0: 4 TP, 2 FP (the half of class 2)
    assert tp.tolist() == [4, 2, 2] and fp.tolist() == [2, 0, 0] and fn.tolist() == [0, 0, 2]
    # without the merge rule, only one background segment matches and the rest are unmatched
    tp, fp, fn = unsupervised_counts(gt, seg, 3)
    assert tp.tolist() == [2, 2, 2] and fp.sum() == 0 and fn.tolist() == [2, 0, 2]


def test_background_absent_from_image():
    gt = np.array([1, 1, 1, 2, 2, 2])
    seg = np.array([0, 0, 1, 1, 2, 2])
    tp, fp, fn = unsupervised_counts(gt, seg, 3, background=0)
    # step 1: 0 -> class 1 (2 px), 2 -> class 2 (2 px); segment 1 is the background segment; with
    # no background pixel it is matched to no class: FN of classes 1 and 2, FP of nobody
    assert tp.tolist() == [0, 2, 2] and fp.sum() == 0 and fn.tolist() == [0, 1, 1]


def test_open_vocabulary_counts_and_ignore():
    gt = np.array([[0, 0, 1], [2, IGNORE, 1]])
    pred = np.array([[0, 1, 1], [-1, 0, 7]])  # -1 and 7: no class; the ignored pixel is not scored
    tp, fp, fn = open_vocabulary_counts(gt, pred, 3)
    assert tp.tolist() == [1, 1, 0] and fp.tolist() == [0, 1, 0] and fn.tolist() == [1, 1, 1]


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        unsupervised_counts(np.zeros((4, 4), int), np.zeros((4, 5), int), 2)
    with pytest.raises(ValueError, match=r"\(3, C\)"):
        iou_per_class(np.zeros((2, 3)))


def test_published_rule_charges_leftover_segments_to_absent_classes():
    gt = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    seg = np.array([0, 0, 0, 0, 1, 1, 2, 2])  # class 1 split in two
    present = unsupervised_counts(gt, seg, 4)
    assert present.tolist() == [[4, 2, 0, 0], [0, 0, 0, 0], [0, 2, 0, 0]]
    published = unsupervised_counts(gt, seg, 4, matching="published")
    assert published[0].tolist() == [4, 2, 0, 0] and published[2].tolist() == [0, 2, 0, 0]
    assert published[1, :2].tolist() == [0, 0] and published[1, 2:].sum() == 2  # FP of class 2 or 3
    assert mean_iou(published) == pytest.approx((1 + 0.5 + 0) / 3)
    # background datasets: background row last in the published order, counts back in ours
    bg = unsupervised_counts(gt, seg, 4, background=0, matching="published")
    assert bg[0].tolist() == [4, 2, 0, 0] and bg[1].tolist() == [2, 0, 0, 0] and bg[2].tolist() == [0, 2, 0, 0]
    with pytest.raises(ValueError, match="matching"):
        unsupervised_counts(gt, seg, 4, matching="greedy")


@pytest.mark.parametrize("matching", ["present", "published"])
@pytest.mark.parametrize("background", [None, 0])
def test_fully_ignored_image_counts_nothing(matching, background):
    gt = np.full((4, 4), IGNORE)
    seg = np.arange(16).reshape(4, 4) - 3  # negative ids are ids like any other
    counts = unsupervised_counts(gt, seg, 3, background=background, matching=matching)
    assert counts.shape == (3, 3) and counts.sum() == 0
    gt[0, 0] = 2
    counts = unsupervised_counts(gt, seg, 3, background=background, matching=matching)
    assert counts[0].tolist() == [0, 0, 1] and counts[2].sum() == 0


def test_merged_background_segment_can_win_a_foreground_class():
    """docs/evaluation.md step 4(c): the final matching runs over all present classes, so the merged
    segment takes a foreground class when it outweighs that class's step-(a) segment."""
    from ovseg.evaluation._matching import match_segments

    # background absent; class 1 cut into three equal pieces (0, 1, 2), class 2 is segment 3
    gt = np.array([1] * 9 + [2] * 3)
    seg = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    assert match_segments(gt, seg, background=0).tolist() == [-1] * 3 + [1] * 6 + [2] * 3
    # background present (segment 4): the merged segment (4 + two pieces) still takes class 1
    gt = np.array([0] * 3 + [1] * 9 + [2] * 3)
    seg = np.array([4] * 3 + [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    assert match_segments(gt, seg, background=0).tolist() == [1] * 3 + [-1] * 3 + [1] * 6 + [2] * 3
    # the usual case: a spare piece of an object joins the background
    gt = np.array([0] * 6 + [1] * 6)
    seg = np.array([5] * 6 + [0] * 4 + [1] * 2)
    assert match_segments(gt, seg, background=0).tolist() == [0] * 6 + [1] * 4 + [0] * 2
