"""Pictures of results: the colours of label maps, label-map PNGs, and overlays with a legend.

Colours: the Pascal VOC colour map shifted by one, so that index 0 (a real class or segment here,
not VOC's background) is not black: value i has VOC colour i + 1 (0 dark red, 1 dark green,
2 olive, 3 dark blue, ...; the bits of i + 1 spread over the high bits of R, G and B). The VOC
rule maps 1..2**24 - 1 to distinct colours, so values 0..65534 all differ, none is black and
none is white; white is reserved for "no class" (and region edges in overlays).

Label-map PNG format (`label_image`), chosen by how many values the map may hold, not by the
values present, so every file of a run has the same format:

- up to 255 classes (or segments): 8-bit palette PNG ("P" mode) with the palette below; pixel
  value = class index (or segment id), 255 = no class (white);
- 256 to 65535 classes (or segments): 16-bit greyscale PNG ("I;16"), pixel value = class index,
  65535 = no class. Viewers show it dark; read it with e.g. ``np.asarray(Image.open(p))``.

``no_class_value(num_classes)`` gives the value; the JSON of a labelled image records it as
``label_map.no_class_value`` with ``label_map.format``.

Legend text: class names are drawn with the first font that covers every character of the name:
``$OVSEG_FONT`` (a font file) if set, then broad-coverage fonts found on the system (DejaVu, Noto
CJK, WenQuanYi, Droid Sans Fallback, Arial Unicode, ...), then Pillow's built-in font. A name no
font covers is drawn visibly as its index with "?" for each missing character (e.g. "#3 ??"), and
one warning names the missing characters and how to install a font (Debian: fonts-noto-cjk).
"""
from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

VOID = 255  # "no class" in 8-bit label maps (and the palette's white)
VOID16 = 65535  # "no class" in 16-bit label maps
WHITE = (255, 255, 255)


def no_class_value(num_classes: int) -> int:
    """Pixel value of "no class" in a label map of `num_classes` classes: 255 up to 255 classes
    (8-bit palette PNG), 65535 from 256 to 65535 classes (16-bit PNG)."""
    if num_classes > VOID16:
        raise ValueError(f"at most {VOID16} classes fit a 16-bit label map, got {num_classes}")
    return VOID if num_classes <= VOID else VOID16


def png_format(num_values: int) -> str:
    """The label PNG format for maps of `num_values` classes or segments (module docstring)."""
    return "8-bit palette" if num_values <= VOID else "16-bit greyscale"


def voc_colormap(n: int = 256) -> np.ndarray:
    """The Pascal VOC colour map: (n, 3) uint8, row i the colour of VOC index i."""
    cmap = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap


def palette() -> np.ndarray:
    """ovseg's palette (256, 3) uint8: VOC colour i + 1 for index i < 255, white for 255."""
    pal = voc_colormap(256)[np.r_[1:256, 0]]
    pal[VOID] = 255
    return pal


_PALETTE = palette()


def colours(values: np.ndarray, *, no_class: int | None = VOID) -> np.ndarray:
    """Colours of label values (any shape of ints in 0..65535) -> (..., 3) uint8: VOC colour
    value + 1 (distinct for every value), white for `no_class` (None: no value means "no class").
    Equals ``palette()`` on 0..255 with the default no_class=255."""
    values = np.asarray(values, dtype=np.int64)
    j = values + 1
    rgb = np.zeros(values.shape + (3,), dtype=np.int64)
    for level in range(8):  # the VOC rule: bit 3k (+1, +2) of j -> bit 7-k of R (G, B)
        for ch in range(3):
            rgb[..., ch] |= ((j >> (3 * level + ch)) & 1) << (7 - level)
    if no_class is not None:
        rgb[values == no_class] = WHITE
    return rgb.astype(np.uint8)


def label_image(labels: np.ndarray, *, bits: int | None = None) -> Image.Image:
    """A label map (H, W) of ints as a PNG-ready image (format: module docstring).

    bits: 8 for a "P"-mode image with the palette (values 0..255), 16 for "I;16" (0..65535);
    None picks 8 when every value is <= 255. Pass it from the vocabulary size (see
    ``no_class_value``) so that all maps of a run share one format.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"label map must be (H, W), got {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > VOID16):
        raise ValueError("label values must lie in 0..65535")
    if bits is None:
        bits = 16 if labels.size and labels.max() > VOID else 8
    if bits == 16:
        return Image.fromarray(labels.astype(np.uint16))  # mode "I;16"
    if bits != 8:
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    if labels.size and labels.max() > VOID:
        raise ValueError("an 8-bit label map holds values 0..255 only; use bits=16")
    im = Image.fromarray(labels.astype(np.uint8)).convert("P")
    im.putpalette(_PALETTE.reshape(-1).tolist())
    return im


def overlay(
    image: np.ndarray,
    labels: np.ndarray,
    legend: dict[int, str] | None = None,
    *,
    alpha: float = 0.5,
    max_legend: int | None = None,
    no_class: int | None = VOID,
) -> Image.Image:
    """The image (H, W, 3) uint8 tinted by the colours of `labels` (H, W), region edges drawn,
    and, beside it, a legend of colour swatches and names (`legend`: value -> name, in order;
    by default every value present). Entries beyond `max_legend` (default: as many as fit beside
    the image, at least 8) are summarised in one line. Value `no_class` is drawn white; every
    other value has its own colour (``colours``).
    """
    image = np.asarray(image, dtype=np.uint8)
    labels = np.asarray(labels)
    if image.shape[:2] != labels.shape:
        raise ValueError(f"image {image.shape[:2]} and labels {labels.shape} differ in size")
    if labels.size and (labels.min() < 0 or labels.max() > VOID16):
        raise ValueError("label values must lie in 0..65535")
    lut = colours(np.arange(int(labels.max(initial=0)) + 1), no_class=no_class)  # one per value
    tint = lut[labels].astype(np.float32)
    out = (1 - alpha) * image.astype(np.float32) + alpha * tint
    edge = np.zeros(labels.shape, dtype=bool)  # a pixel whose right or lower neighbour differs
    edge[:, :-1] |= labels[:, 1:] != labels[:, :-1]
    edge[:-1, :] |= labels[1:, :] != labels[:-1, :]
    out[edge] = 255.0
    picture = Image.fromarray(np.clip(out, 0, 255).astype(np.uint8), "RGB")
    if legend is None:
        legend = {int(v): str(int(v)) for v in np.unique(labels)}
    return _add_legend(picture, legend, max_legend, no_class)


def _add_legend(picture: Image.Image, legend: dict[int, str], max_legend: int | None,
                no_class: int | None = VOID) -> Image.Image:
    size = int(np.clip(picture.height / 32, 12, 48))
    row, pad = int(size * 1.5), size // 2
    if max_legend is None:
        max_legend = max(8, (picture.height - 2 * pad) // row - 1)
    items = list(legend.items())
    lines = [(v, *legend_text(v, name, size)) for v, name in items[:max_legend]]
    if len(items) > max_legend:
        more = f"... and {len(items) - max_legend} more"
        lines.append((None, more, _fonts(size)[-1]))
    measure = ImageDraw.Draw(picture)
    text_w = max([measure.textlength(text, font=font) for _, text, font in lines] + [0])
    width = int(pad * 3 + size + text_w) + pad
    height = max(picture.height, pad * 2 + row * len(lines))
    canvas = Image.new("RGB", (picture.width + width, height), WHITE)
    canvas.paste(picture, (0, 0))
    draw = ImageDraw.Draw(canvas)
    x0 = picture.width + pad
    for i, (value, text, font) in enumerate(lines):
        y = pad + i * row
        if value is not None:
            colour = tuple(int(c) for c in colours(np.array(value), no_class=no_class))
            draw.rectangle([x0, y, x0 + size, y + size], fill=colour, outline=(0, 0, 0))
        draw.text((x0 + size + pad, y), text, fill=(0, 0, 0), font=font)
    return canvas


# -- fonts for legend text -------------------------------------------------------------------------
_FONT_FILES = (  # broad coverage first; the first that covers a whole name draws it
    "DejaVuSans.ttf", "NotoSans-Regular.ttf", "NotoSansCJK-Regular.ttc", "NotoSansCJKsc-Regular.otf",
    "NotoSansCJK-Regular.otf", "wqy-microhei.ttc", "wqy-zenhei.ttc", "DroidSansFallbackFull.ttf",
    "DroidSansFallback.ttf", "ArialUnicode.ttf", "Arial Unicode.ttf", "arialuni.ttf", "msyh.ttc",
    "YuGothR.ttc", "malgun.ttf", "Nirmala.ttf", "seguisym.ttf", "Arial.ttf", "arial.ttf",
)


def _font_dirs() -> list[Path]:
    home = Path.home()
    dirs = [Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), home / ".local/share/fonts",
            home / ".fonts", Path("/Library/Fonts"), Path("/System/Library/Fonts"),
            home / "Library/Fonts", Path(os.environ.get("WINDIR", "C:/Windows")) / "Fonts"]
    return [d for d in dirs if d.is_dir()]


@functools.lru_cache(maxsize=1)
def font_files() -> tuple[str, ...]:
    """Font files tried for legend text, in order: $OVSEG_FONT, then the known broad-coverage
    fonts found in the usual system folders."""
    found: dict[str, str] = {}
    for d in _font_dirs():
        for path in d.rglob("*"):
            if path.name in _FONT_FILES and path.name not in found:
                found[path.name] = str(path)
    files = [found[n] for n in _FONT_FILES if n in found]
    env = os.environ.get("OVSEG_FONT")
    if env:
        if Path(env).is_file():
            files.insert(0, env)
        else:
            warnings.warn(f"OVSEG_FONT={env!r} is not a file; ignored", RuntimeWarning, stacklevel=2)
    return tuple(files)


@functools.lru_cache(maxsize=16)
def _fonts(size: int) -> tuple:
    """The fonts of ``font_files`` at `size` (those Pillow can open), then Pillow's own."""
    out = []
    for f in font_files():
        try:
            out.append(ImageFont.truetype(f, size))
        except OSError:
            continue
    out.append(ImageFont.load_default(size=size))
    return tuple(out)


_NO_GLYPH = "\U0010fffd"  # a private-use code point no font draws: its bitmap is the "missing" box


def _covers(font, ch: str) -> bool:
    """Whether `font` has a glyph for `ch`: its bitmap differs from that of a code point with no
    glyph (the .notdef box), or it is white space."""
    if ch.isspace() or not ch.isprintable():
        return True
    try:
        return _bitmap(font, ch) != _missing_bitmap(font)
    except (UnicodeError, OSError, ValueError):
        return False


@functools.lru_cache(maxsize=64)
def _missing_bitmap(font) -> tuple:
    return _bitmap(font, _NO_GLYPH)


def _bitmap(font, text: str) -> tuple:
    mask = font.getmask(text)
    return mask.size, bytes(mask)


_warned: set[str] = set()


def legend_text(value: int | None, name: str, size: int) -> tuple[str, object]:
    """(text, font) to draw `name` at `size`: the first font covering every character, else the
    visible fallback "#value ??" (one "?" per missing character) and a warning once per process."""
    fonts = _fonts(size)
    for font in fonts:
        if all(_covers(font, ch) for ch in name):
            return name, font
    font = max(fonts, key=lambda f: sum(_covers(f, ch) for ch in name))  # first of the best
    missing = sorted({ch for ch in name if not _covers(font, ch)})
    text = "".join("?" if ch in missing else ch for ch in name)
    text = f"#{value} {text}" if value is not None else text
    if not _warned:
        _warned.add(name)
        print_missing = "".join(missing[:20])
        warnings.warn(
            f"no font draws the class name {name!r} (missing {print_missing!r}); the legend shows "
            f"{text!r}. Install a font with broad coverage (Debian/Ubuntu: apt install "
            f"fonts-noto-cjk) or set OVSEG_FONT to a font file. (This warning is shown once.)",
            RuntimeWarning, stacklevel=3)
    return text, font
