"""Reading images: files, Pillow images, arrays and tensors as (H, W, 3) uint8 RGB.

The reading policy (EXIF orientation, modes, transparency on white, 16/32-bit depth, the size
guard, decompression bombs, errors naming the file) is written once, in `ovseg.io`'s docstring;
`ovseg.io` re-exports the public names.
"""
from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from PIL import Image, ImageOps

from ovseg.io.outputs import is_ovseg_output
from ovseg.settings import defaults as _defaults

IMAGE_EXTENSIONS = (
    ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm",
)
DEFAULT_MAX_PIXELS = _defaults.MAX_PIXELS


class ImageReadError(ValueError):
    """An input file is not a readable image (truncated, empty, not an image, too large)."""


def find_images(inputs: str | os.PathLike | Iterable[str | os.PathLike],
                exclude: Iterable[str | os.PathLike] = ()) -> list[Path]:
    """Files named directly, plus the image files under each folder (recursive, sorted by path).

    inputs: a file or folder, or several (a single str/path is one input, not its characters).
    Files named directly are kept whatever their extension (the reader decides); inside folders
    only files with an extension in `IMAGE_EXTENSIONS` (any case) are taken, leaving out hidden
    files, ovseg's own outputs (`is_ovseg_output`: so an output folder inside, or equal to, an
    input folder is safe) and anything under an `exclude` folder. Duplicates are dropped.
    """
    skip = [Path(e).resolve() for e in exclude]
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]

    def wanted(p: Path) -> bool:
        if not p.is_file() or p.suffix.lower() not in IMAGE_EXTENSIONS or p.name.startswith("."):
            return False
        return not is_ovseg_output(p) and not any(p.resolve().is_relative_to(e) for e in skip)

    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if wanted(p))
        else:
            found.append(path)
    seen: set[Path] = set()
    return [p for p in found if not (p.resolve() in seen or seen.add(p.resolve()))]


def read_image(
    path: str | os.PathLike,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_decode_pixels: int | None = None,
) -> tuple[np.ndarray, tuple[int, int]]:
    """Read an image file as RGB.

    max_pixels: larger images are scaled down to fit (any format; see the module docstring).
    max_decode_pixels: refuse files above this many pixels as possible decompression bombs; None:
        Pillow's own guard only (2 * `PIL.Image.MAX_IMAGE_PIXELS`).
    Returns (image (H, W, 3) uint8, source_size (H0, W0)): the image after EXIF orientation and
    the size guard, and the oriented size of the file before any reduction.
    Raises ImageReadError naming the file when it cannot be read.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            # Pillow warns from 1x its MAX_IMAGE_PIXELS and refuses (DecompressionBombError) from
            # 2x: the refusal is the bomb guard; the warning would only repeat it for files we read.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:  # reads the header only
                w0, h0 = im.size
                if w0 * h0 == 0:
                    raise ImageReadError(f"{path}: image has no pixels ({w0}x{h0}).")
                if max_decode_pixels is not None and w0 * h0 > max_decode_pixels:
                    raise ImageReadError(
                        f"{path}: refused as a possible decompression bomb: {w0}x{h0} pixels is more "
                        f"than max_decode_pixels ({max_decode_pixels})."
                    )
                if w0 * h0 > max_pixels and im.format == "JPEG":
                    scale = (max_pixels / (w0 * h0)) ** 0.5  # decode at 1/2, 1/4 or 1/8 scale
                    im.draft("RGB", (max(1, int(w0 * scale)), max(1, int(h0 * scale))))
                oriented = _orientation_swaps_axes(im)
                rgb = to_rgb(im, max_pixels=max_pixels)
    except ImageReadError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise _read_error(path, err) from err
    return rgb, ((w0, h0) if oriented else (h0, w0))


def _read_error(path: Path, err: Exception) -> ImageReadError:
    """The one line a file that Pillow cannot read gets, naming the file and why."""
    if isinstance(err, Image.DecompressionBombError):
        return ImageReadError(f"{path}: refused as a possible decompression bomb: {err}")
    reason = "not an image file" if isinstance(err, Image.UnidentifiedImageError) else err
    if isinstance(err, FileNotFoundError):
        reason = "no such file"
    elif path.is_file() and path.stat().st_size == 0:
        reason = "empty file"
    return ImageReadError(f"{path}: cannot read image: {reason}")


@contextlib.contextmanager
def open_image(path: str | os.PathLike) -> Iterator[Image.Image]:
    """`Image.open(path)` with its pixels loaded, for readers that need the file as stored (the
    evaluation, coherence): a file that cannot be read (not an image, empty, truncated, a possible
    decompression bomb) raises ImageReadError naming it, as `read_image` does. Closed on exit."""
    path = Path(path)
    try:
        with warnings.catch_warnings():  # Pillow's refusal at 2x is the guard (module docstring)
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise _read_error(path, err) from err
    try:
        try:
            im.load()
        except (OSError, SyntaxError, ValueError) as err:
            raise _read_error(path, err) from err
        yield im
    finally:
        im.close()


def _orientation_swaps_axes(im: Image.Image) -> bool:
    with contextlib.suppress(Exception):
        return im.getexif().get(0x0112, 1) in (5, 6, 7, 8)  # 0x0112 = EXIF Orientation
    return False


def to_rgb(im: Image.Image, *, max_pixels: int | None = DEFAULT_MAX_PIXELS,
           exif_transpose: bool = True) -> np.ndarray:
    """A Pillow image as (H, W, 3) uint8 RGB, with the policy in this module's docstring.

    exif_transpose: turn it upright by its EXIF orientation tag (as viewers show it); False keeps
    the pixels as stored, which is how label maps of a dataset line up with them.
    """
    if exif_transpose:
        im = ImageOps.exif_transpose(im)  # also loads the pixels: truncated files fail here
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba).convert("RGB")
    elif im.mode.startswith("I") or im.mode == "F":
        im = _high_depth_to_l(im)
    if im.mode != "RGB":
        im = im.convert("RGB")
    if max_pixels and im.width * im.height > max_pixels:
        scale = (max_pixels / (im.width * im.height)) ** 0.5
        size = (max(1, int(im.width * scale)), max(1, int(im.height * scale)))
        # reducing_gap: first Image.reduce by an integer factor (a box filter, cheap on a full
        # decode), then Lanczos over the last factor of at most 3
        im = im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(im, dtype=np.uint8).copy()


def _high_depth_to_l(im: Image.Image) -> Image.Image:
    arr = np.asarray(im)
    if arr.ndim == 3:  # multi-channel 16-bit: keep the first three channels
        arr = arr[..., :3]
    arr = arr.astype(np.float64)
    if im.mode.startswith("I;16"):
        arr = arr / 257.0
    elif arr.min() >= 0 and arr.max() <= 255:
        pass
    elif arr.min() >= 0 and arr.max() <= 65535:
        arr = arr / 257.0
    else:
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / max(hi - lo, 1e-12) * 255.0
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8))


def as_rgb_array(image, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Any accepted image as (H, W, 3) uint8 RGB, by the same rules as files.

    image: a path, a PIL image, a numpy array (H, W, 3|4) or (H, W), or a tensor (3, H, W).
    Values: uint8 as is; uint16 scaled by 1/257 and rounded (full 16-bit range to 8 bits, as
    16-bit files); other integers clipped to 0..255; float and bool taken in [0, 1] (clipped).
    NaN or infinite values raise ValueError. RGBA is composited on white. Arrays above
    `max_pixels` pixels are scaled down (aspect kept), as files are.
    """
    if isinstance(image, (str, os.PathLike)):
        return read_image(image, max_pixels=max_pixels or DEFAULT_MAX_PIXELS)[0]
    if isinstance(image, Image.Image):
        return to_rgb(image, max_pixels=max_pixels)
    if type(image).__module__.startswith("torch"):
        if image.ndim != 3 or image.shape[0] not in (1, 3):
            raise ValueError(f"tensor images must be (3, H, W) or (1, H, W), got {tuple(image.shape)}")
        image = image.detach().cpu().permute(1, 2, 0).numpy()
    if not isinstance(image, np.ndarray):
        raise TypeError(
            f"cannot read an image from {type(image).__name__}: pass a path, a PIL image, "
            "a numpy array (H, W, 3) or a tensor (3, H, W)"
        )
    arr = image
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or min(arr.shape[:2]) == 0:
        raise ValueError(f"image arrays must be (H, W), (H, W, 3) or (H, W, 4), got {arr.shape}")
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.complexfloating):
            if not np.isfinite(arr).all():
                raise ValueError("image array holds NaN or infinite values")
            arr = np.rint(np.clip(arr.real.astype(np.float64), 0.0, 1.0) * 255.0)
        elif arr.dtype == bool:
            arr = arr.astype(np.float64) * 255.0
        elif arr.dtype == np.uint16:  # as 16-bit files: full range to 8 bits
            arr = np.rint(arr.astype(np.float64) / 257.0)
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] == 4:  # composite on white, as for files
        return to_rgb(Image.fromarray(np.ascontiguousarray(arr), "RGBA"), max_pixels=max_pixels)
    if max_pixels and arr.shape[0] * arr.shape[1] > max_pixels:  # the size guard, as for files
        return to_rgb(Image.fromarray(np.ascontiguousarray(arr), "RGB"), max_pixels=max_pixels)
    if not arr.flags.writeable:  # np.asarray(PIL image) is read-only; torch.from_numpy warns on it
        return arr.copy()
    return np.ascontiguousarray(arr)
