"""Reading images (ovseg/io/images.py): every format is scaled to max_pixels, the decompression
bomb guard is apart from it, read-only arrays give no torch warning, and the evaluation reads
images as the pipeline does (one reader)."""
import numpy as np
import pytest
import torch
from PIL import Image

from ovseg.testing import quadrants


@pytest.mark.parametrize("ext", ["png", "tiff", "webp", "bmp", "gif"])
def test_every_format_is_scaled_to_max_pixels(tmp_path, ext):
    from ovseg.io import read_image

    path = tmp_path / f"big.{ext}"
    Image.fromarray(quadrants(300, 400)).save(path)
    arr, src = read_image(path, max_pixels=5_000)  # 24x fewer pixels than the file
    assert src == (300, 400) and 4_000 < arr.shape[0] * arr.shape[1] <= 5_000


def test_decompression_bomb_guard_is_separate_from_max_pixels(tmp_path, monkeypatch):
    from ovseg.io import ImageReadError, read_image

    Image.fromarray(quadrants(100, 100)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 4_000)  # the guard: 2x this, 8000 < 10000 px
    with pytest.raises(ImageReadError, match="bomb.png.*decompression bomb"):
        read_image(tmp_path / "bomb.png", max_pixels=10**6)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 6_000)  # 12000 > 10000: decoded, then scaled
    arr, _ = read_image(tmp_path / "bomb.png", max_pixels=1_000)
    assert arr.shape[0] * arr.shape[1] <= 1_000
    with pytest.raises(ImageReadError, match="decompression bomb"):
        read_image(tmp_path / "bomb.png", max_pixels=1_000, max_decode_pixels=9_999)


def test_read_only_arrays_give_no_torch_warning():
    import warnings

    import torch

    from ovseg.io import as_rgb_array

    from ovseg.coherence import load_image

    frozen = np.asarray(Image.fromarray(quadrants()))  # what np.asarray(PIL image) gives: read-only
    assert not frozen.flags.writeable
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        torch.from_numpy(as_rgb_array(frozen))
        load_image(frozen)


def test_evaluation_reads_images_like_the_pipeline(tmp_path):
    """Transparent pixels on white (ovseg.io.to_rgb), not black; EXIF orientation not applied
    (benchmark labels are stored unrotated)."""
    from ovseg.evaluation import get_dataset
    from ovseg.evaluation._datasets import Sample
    from ovseg.evaluation._runner import prepare

    rgba = np.zeros((6, 8, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, 4:, 3] = 255  # left half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90": a reader applying it would swap the axes
    Image.fromarray(rgba[..., :3].copy()).save(tmp_path / "b.jpg", exif=exif, quality=95)
    Image.fromarray(np.zeros((6, 8), np.uint8), "L").save(tmp_path / "a_label.png")
    spec = get_dataset("voc")
    image, _ = prepare(spec, Sample("a", tmp_path / "a.png", tmp_path / "a_label.png"),
                       "open-vocabulary", 8, 8)
    assert torch.allclose(image[:, 0, 0], torch.ones(3))  # transparent -> white
    assert image[0, 0, 7] == pytest.approx(200 / 255)
    image, _ = prepare(spec, Sample("b", tmp_path / "b.jpg", tmp_path / "a_label.png"),
                       "open-vocabulary", 8, 8)
    assert tuple(image.shape[1:]) == (6, 8)
