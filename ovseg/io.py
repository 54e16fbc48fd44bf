"""Reading images safely, and writing outputs whole or not at all.

Reading policy (what :func:`read_image` and :func:`to_rgb` do to every input):

- EXIF orientation is applied (`ImageOps.exif_transpose`), so outputs match what viewers show.
- Modes: grayscale ("L", "1"), palette ("P"), CMYK, YCbCr, LAB and HSV are converted to RGB with
  Pillow (CMYK without colour management). Images with transparency ("RGBA", "LA", "PA", "P" with
  a transparent index) are **composited on white**, so transparent areas look like paper, not black.
  16-bit images ("I;16*") are scaled by 1/257 (full 16-bit range to 8 bits); 32-bit ("I", "F")
  images are taken as 8-bit if their values fit in 0..255, as 16-bit if they fit in 0..65535, else
  min-max stretched.
- Size: images with more than `max_pixels` pixels (default 2**25, about 33.5 MP; `--max-pixels`)
  are scaled down, aspect kept, to fit, whatever their format; the outputs are then at that
  reduced size and the JSON says so (`source_size`). JPEGs are decoded at 1/2, 1/4 or 1/8 scale
  directly (`Image.draft`), so even huge JPEGs cost little memory; other formats (PNG, TIFF, WebP,
  ...) are decoded in full, then reduced (`Image.reduce` by an integer factor, then Lanczos).
- Decompression bombs: a separate, fixed guard, not `max_pixels`. A file whose header claims more
  than twice Pillow's `Image.MAX_IMAGE_PIXELS` (2 * 89.5 MP = 179 MP by default) is refused before
  a pixel is decoded, and reported like any unreadable file ("refused as a possible
  decompression bomb"); up to that bound a file is decoded (a 179 MP RGB file takes about 0.5 GB
  while it is reduced). ovseg never changes Pillow's global: raise `PIL.Image.MAX_IMAGE_PIXELS`
  yourself for files you trust; `read_image(max_decode_pixels=N)` sets a lower bound of your own.
- A truncated, empty or non-image file raises :class:`ImageReadError`, naming the file.

Writing: :func:`atomic_write` writes to a temporary file in the target's folder and renames it
into place (`os.replace`), so an interrupted run never leaves a half-written output.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
from PIL import Image, ImageOps

from ovseg._nearest import NEAREST_MODES, nearest_indices, resize_nearest  # noqa: F401 (public names)

IMAGE_EXTENSIONS = (
    ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm",
)
DEFAULT_MAX_PIXELS = 2**25


class ImageReadError(ValueError):
    """An input file is not a readable image (truncated, empty, not an image, too large)."""


# ---------------------------------------------------------------------------------------------
# Reading


OUTPUT_KINDS = ("labels", "segments")  # `<stem>.<kind>.png`, `.<kind>.overlay.png`, `.<kind>.json`


def is_ovseg_output(path: str | os.PathLike) -> bool:
    """Whether `path` is a PNG ovseg wrote: `<stem>.labels[.overlay].png` or
    `<stem>.segments[.overlay].png` beside its `<stem>.labels.json` / `<stem>.segments.json`."""
    path = Path(path)
    for kind in OUTPUT_KINDS:
        for suffix in (f".{kind}.png", f".{kind}.overlay.png"):
            if path.name.endswith(suffix):
                stem = path.name[: -len(suffix)]
                if (path.parent / f"{stem}.{kind}.json").is_file():
                    return True
    return False


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


# ---------------------------------------------------------------------------------------------
# COCO run-length encoding (our own encoder/decoder; the format is pycocotools')


def rle_encode(mask: np.ndarray) -> dict:
    """A binary mask (H, W) as COCO compressed RLE: {"size": [H, W], "counts": str}.

    Runs alternate 0s and 1s, starting with 0s, over the mask in column-major (Fortran) order;
    the counts are then packed into ASCII as pycocotools' `rleToString` does, so the dict can be
    passed to `pycocotools.mask.decode` unchanged.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {mask.shape}")
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": _pack(_runs(mask))}


def rle_decode(rle: dict) -> np.ndarray:
    """Inverse of :func:`rle_encode`; also accepts uncompressed counts (a list of ints)."""
    h, w = (int(v) for v in rle["size"])
    counts = rle["counts"]
    counts = _unpack(counts) if isinstance(counts, (str, bytes)) else [int(c) for c in counts]
    if sum(counts) != h * w:
        raise ValueError(f"RLE counts sum to {sum(counts)}, expected {h}*{w}={h * w}")
    flat = np.repeat(np.arange(len(counts)) % 2 == 1, counts)
    return flat.reshape((w, h)).T.copy()


def _runs(mask: np.ndarray) -> list[int]:
    flat = mask.T.reshape(-1)  # column-major order
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    return ([0] + runs) if flat.size and flat[0] else runs  # the first run counts 0s


def _pack(counts: list[int]) -> str:
    out = []
    for i, x in enumerate(counts):
        if i > 2:
            x -= counts[i - 2]  # pycocotools stores runs as differences to the run two back
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            out.append(chr((c | 0x20 if more else c) + 48))
    return "".join(out)


def _unpack(s: str | bytes) -> list[int]:
    data = s.encode() if isinstance(s, str) else s
    counts: list[int] = []
    p = 0
    while p < len(data):
        x, k, more = 0, 0, True
        while more:
            c = data[p] - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p, k = p + 1, k + 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def bbox_of(mask: np.ndarray) -> list[int]:
    """COCO box [x, y, width, height] of a binary mask (H, W); zeros when empty."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if rows.size == 0:
        return [0, 0, 0, 0]
    return [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)]


# ---------------------------------------------------------------------------------------------
# Writing


def atomic_write(path: str | os.PathLike, write: Callable[[object], None], mode: str = "wb") -> Path:
    """Call `write(file)` on a temporary file beside `path`, then rename it onto `path`.

    The output appears whole or not at all: on any error (or interruption) the temporary file is
    removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get the usual mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def output_paths(image: Path, out_dir: Path, task: str, stem: str | None = None) -> dict[str, Path]:
    """Where the outputs of one image go: {"png", "overlay", "json"} -> paths in `out_dir`:
    `<stem>.labels.png`, `<stem>.labels.overlay.png`, `<stem>.labels.json` for task "label",
    the same with `segments` for task "segment" (so both can share a folder)."""
    kind = "labels" if task == "label" else "segments"
    base = f"{stem or image.stem}.{kind}"
    return {"png": out_dir / f"{base}.png", "overlay": out_dir / f"{base}.overlay.png",
            "json": out_dir / f"{base}.json"}


def output_stems(images: list[Path], roots: Iterable[str | os.PathLike] = ()) -> list[str]:
    """One distinct output stem per image: the file stem, with its folder below an input root
    (as `sub/name`) and its extension added where two inputs would otherwise collide (the set
    of inputs then changes a name: `Segmenter.process_files` removes the set under the old
    name, `stale_outputs`)."""
    roots = [Path(r).resolve() for r in roots if Path(r).is_dir()]
    stems = []
    for img in images:
        rel = Path(img.name)
        for root in roots:
            with contextlib.suppress(ValueError):
                rel = img.resolve().relative_to(root)
                break
        stems.append(str(rel.with_suffix("")))
    counts: dict[str, int] = {}
    for s in stems:
        counts[s] = counts.get(s, 0) + 1
    stems = [
        s if counts[s] == 1 else f"{s}.{img.suffix.lstrip('.').lower()}"
        for s, img in zip(stems, images)
    ]
    seen: dict[str, int] = {}  # still equal (same name in two folders given as files): -2, -3, ...
    out = []
    for s in stems:
        seen[s] = seen.get(s, 0) + 1
        out.append(s if seen[s] == 1 else f"{s}-{seen[s]}")
    return out


def stale_outputs(image: Path, outs: dict[str, Path]) -> list[dict[str, Path]]:
    """Output sets an earlier run wrote for `image` under another name, to remove once its
    outputs `outs` are done (or found current), so that a rerun never leaves a stale set.

    The naming rule (`output_stems`) adds the extension only where two inputs share a stem: label
    `cat.png` alone (`cat.labels.*`), then beside `cat.jpg`, and its outputs become
    `cat.png.labels.*`; remove `cat.jpg` and they go back. The other name's set is stale when its
    JSON names `image` as its source (same file, links resolved); another image's outputs are
    never touched. Returns those sets ({"png", "overlay", "json"}), which may be none.
    """
    json_path = Path(outs["json"])
    kind = next(k for k in OUTPUT_KINDS if json_path.name.endswith(f".{k}.json"))
    stem = json_path.name[: -len(f".{kind}.json")]
    ext = image.suffix.lstrip(".").lower()
    base = stem[: -len(ext) - 1] if ext and stem.endswith(f".{ext}") else stem
    stale = []
    for other in {base, f"{base}.{ext}"} - {stem}:
        other_json = json_path.parent / f"{other}.{kind}.json"
        if other_json.is_file() and _source_of(other_json) == Path(image).resolve():
            stale.append({"png": other_json.parent / f"{other}.{kind}.png",
                          "overlay": other_json.parent / f"{other}.{kind}.overlay.png",
                          "json": other_json})
    return stale


def _source_of(json_path: Path) -> Path | None:
    import json

    with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
        source = json.loads(json_path.read_text(encoding="utf-8")).get("image")
        return Path(source).resolve() if source else None
    return None


def remove_outputs(outs: dict[str, Path]) -> None:
    """Delete one image's output set; the JSON last, so that a set interrupted half-way is still
    recognised as ovseg's (`is_ovseg_output`) and never read as an input."""
    for key in ("png", "overlay", "json"):
        with contextlib.suppress(FileNotFoundError):
            Path(outs[key]).unlink()


def iter_batches(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
