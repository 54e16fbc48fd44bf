"""Output files for any vocabulary size and script: label PNG format, colours, legend fonts."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from PIL import Image, ImageDraw

from ovseg.io import viz
from ovseg.pipeline._results import Segment, SegmentationResult


def _result(num_classes: int, class_of_segment: list[int | None]) -> SegmentationResult:
    k = len(class_of_segment)
    seg_map = np.repeat(np.arange(k, dtype=np.int32), 3)[None, :].repeat(2, 0)  # (2, 3k)
    classes = [f"class {i}" for i in range(num_classes)]
    segments = [Segment(id=i, area=6, bbox=[3 * i, 0, 3, 2], segment_map=seg_map,
                        class_index=c, class_name=None if c is None else classes[c])
                for i, c in enumerate(class_of_segment)]
    image = np.full(seg_map.shape + (3,), 128, np.uint8)
    return SegmentationResult(image=image, segment_map=seg_map, segments=segments, classes=classes)


@pytest.mark.parametrize("num_classes", [256, 600, 65535])
def test_label_png_beyond_255_classes_round_trips(tmp_path, num_classes):
    present = [0, 254, 255, 511 % num_classes, num_classes - 1, None]
    r = _result(num_classes, present)
    assert r.no_class_value == 65535
    r.save_png(tmp_path / "l.png")
    r.save_json(tmp_path / "l.json", label_png="l.png")
    back = np.asarray(Image.open(tmp_path / "l.png")).astype(np.int64)
    ids = back[0, ::3].tolist()
    assert ids == [0, 254, 255, 511 % num_classes, num_classes - 1, 65535]
    assert 255 in ids[:-1] and ids[-1] not in ids[:-1]  # class 255 is not "no class"
    meta = json.loads((tmp_path / "l.json").read_text())["label_map"]
    assert meta["no_class_value"] == 65535 and meta["format"] == "16-bit greyscale PNG"


def test_label_png_up_to_255_classes_is_palette(tmp_path):
    r = _result(255, [0, 254, None])
    r.save_png(tmp_path / "l.png")
    im = Image.open(tmp_path / "l.png")
    assert im.mode == "P" and np.asarray(im)[0, ::3].tolist() == [0, 254, 255]
    meta = r.to_json()["label_map"]
    assert meta["no_class_value"] == 255 and meta["format"] == "8-bit palette PNG"
    # the format follows the vocabulary size, not the values present
    assert Image.open(_save(_result(300, [0, 1]), tmp_path)).mode.startswith("I")


def _save(r, tmp_path):
    path = tmp_path / "x.png"
    r.save_png(path)
    return path


def test_many_segments_use_16_bit(tmp_path):
    r = _result(0, [None] * 300)
    r.classes = None
    r.save_png(tmp_path / "s.png")
    assert (np.asarray(Image.open(tmp_path / "s.png"))[0, ::3] == np.arange(300)).all()


def test_colours_distinct_and_never_no_class():
    values = np.arange(65535)
    c = viz.colours(values, no_class=65535)
    packed = (c[:, 0].astype(np.int64) << 16) | (c[:, 1].astype(np.int64) << 8) | c[:, 2]
    assert np.unique(packed).size == 65535  # every class its own colour
    white = viz.colours(np.array([65535]), no_class=65535)[0]
    assert tuple(white) == (255, 255, 255) and not (c == white).all(1).any()
    assert tuple(c[511]) != tuple(white) and tuple(c[255]) != tuple(white)
    assert (viz.colours(np.arange(256)) == viz.palette()).all()  # same as the 8-bit palette


def test_overlay_draws_class_511_in_colour():
    r = _result(600, [511, None])
    over = np.asarray(viz.overlay(r.image, r.label_map, r.legend(), no_class=r.no_class_value,
                                  alpha=1.0))
    assert tuple(over[1, 1]) != (255, 255, 255)  # class 511 (interior pixel) is coloured
    assert tuple(over[1, 4]) == (255, 255, 255)  # no class is white


def _ink(text: str, font) -> int:
    im = Image.new("L", (200, 60), 0)
    ImageDraw.Draw(im).text((5, 5), text, fill=255, font=font)
    return int((np.asarray(im) > 0).sum())


def test_cjk_class_name_renders_with_a_covering_font():
    text, font = viz.legend_text(0, "狗草地", 24)
    if text != "狗草地":
        pytest.skip("no font with CJK glyphs on this machine (install fonts-noto-cjk or set "
                    "OVSEG_FONT to a CJK font file)")
    missing = "\U0010fffd" * 3
    assert _ink(text, font) > 0 and viz._bitmap(font, text) != viz._bitmap(font, missing)


def test_uncovered_name_falls_back_visibly_and_warns(monkeypatch):
    monkeypatch.setattr(viz, "font_files", lambda: ())  # Pillow's built-in font only
    viz._fonts.cache_clear()
    monkeypatch.setattr(viz, "_warned", set())
    try:
        with pytest.warns(RuntimeWarning, match="no font draws the class name"):
            text, font = viz.legend_text(7, "狗", 20)
        assert text == "#7 ?" and _ink(text, font) > 0
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert viz.legend_text(8, "猫", 20)[0] == "#8 ?"  # warned once only
        assert viz.legend_text(1, "cat", 20)[0] == "cat"
    finally:
        viz._fonts.cache_clear()


def test_legend_with_cjk_names_draws_text():
    img = np.full((40, 40, 3), 100, np.uint8)
    lab = np.zeros((40, 40), int)
    lab[:, 20:] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = np.asarray(viz.overlay(img, lab, {0: "狗", 1: "草地"}))
    panel = out[:, 40:]
    assert (panel < 128).all(2).sum() > 50  # dark pixels: swatch outlines and text


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools on numpy 2
def test_rle_of_a_whole_map_at_once_scaled_up_or_not():
    """`rle_encode_map` (one pass, scaled by the nearest-exact rule without building the larger
    map) equals `rle_encode` of each region of the resized map, and pycocotools' own encoder;
    area and box too. `rle_decode_map` puts the masks back into one map (issue 31, the export)."""
    from scipy import ndimage

    from ovseg.io import bbox_of, resize_nearest, rle_decode_map, rle_encode, rle_encode_map
    from ovseg.io.outputs import _unpack, _unpack_array

    mask_api = pytest.importorskip("pycocotools.mask", reason='needs pip install -e ".[test]"')
    rng = np.random.default_rng(1)
    for t in range(120):
        h, w = (int(v) for v in rng.integers(1, 20, 2))
        seg = rng.integers(0, int(rng.integers(1, 7)), (h, w))
        if t % 2:
            seg = ndimage.median_filter(seg, 3)
        size = (h, w) if t % 3 == 0 else (h + int(rng.integers(0, 30)), w + int(rng.integers(0, 30)))
        big = resize_nearest(seg, size)
        out = rle_encode_map(seg, size)
        assert sorted(out) == np.unique(seg).tolist()
        for value, (rle, area, box) in out.items():
            m = big == value
            assert rle == rle_encode(m) and area == m.sum() and box == bbox_of(m)
            assert mask_api.encode(np.asfortranarray(m.astype(np.uint8)))["counts"].decode() == rle["counts"]
            assert _unpack_array(rle["counts"]).tolist() == _unpack(rle["counts"])
        assert (rle_decode_map({v: r for v, (r, _, _) in out.items()}, size) == big).all()
    holes = rle_decode_map({3: rle_encode(np.eye(4, dtype=bool))}, (4, 4))
    assert (holes == np.where(np.eye(4, dtype=bool), 3, -1)).all()  # no mask: -1
    with pytest.raises(ValueError, match="overlap"):
        rle_decode_map({0: rle_encode(np.ones((2, 2), bool)), 1: rle_encode(np.eye(2, dtype=bool))}, (2, 2))
    with pytest.raises(ValueError, match="smaller"):
        rle_encode_map(np.zeros((4, 4), int), (3, 4))
