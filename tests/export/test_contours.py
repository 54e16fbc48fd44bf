"""Polygons of masks (ovseg.export._contours): known answers, and random masks and label maps
rasterised back (pixel centres, even-odd; and pycocotools' polygon rasteriser) equal to them."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ovseg.export import label_polygons, mask_polygons, polygon_area


def rasterise(polygons, h, w) -> np.ndarray:
    """Pixels whose centre (c + 0.5, r + 0.5) lies inside, even-odd rule, each polygon on its own
    (a test-side rasteriser: crossings of a ray to the left by the vertical edges)."""
    yc, xc = np.mgrid[0:h, 0:w] + 0.5
    out = np.zeros((h, w), dtype=bool)
    for p in polygons:
        inside = np.zeros((h, w), dtype=bool)
        x0, y0 = p[:, 0], p[:, 1]
        for a, b, c, d in zip(x0, y0, np.roll(x0, -1), np.roll(y0, -1)):
            if a == c:
                inside ^= (yc > min(b, d)) & (yc < max(b, d)) & (xc < a)
            else:
                assert b == d, "every edge is horizontal or vertical"
        out |= inside
    return out


def test_a_square_is_its_four_corners_clockwise():
    m = np.zeros((4, 5), dtype=bool)
    m[1:3, 1:3] = True
    (poly,) = mask_polygons(m)
    assert poly.tolist() == [[1, 1], [3, 1], [3, 3], [1, 3]]
    assert polygon_area(poly) == 4.0  # clockwise on screen (y down): positive


def test_full_and_empty_masks():
    assert mask_polygons(np.zeros((3, 3), bool)) == []
    (poly,) = mask_polygons(np.ones((2, 3), bool))
    assert poly.tolist() == [[0, 0], [3, 0], [3, 2], [0, 2]]


def test_diagonal_pixels_are_two_parts():
    m = np.array([[1, 0], [0, 1]], dtype=bool)
    polys = mask_polygons(m)
    assert [p.tolist() for p in polys] == [[[0, 0], [1, 0], [1, 1], [0, 1]], [[1, 1], [2, 1], [2, 2], [1, 2]]]


def test_a_hole_is_bridged_into_one_polygon():
    m = np.ones((5, 5), dtype=bool)
    m[2, 2] = False  # a one-pixel hole
    (poly,) = mask_polygons(m)
    assert polygon_area(poly) == 24.0  # 25 pixels less the hole: no pixel lost, none added
    assert (rasterise([poly], 5, 5) == m).all()
    # the bridge: from the hole's top-left corner (2, 2) straight up to the outline at (2, 0)
    assert [2, 0] in poly.tolist() and [2, 2] in poly.tolist()


def test_nested_parts_and_holes():
    m = np.zeros((9, 9), dtype=bool)
    m[0:9, 0:9] = True
    m[2:7, 2:7] = False  # a big hole ...
    m[4, 4] = True  # ... with an island in it: two parts
    polys = mask_polygons(m)
    assert len(polys) == 2
    assert [polygon_area(p) for p in polys] == [81 - 25, 1]
    assert (rasterise(polys, 9, 9) == m).all()


@pytest.mark.parametrize("seed", range(4))
def test_random_masks_rasterise_back_exactly(seed):
    rng = np.random.default_rng(seed)
    for _ in range(60):
        h, w = (int(v) for v in rng.integers(1, 28, 2))
        m = rng.random((h, w)) < rng.random()
        polys = mask_polygons(m)
        assert (rasterise(polys, h, w) == m).all()
        assert len(polys) == ndimage.label(m)[1]  # one polygon per 4-connected part
        assert all(polygon_area(p) > 0 for p in polys)
        assert sum(polygon_area(p) for p in polys) == m.sum()


def test_label_maps_trace_every_region_at_once():
    rng = np.random.default_rng(7)
    for _ in range(40):
        h, w = (int(v) for v in rng.integers(1, 30, 2))
        labels = ndimage.median_filter(rng.integers(0, 5, (h, w)), 3)
        traced = label_polygons(labels)
        assert sorted(traced) == np.unique(labels).tolist()
        for value, polys in traced.items():
            mask = labels == value
            assert (rasterise(polys, h, w) == mask).all()
            assert [p.tolist() for p in polys] == [p.tolist() for p in mask_polygons(mask)]
    assert sorted(label_polygons(labels, ids=[1, 3, 99])) == sorted({1, 3} & set(np.unique(labels).tolist()))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools on numpy 2
def test_pycocotools_rasterises_the_polygons_to_the_same_masks():
    """A real consumer's polygon rasteriser (COCO's) gives each mask back exactly, holes and
    parts included: the corner convention is COCO's."""
    mask_api = pytest.importorskip("pycocotools.mask", reason='needs pip install -e ".[test]"')
    rng = np.random.default_rng(3)
    for _ in range(30):
        h, w = (int(v) for v in rng.integers(4, 40, 2))
        labels = ndimage.median_filter(rng.integers(0, 4, (h, w)), 3)
        for value, polys in label_polygons(labels).items():
            rles = mask_api.frPyObjects([p.reshape(-1).astype(float).tolist() for p in polys], h, w)
            got = mask_api.decode(mask_api.merge(rles)).astype(bool)
            assert (got == (labels == value)).all()
