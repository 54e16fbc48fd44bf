"""Pictures of results: the palette of label maps, and overlays with a legend.

Palette: the Pascal VOC colour map (index 0 black, 1 dark red, 2 dark green, 3 olive, ...; the
bits of the index spread over the high bits of R, G and B). Label-map PNGs are palette-indexed
("P" mode) with this palette, so any viewer shows them in colour while the pixel values stay the
class index (`ovseg label`) or segment id (`ovseg segment`). Index 255, VOC's "void", marks pixels
without a class. Overlays use the same colours, so a legend entry matches the label map.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

VOID = 255


def palette(n: int = 256) -> np.ndarray:
    """The Pascal VOC colour map: (n, 3) uint8, row i the colour of index i."""
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
    max_legend: int = 40,
) -> Image.Image:
    """The image (H, W, 3) uint8 tinted by the colours of `labels` (H, W), region edges drawn,
    and, beside it, a legend of colour swatches and names (`legend`: value -> name, in order;
    by default every value present). Values the legend lists beyond `max_legend` are summarised.
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


def _add_legend(picture: Image.Image, legend: dict[int, str], max_legend: int) -> Image.Image:
    size = int(np.clip(picture.height / 32, 12, 48))
    font = ImageFont.load_default(size=size)
    items = list(legend.items())
    lines = [(v, name) for v, name in items[:max_legend]]
    if len(items) > max_legend:
        lines.append((None, f"... and {len(items) - max_legend} more"))
    row, pad = int(size * 1.5), size // 2
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
