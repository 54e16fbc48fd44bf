"""ovseg.io, ovseg.io.viz, ovseg.io.cache on synthetic images and maps (no models)."""
import io as pyio
import json
import os

import numpy as np
import pytest
from PIL import Image

from ovseg.io import viz
from ovseg.io.cache import SegmentCache, cache_key
from ovseg.io import (
    ImageReadError, as_rgb_array, atomic_write, bbox_of, find_images, output_stems, read_image,
    resize_nearest, rle_decode, rle_encode,
)


def _rgb(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# -- run-length encoding ----------------------------------------------------------------------
def test_rle_matches_pycocotools_strings():
    # Reference strings from pycocotools 2.0.11 `mask.encode(np.asfortranarray(m))`.
    m = np.zeros((6, 7), bool)
    m[1:4, 2:6] = True
    m[5, 0] = True
    assert rle_encode(m) == {"size": [6, 7], "counts": "5172L000005"}
    big = np.zeros((300, 400), bool)
    big[10:250, 30:380] = True
    big[0, 0] = True
    counts = rle_encode(big)["counts"]
    assert counts.startswith("01ai8_7[XG000") and counts.endswith("0Vk5")
    assert (rle_decode(rle_encode(big)) == big).all()


@pytest.mark.parametrize("seed", range(20))
def test_rle_roundtrip_random(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(1, 30, 2)
    m = rng.random((h, w)) < rng.random()
    assert (rle_decode(rle_encode(m)) == m).all()


def test_rle_uncompressed_counts_and_edges():
    m = np.array([[1, 0], [1, 1]], bool)  # column-major: 1 1 0 1 -> runs 0,2,1,1
    assert (rle_decode({"size": [2, 2], "counts": [0, 2, 1, 1]}) == m).all()
    assert (rle_decode(rle_encode(np.ones((3, 4), bool))) == 1).all()
    assert (rle_decode(rle_encode(np.zeros((3, 4), bool))) == 0).all()
    with pytest.raises(ValueError):
        rle_decode({"size": [2, 2], "counts": [1, 1]})


def test_bbox_and_resize_nearest():
    m = np.zeros((10, 12), bool)
    m[2:5, 3:9] = True
    assert bbox_of(m) == [3, 2, 6, 3]
    assert bbox_of(np.zeros((3, 3), bool)) == [0, 0, 0, 0]
    lab = np.arange(6).reshape(2, 3)
    up = resize_nearest(lab, (4, 6))
    assert (up == np.kron(lab, np.ones((2, 2), int))).all()
    assert (resize_nearest(up, (2, 3)) == lab).all()


# -- atomic writes ------------------------------------------------------------------------------
def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.png"

    def boom(f):
        f.write(b"half a file")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        atomic_write(target, boom)
    assert list(tmp_path.iterdir()) == []  # neither the target nor a temporary file
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        atomic_write(target, boom)
    assert target.read_bytes() == b"old" and len(list(tmp_path.iterdir())) == 1
    atomic_write(target, lambda f: f.write(b"new"))
    assert target.read_bytes() == b"new"
    umask = os.umask(0o022)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600


# -- reading images -------------------------------------------------------------------------------
def _save(tmp_path, name, im, **kw):
    path = tmp_path / name
    im.save(path, **kw)
    return path


def test_bad_files_raise_clear_errors(tmp_path):
    good = _save(tmp_path, "good.jpg", Image.fromarray(_rgb(64, 64)), quality=90)
    data = good.read_bytes()
    cases = {
        "truncated.jpg": data[: len(data) // 2],
        "text.jpg": b"this is not an image\n",
        "empty.png": b"",
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ImageReadError, match=name):
            read_image(tmp_path / name)
    with pytest.raises(ImageReadError, match="empty file"):
        read_image(tmp_path / "empty.png")


@pytest.mark.parametrize("mode", ["L", "1", "P", "RGBA", "LA", "CMYK", "I;16", "I", "F"])
def test_modes_become_rgb(tmp_path, mode):
    base = Image.fromarray(_rgb(9, 11))
    if mode == "I;16":
        im = Image.fromarray((np.arange(99).reshape(9, 11) * 600).astype(np.uint16))
    elif mode in ("I", "F"):
        im = base.convert("L").convert(mode)
    else:
        im = base.convert(mode)
    ext = {"CMYK": "jpg", "F": "tiff", "I": "tiff"}.get(mode, "png")
    path = _save(tmp_path, f"img.{ext}", im)
    arr, src = read_image(path)
    assert arr.dtype == np.uint8 and arr.shape == (9, 11, 3) and src == (9, 11)
    if mode == "I;16":  # full 16-bit range scaled by 1/257
        assert arr[..., 0].max() == round(98 * 600 / 257)


def test_rgba_composited_on_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:2, :, 3] = 255  # top half opaque red-ish, bottom half transparent
    arr, _ = read_image(_save(tmp_path, "a.png", Image.fromarray(rgba, "RGBA")))
    assert (arr[:2] == [200, 0, 0]).all() and (arr[2:] == 255).all()


def test_exif_orientation_applied(tmp_path):
    im = Image.fromarray(_rgb(20, 40))  # 40 wide, 20 high
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    path = tmp_path / "rot.jpg"
    im.save(path, exif=exif)
    arr, src = read_image(path)
    assert arr.shape == (40, 20, 3) and src == (40, 20)


def test_huge_images_are_guarded(tmp_path):
    jpg = _save(tmp_path, "big.jpg", Image.fromarray(_rgb(400, 600)))
    arr, src = read_image(jpg, max_pixels=10_000)
    assert src == (400, 600) and arr.shape[0] * arr.shape[1] <= 10_000
    assert abs(arr.shape[1] / arr.shape[0] - 1.5) < 0.05  # aspect kept
    png = _save(tmp_path, "big.png", Image.fromarray(_rgb(400, 600)))
    arr, _ = read_image(png, max_pixels=100_000)  # decoded in full, then reduced
    assert arr.shape[0] * arr.shape[1] <= 100_000
    arr, _ = read_image(png, max_pixels=10_000)  # 24x: still scaled, not refused (issue 22)
    assert arr.shape[0] * arr.shape[1] <= 10_000
    with pytest.raises(ImageReadError, match="big.png.*decompression bomb"):
        read_image(png, max_pixels=10_000, max_decode_pixels=100_000)  # the bomb guard, separate


def test_tiny_image_and_array_inputs(tmp_path):
    arr, _ = read_image(_save(tmp_path, "t.png", Image.fromarray(_rgb(5, 7))))
    assert arr.shape == (5, 7, 3)
    assert as_rgb_array(np.zeros((5, 7), np.uint8)).shape == (5, 7, 3)
    assert as_rgb_array(np.ones((3, 2, 3), np.float32))[0, 0, 0] == 255
    assert as_rgb_array(Image.new("P", (3, 2))).shape == (2, 3, 3)
    import torch

    assert as_rgb_array(torch.ones(3, 4, 5)).shape == (4, 5, 3)
    with pytest.raises(ValueError):
        as_rgb_array(np.zeros((4, 5, 2), np.uint8))
    with pytest.raises(TypeError):
        as_rgb_array(42)


def test_find_images_and_stems(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ["b.JPG", "a.png", "sub/c.png", "notes.txt", "a.jpg", ".hidden.png"]:
        (tmp_path / name).write_bytes(b"x")
    found = find_images([tmp_path])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a.jpg", "a.png", "b.JPG", "sub/c.png"]
    assert output_stems(found, [tmp_path]) == ["a.jpg", "a.png", "b", "sub/c"]
    assert find_images([tmp_path / "notes.txt", tmp_path / "notes.txt"]) == [tmp_path / "notes.txt"]
    assert [p.name for p in find_images([tmp_path], exclude=[tmp_path / "sub"])] == ["a.jpg", "a.png", "b.JPG"]
    (tmp_path / "c.png").write_bytes(b"x")
    assert output_stems([tmp_path / "c.png", tmp_path / "sub" / "c.png"]) == ["c.png", "c.png-2"]


# -- pictures --------------------------------------------------------------------------------------
def test_palette_and_label_png():
    pal = viz.palette()
    assert pal.shape == (256, 3) and len({tuple(c) for c in pal}) == 256
    voc = viz.voc_colormap()
    assert tuple(voc[0]) == (0, 0, 0) and tuple(voc[1]) == (128, 0, 0) and tuple(voc[15]) == (192, 128, 128)
    assert (pal[:255] == voc[1:]).all() and tuple(pal[255]) == (255, 255, 255)
    lab = np.array([[0, 1], [2, 255]])
    im = viz.label_image(lab)
    buf = pyio.BytesIO()
    im.save(buf, format="PNG")
    back = Image.open(buf)
    assert back.mode == "P" and (np.asarray(back) == lab).all()
    assert viz.label_image(np.array([[0, 300]])).mode == "I;16"


def test_overlay_has_legend():
    img = _rgb(5, 7)
    lab = np.zeros((5, 7), int)
    lab[:, 4:] = 3
    out = viz.overlay(img, lab, {0: "cat", 3: "a very long class name"})
    assert out.mode == "RGB" and out.width > 7 and out.height >= 5
    assert not (np.asarray(out)[:, 7:] == 255).all()  # something drawn in the legend panel


# -- cache --------------------------------------------------------------------------------------------
def test_segment_cache(tmp_path):
    cache = SegmentCache(tmp_path)
    img = _rgb(8, 8)
    k1 = cache_key(img, {"tau": 0.5})
    assert k1 == cache_key(img.copy(), {"tau": 0.5})
    assert k1 != cache_key(img, {"tau": 0.4}) and k1 != cache_key(_rgb(8, 8, 1), {"tau": 0.5})
    assert cache.get(k1) is None
    seg = np.arange(64).reshape(8, 8) % 5
    cache.put(k1, seg)
    assert (cache.get(k1) == seg).all() and (cache.hits, cache.misses) == (1, 1)
    path = next(tmp_path.rglob("*.npz"))
    path.write_bytes(b"garbage")  # a damaged entry is a miss and is removed
    assert cache.get(k1) is None and not path.exists()
    json.dumps({"k": k1})


def test_arrays_follow_the_file_rules(tmp_path):
    sixteen = np.array([[[0, 257, 65535], [128, 32896, 65535]]], np.uint16)  # (1, 2, 3)
    out = as_rgb_array(sixteen)
    assert out.dtype == np.uint8 and out.tolist() == [[[0, 1, 255], [0, 128, 255]]]  # x/257, rounded
    Image.fromarray(np.array([[0, 257, 32896, 65535]], np.uint16)).save(tmp_path / "g16.png")
    from_file, _ = read_image(tmp_path / "g16.png")
    assert from_file[0, :, 0].tolist() == as_rgb_array(np.array([[0, 257, 32896, 65535]], np.uint16))[0, :, 0].tolist()
    for bad in (np.full((4, 4, 3), np.nan, np.float32), np.array([[[0.1, np.inf, 0.2]]])):
        with pytest.raises(ValueError, match="NaN or infinite"):
            as_rgb_array(bad)
    big = np.zeros((100, 200, 3), np.uint8)  # 20,000 pixels
    assert as_rgb_array(big, max_pixels=5000).shape == (50, 100, 3)  # RGB is size-guarded too
    assert as_rgb_array(np.zeros((100, 200, 4), np.uint8), max_pixels=5000).shape == (50, 100, 3)
    assert as_rgb_array(big, max_pixels=None).shape == (100, 200, 3)


def test_find_images_takes_a_string_and_skips_ovseg_outputs(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    for name in ("a.labels.png", "a.labels.overlay.png"):
        Image.new("P", (4, 4)).save(tmp_path / name)
    Image.new("RGB", (4, 4)).save(tmp_path / "b.segments.png")  # no b.segments.json: a user's file
    (tmp_path / "a.labels.json").write_text("{}")
    assert find_images(str(tmp_path)) == [tmp_path / "a.png", tmp_path / "b.segments.png"]
    assert find_images(tmp_path / "a.labels.png") == [tmp_path / "a.labels.png"]  # named directly: kept


def test_io_keeps_every_public_name_after_the_split():
    """ovseg.io re-exports the names of its job modules (issue 19 item 8): the same objects."""
    from ovseg.io import atomic as _atomic
    from ovseg.io import images as _images
    from ovseg.io import nearest as _nearest
    from ovseg.io import outputs as _outputs
    from ovseg import io as ovio

    homes = {_images: ["IMAGE_EXTENSIONS", "DEFAULT_MAX_PIXELS", "ImageReadError", "find_images", "read_image",
                       "open_image", "to_rgb", "as_rgb_array"],
             _outputs: ["OUTPUT_KINDS", "is_ovseg_output", "output_paths", "output_stems", "stale_outputs",
                        "remove_outputs", "rle_encode", "rle_decode", "bbox_of"],
             _atomic: ["atomic_write"], _nearest: ["NEAREST_MODES", "nearest_indices", "resize_nearest"]}
    for module, names in homes.items():
        for name in names:
            assert getattr(ovio, name) is getattr(module, name), name
    assert callable(ovio.iter_batches)


def test_atomic_folder_appears_whole_or_not_at_all(tmp_path):
    from ovseg.io import atomic_folder

    target = tmp_path / "data"

    def fill(folder, text):
        (folder / "a.txt").write_text(text)
        return text

    assert atomic_folder(target, lambda f: fill(f, "one")) == "one"
    assert (target / "a.txt").read_text() == "one"

    def broken(folder):
        fill(folder, "two")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_folder(target, broken)
    assert (target / "a.txt").read_text() == "one"  # the earlier folder, as it was
    atomic_folder(target, lambda f: fill(f, "three"))
    assert (target / "a.txt").read_text() == "three"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no temporary folder left
