"""Pictures of results: the palette of label maps, and overlays with a legend.

Palette: the Pascal VOC colour map shifted by one, so that index 0 (a real class or segment here,
not VOC's background) is not black: index i has VOC colour i + 1 (0 dark red, 1 dark green,
2 olive, 3 dark blue, ...; the bits of i + 1 spread over the high bits of R, G and B), and index
255, which marks pixels without a class, is white. All 256 colours differ. Label-map PNGs are
palette-indexed ("P" mode) with this palette, so any viewer shows them in colour while the pixel
values stay the class index (`ovseg label`) or segment id (`ovseg segment`). Overlays use the same
colours, so a legend entry matches the label map.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

VOID = 255


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


def label_image(labels: np.ndarray) -> Image.Image:
    """A label map (H, W) of ints in 0..255 as a "P"-mode image with the VOC palette.

    Maps with values above 255 cannot be palette images: they become 16-bit grayscale ("I;16").
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"label map must be (H, W), got {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 65535):
        raise ValueError("label values must lie in 0..65535")
    if labels.size and labels.max() > 255:
        return Image.fromarray(labels.astype(np.uint16))  # mode "I;16"
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
) -> Image.Image:
    """The image (H, W, 3) uint8 tinted by the colours of `labels` (H, W), region edges drawn,
    and, beside it, a legend of colour swatches and names (`legend`: value -> name, in order;
    by default every value present). Entries beyond `max_legend` (default: as many as fit beside
    the image, at least 8) are summarised in one line.
    """
    image = np.asarray(image, dtype=np.uint8)
    labels = np.asarray(labels)
    if image.shape[:2] != labels.shape:
        raise ValueError(f"image {image.shape[:2]} and labels {labels.shape} differ in size")
    colours = _PALETTE[labels % 256].astype(np.float32)
    out = (1 - alpha) * image.astype(np.float32) + alpha * colours
    edge = np.zeros(labels.shape, dtype=bool)  # a pixel whose right or lower neighbour differs
    edge[:, :-1] |= labels[:, 1:] != labels[:, :-1]
    edge[:-1, :] |= labels[1:, :] != labels[:-1, :]
    out[edge] = 255.0
    picture = Image.fromarray(np.clip(out, 0, 255).astype(np.uint8), "RGB")
    if legend is None:
        legend = {int(v): str(int(v)) for v in np.unique(labels)}
    return _add_legend(picture, legend, max_legend)


def _add_legend(picture: Image.Image, legend: dict[int, str], max_legend: int | None) -> Image.Image:
    size = int(np.clip(picture.height / 32, 12, 48))
    font = ImageFont.load_default(size=size)
    row, pad = int(size * 1.5), size // 2
    if max_legend is None:
        max_legend = max(8, (picture.height - 2 * pad) // row - 1)
    items = list(legend.items())
    lines = [(v, name) for v, name in items[:max_legend]]
    if len(items) > max_legend:
        lines.append((None, f"... and {len(items) - max_legend} more"))
    measure = ImageDraw.Draw(picture)
    text_w = max([measure.textlength(name, font=font) for _, name in lines] + [0])
    width = int(pad * 3 + size + text_w) + pad
    height = max(picture.height, pad * 2 + row * len(lines))
    canvas = Image.new("RGB", (picture.width + width, height), (255, 255, 255))
    canvas.paste(picture, (0, 0))
    draw = ImageDraw.Draw(canvas)
    x0 = picture.width + pad
    for i, (value, name) in enumerate(lines):
        y = pad + i * row
        if value is not None:
            colour = tuple(int(c) for c in _PALETTE[value % 256])
            draw.rectangle([x0, y, x0 + size, y + size], fill=colour, outline=(0, 0, 0))
        draw.text((x0 + size + pad, y), name, fill=(0, 0, 0), font=font)
    return canvas
