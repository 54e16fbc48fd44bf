"""Patch-similarity heatmaps: the "semantic coherence" figure of the DiffCut project page.

One patch of a reference image is picked; for each backbone the cosine similarity between its
feature and the feature of every patch of the reference image (and of a target image) is drawn
over the image. A semantically coherent encoder lights up the whole object the patch belongs to,
in both images, and little else (DiffCut, Couairon et al. 2024, "Semantic Coherence in Vision
Encoders").
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ovseg.coherence._inputs import (
    BackboneSpec,
    ImageLike,
    Point,
    extract,
    iter_backbones,
    load_image,
    parse_point,
)


@dataclass(frozen=True)
class SimilarityMaps:
    """The heatmaps of one backbone.

    reference: (h, w) float32, cosine similarity of the chosen cell to each cell of the reference.
    target: (h', w') float32 for the target image, or None without one.
    cell: (row, col) of the chosen cell in the reference's feature grid.
    point: (x, y) of the chosen point in pixels of the reference image as given.
    """

    backbone: str
    reference: Any
    target: Any | None
    cell: tuple[int, int]
    point: tuple[float, float]


def cosine_map(query: "torch.Tensor", feats: "torch.Tensor") -> "torch.Tensor":  # noqa: F821
    """query (C,), feats (C, h, w) -> (h, w): cosine similarity of `query` to every cell."""
    import torch.nn.functional as F

    if query.shape[0] != feats.shape[0]:
        raise ValueError(f"query has {query.shape[0]} channels, features have {feats.shape[0]}")
    query = F.normalize(query.float(), dim=0, eps=1e-12)
    feats = F.normalize(feats.float(), dim=0, eps=1e-12)
    return (query[:, None, None] * feats).sum(0)


def similarity_maps(
    reference: ImageLike,
    target: ImageLike | None = None,
    backbones: str | Sequence[BackboneSpec] | Mapping[str, BackboneSpec] = "ssd-1b",
    point: str | Sequence[float] | Point = (0.5, 0.5),
    *,
    resolution: int | None = None,
    weights: Mapping[str, str] | None = None,
    device: str | None = None,
    dtype: Any = None,
) -> dict[str, SimilarityMaps]:
    """For each backbone, the cosine-similarity maps of the reference cell under `point`.

    reference, target: file path, PIL image, (3, H, W) tensor in [0, 1] or (H, W, 3) uint8 array.
    backbones: "ssd-1b,dinov2-b", a list of names or backbone objects, or {label: name/object}.
    point: "X,Y" pixels ("120,80"), fractions ("0.5,0.4", "50%,40%"), or see `parse_point`.
    resolution: square input size for every backbone (default: each backbone's own).
    weights: {backbone name: local directory} for named backbones.
    Returns {backbone label: SimilarityMaps}, in the order the backbones were given.
    """
    point = parse_point(point)
    ref_image = load_image(reference)
    target_image = None if target is None else load_image(target)
    height, width = ref_image.shape[-2:]
    pixel = point.to_pixels(width, height)  # fails on a bad point before any model is loaded
    maps = {}
    for label, backbone in iter_backbones(backbones, weights=weights, device=device, dtype=dtype):
        ref_feats = extract(backbone, ref_image, resolution=resolution, device=device)
        row, col = point.to_cell(width, height, tuple(ref_feats.shape[-2:]))
        query = ref_feats[:, row, col]
        target_map = None
        if target_image is not None:
            target_feats = extract(backbone, target_image, resolution=resolution, device=device)
            target_map = cosine_map(query, target_feats)
        maps[label] = SimilarityMaps(label, cosine_map(query, ref_feats), target_map, (row, col), pixel)
    return maps


def _display(image: "torch.Tensor", max_side: int) -> "torch.Tensor":  # noqa: F821
    """(3, H, W) -> (3, H', W') with max(H', W') <= max_side, aspect kept."""
    import torch.nn.functional as F

    scale = min(1.0, max_side / max(image.shape[-2:]))
    if scale == 1.0:
        return image
    size = (max(1, round(image.shape[-2] * scale)), max(1, round(image.shape[-1] * scale)))
    return F.interpolate(image[None], size=size, mode="bilinear", antialias=True)[0].clamp(0, 1)


def _upsample(heat: "torch.Tensor", size: tuple[int, int]) -> "torch.Tensor":  # noqa: F821
    import torch.nn.functional as F

    return F.interpolate(heat[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]


def plot_similarity(
    maps: Mapping[str, SimilarityMaps],
    reference: ImageLike,
    target: ImageLike | None = None,
    *,
    out: str | os.PathLike | None = None,
    cmap: str = "jet",
    alpha: float = 0.55,
    max_side: int = 512,
    dpi: int = 100,
) -> "matplotlib.figure.Figure":  # noqa: F821
    """Draw `maps` (from `similarity_maps`) as one figure and save it as PNG when `out` is given.

    A row per backbone: the reference image with the chosen point (red), the heatmap over the
    reference, and the heatmap over the target (this column only with a target). All heatmaps
    share one colour scale (min to max over the whole figure) and one colour bar, so rows compare.
    Each row's first axes is blank but for the backbone's name (its label in `maps`); the figure's
    axes are, row by row, that label and the panels, then the colour bar.
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    if not maps:
        raise ValueError("no similarity maps to draw")
    has_target = target is not None
    missing = [k for k, m in maps.items() if has_target != (m.target is not None)]
    if missing:
        raise ValueError(
            f"maps of {missing} {'lack' if has_target else 'have'} a target heatmap, but a target "
            f"image was {'' if has_target else 'not '}given"
        )
    ref_image = load_image(reference)
    ref_show = _display(ref_image, max_side)
    target_show = _display(load_image(target), max_side) if has_target else None
    heats = [m.reference for m in maps.values()] + [m.target for m in maps.values() if has_target]
    vmin = min(float(h.min()) for h in heats)
    vmax = max(float(h.max()) for h in heats)
    if vmax - vmin < 1e-6:
        vmin, vmax = vmin - 0.5, vmax + 0.5

    columns = 3 if has_target else 2
    rows = len(maps)
    # each column as wide as its image at the panel height (the target's aspect may differ from
    # the reference's), so no panel is shrunk inside its slot and no gap opens beside it; the
    # extra inches hold the row labels (the backbones' names) and the colour bar
    panel = 3.2
    widths = [ref_show.shape[-1] / ref_show.shape[-2]] * 2
    if has_target:
        widths.append(target_show.shape[-1] / target_show.shape[-2])
    label_width = 0.12  # a blank first column holds each row's name: always inside the figure
    fig = Figure(figsize=(panel * (sum(widths) + label_width) + 1.6, rows * panel + 0.5), dpi=dpi,
                 layout="constrained")
    grid = fig.subplots(rows, columns + 1, squeeze=False, gridspec_kw={"width_ratios": [label_width, *widths]})
    axes = grid[:, 1:]
    for r, label in enumerate(maps):
        grid[r, 0].axis("off")
        grid[r, 0].text(0.5, 0.5, label, rotation=90, ha="center", va="center", fontsize=11,
                        transform=grid[r, 0].transAxes)
    scale_x = ref_show.shape[-1] / ref_image.shape[-1]
    scale_y = ref_show.shape[-2] / ref_image.shape[-2]
    mappable = None
    titles = ["reference", "similarity: reference", "similarity: target"]
    for r, (label, m) in enumerate(maps.items()):
        x, y = m.point[0] * scale_x, m.point[1] * scale_y
        panels = [(ref_show, None), (ref_show, m.reference)]
        if has_target:
            panels.append((target_show, m.target))
        for c, (image, heat) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(image.permute(1, 2, 0).numpy())
            if heat is not None:
                mappable = ax.imshow(_upsample(heat, tuple(image.shape[-2:])).numpy(), cmap=cmap,
                                     alpha=alpha, vmin=vmin, vmax=vmax)
            if c < 2:
                ax.plot([x], [y], marker="o", markersize=7, markerfacecolor="red",
                        markeredgecolor="white", markeredgewidth=1.5)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c], fontsize=10)
    # The bar shows the colours opaque, not blended with the image as in the panels.
    opaque = ScalarMappable(norm=Normalize(vmin, vmax), cmap=mappable.get_cmap())
    fig.colorbar(opaque, ax=axes.ravel().tolist(), shrink=0.8, label="cosine similarity")
    if out is not None:
        from ovseg.io import atomic_write

        atomic_write(out, lambda f: fig.savefig(f, format="png"))  # whole or not at all
    return fig
