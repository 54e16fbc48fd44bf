"""The pipeline's stages, public: what `Segmenter`, the demo, the evaluation sweep, the Ray actor
and the benchmarks all call, in this order (docs/architecture.md draws it):

    array (H, W, 3) uint8
      -> prepare      backbone input (3, S, S) + working image (3, h', w'), float32 in [0, 1]
      -> extract      features (B, C, h, w) float32 [+ attention transitions P (B, h*w, h*w)]
      -> build_tree   one recut-able object per image (the cut method's tree, `ovseg.masks`)
      -> cut          low-res segments (h, w) int64 at the user's setting (tau, or K), + info
      -> refine       segments on the working image (h', w') int64: concept assignment + PAMR
      -> name         per segment a class from the vocabulary (CLIP mask pooling), optional
      -> assemble     SegmentationResult at the input's full size (nearest-exact)

`segment_batch` runs extract -> build_tree -> cut -> refine on a batch of prepared images. The
cut method is looked up by name in `ovseg.masks` (`get_method`): no stage branches on it.

    from ovseg.pipeline import stages
    from ovseg.settings.defaults import ALPHA, TAU      # the paper's alpha and tau
    inp, work = stages.prepare(array, resolution=1024)
    feats, P = stages.extract(backbone, inp[None], method="diffcut")
    tree = stages.build_tree(feats, P, method="diffcut", alpha=ALPHA)[0]
    low, info = stages.cut(tree, TAU)
    seg = stages.refine(feats[0], low, work, PAMRConfig.open_vocabulary())

Sizes (defaults = DiffCut's published open-vocabulary path, docs/fidelity.md): the backbone sees
the image resized to a square of `resolution` pixels by bilinear interpolation of the float image
(`F.interpolate`, align_corners=False, no antialias). With `work_aspect="square"` (default),
concept assignment, PAMR and CLIP naming all run on that res x res square; the square map is then
mapped back to the input's own size and aspect by nearest neighbour with pixel centres aligned
(`ovseg.io.resize_nearest`): output pixel (i, j) of an H x W image takes square pixel
(floor((i + 0.5) * res / H), floor((j + 0.5) * res / W)). With `work_aspect="image"`, they run at
the image's own aspect, long side at most `resolution`.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ovseg import io as _io
from ovseg.labels._auto import label_auto
from ovseg.masks import PAMRConfig, capture_transitions, get_method, refine_segments
from ovseg.masks.min_area import with_min_area
from ovseg.pipeline._results import build_result

__all__ = ["assemble", "build_tree", "cut", "extract", "method_options", "name", "name_auto", "pamr_settings", "prepare", "refine",
           "resize_bilinear", "segment_batch", "to_tensor", "work_size"]


def prepare(array: np.ndarray, resolution: int, work_aspect: str = "square"):
    """array (H, W, 3) uint8 -> (backbone input (3, res, res), working image (3, h', w')), both
    torch float32 in [0, 1]. The working image is the square itself (work_aspect="square", as
    DiffCut) or the image at its own aspect, long side <= resolution (work_aspect="image")."""
    image = to_tensor(array)
    square = resize_bilinear(image, (resolution, resolution))  # DiffCut: bilinear on the float image
    if work_aspect == "square":  # assignment, PAMR and naming on the backbone's input
        return square, square
    return square, resize_bilinear(image, work_size(array.shape[:2], resolution))


def extract(backbone, inputs, *, method: str = "diffcut", attention_layers: Sequence | None = None):
    """One backbone pass. inputs (B, 3, S, S) float32 in [0, 1] on the backbone's device ->
    (features (B, C, h, w) float32, transitions P (B, h*w, h*w) float32 row-stochastic, or None
    when the method needs the features only)."""
    if get_method(method).needs == "attention":  # the combined self-attention walk (METHOD.md 5)
        return capture_transitions(backbone, inputs, attention_layers)
    return backbone(inputs).float(), None


def build_tree(feats, transitions=None, *, method: str = "diffcut", top=None, min_area: float = 0.0,
               **options) -> list:
    """feats (B, C, h, w) float32 (+ P (B, h*w, h*w) for an attention method) -> B recut-able
    objects (`ovseg.settings.methods`: `cut(value)`, `leaves(value)`, `num_segments(value)`).
    top: the largest setting later cuts ask for (None: each cut builds what it needs).
    min_area: every cut's segments under this fraction of the grid merged into their most
    similar adjacent one (`ovseg.masks.min_area`, any method; 0: none).
    options: the method's options (`get_method(method).options`, e.g. alpha=ALPHA)."""
    return with_min_area(get_method(method).build(feats, transitions, top=top, **options), feats, min_area)


def method_options(config) -> dict:
    """The `build_tree` options of config's cut method: {field: value} for each field of
    `get_method(config.method).options` (DiffCut: {"alpha": config.alpha}), and min_area when it merges."""
    out = {k: getattr(config, k) for k in get_method(config.method).options}
    return {**out, "min_area": config.min_area} if config.min_area else out


def cut(tree, value) -> tuple:
    """A recut-able object cut at the user's setting (tau, "auto", or K) -> (segments (h, w) int64
    ids 0..K-1, info: what the output records beyond the settings, e.g. {"tau_chosen": 0.41})."""
    return tree.cut(value)


def pamr_settings(config):
    """The refine stage's PAMR settings of a SegmenterConfig (`ovseg.masks.PAMRConfig`: refine_iterations,
    refine_dilations, refine_filter), or None without refine."""
    if not config.refine:
        return None
    return PAMRConfig(iterations=config.refine_iterations, dilations=config.refine_dilations,
                      label_filter=config.refine_filter)


def refine(feats, segments, work, pamr=None, *, compact: bool = True) -> np.ndarray:
    """Low-res segments (h, w) int64 -> (h', w') int64 on the working image `work` (3, h', w')
    float32: concept assignment from feats (C, h, w) (METHOD.md 4), then PAMR with `pamr` (an
    `ovseg.masks.PAMRConfig`, None: none). compact: renumber the ids that survive to 0..K-1."""
    seg = refine_segments(feats, segments, work, refine=pamr).cpu().numpy()
    if not compact:
        return seg
    return np.unique(seg, return_inverse=True)[1].reshape(work.shape[-2:])


def segment_batch(backbone, prepared: list, config, device="cpu") -> list[tuple[np.ndarray, dict]]:
    """extract -> build_tree -> cut -> refine for a batch. prepared: `prepare` outputs (one per
    image); config: a SegmenterConfig; device: where the backbone runs. -> per image (segment
    map (h', w') int64 ids 0..K-1 at the working size, info such as {"tau_chosen": t})."""
    method, value = config.method, getattr(config, get_method(config.method).setting)
    batch = torch.stack([inp for inp, _ in prepared]).to(device)
    feats, transitions = extract(backbone, batch, method=method, attention_layers=config.attention_layers)
    trees = build_tree(feats, transitions, method=method, **method_options(config))
    pamr = pamr_settings(config)
    out = []
    for f, tree, (_, work) in zip(feats, trees, prepared):
        low, info = cut(tree, value)
        out.append((refine(f, low, work, pamr), info))
    return out


def name(labeler, works: list, maps: list, vocab, *, top_k: int = 3, batch_size: int = 1) -> list[dict]:
    """Name each segment: works: working images (3, h', w') float32 [0, 1]; maps: their segment
    maps (h', w') int64 (numpy or torch); vocab: an `ovseg.labels.Vocabulary`. One dense CLIP pass
    per batch, text embeddings once. -> per image {segment id: `SegmentLabel`}."""
    maps = [torch.from_numpy(m) if isinstance(m, np.ndarray) else m for m in maps]
    per_image = labeler.label_batch(list(works), maps, vocab, top_k=top_k, batch_size=batch_size)
    return [{int(lab.segment_id): lab for lab in labs} for labs in per_image]


def name_auto(labeler, works: list, maps: list, auto, *, top_k: int = 3, batch_size: int = 1):
    """Automatic names (`ovseg.labels._auto`): per image, names chosen from `auto.bank` by its
    presence rule, then each segment named with them. works, maps: as `name`; auto: an
    `AutoVocabulary`. One dense CLIP pass per batch; the bank's text embeddings once (cached).
    -> (per image {segment id: SegmentLabel}, per image the chosen names [ChosenName])."""
    feats = labeler.dense_features_batch(list(works), batch_size=batch_size)
    labels, chosen = [], []
    for work, m, f in zip(works, maps, feats):
        m = torch.from_numpy(m) if isinstance(m, np.ndarray) else m
        labs, names = label_auto(labeler, work, m, auto.bank, auto.config, top_k=top_k, features=f, progress=False)
        labels.append({int(lab.segment_id): lab for lab in labs})
        chosen.append(names)
    return labels, chosen


def assemble(array: np.ndarray, work_map: np.ndarray, *, labels: dict | None = None, names=None,
             settings: dict | None = None, source=None, source_size=None, record: dict | None = None):
    """The result at full size: array (H, W, 3) uint8, work_map (h', w') int segment ids at the
    working size (nearest-exact to (H, W), `ovseg.io.resize_nearest`), labels {id: SegmentLabel}
    and names (the vocabulary's class names) when named -> `SegmentationResult`."""
    full = _io.resize_nearest(work_map, array.shape[:2]).astype(np.int32)
    return build_result(array, full, labels or {}, names, settings or {}, source, source_size, record)


def work_size(hw: tuple[int, int], resolution: int) -> tuple[int, int]:
    """The input's size (h, w), scaled down (never up) so that its long side is at most `resolution`."""
    h, w = hw
    scale = min(1.0, resolution / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def resize_bilinear(image, size: tuple[int, int]):
    """(3, H, W) float [0, 1] -> (3, h, w): bilinear on the float image, align_corners=False, no
    antialias, as DiffCut's `F.interpolate` (METHOD.md 1). Returned as is when already that size."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(image[None], size=tuple(size), mode="bilinear", align_corners=False, antialias=False)[0]


def to_tensor(array: np.ndarray):
    """(H, W, 3) uint8 -> (3, H, W) float32 in [0, 1]."""
    array = np.ascontiguousarray(array)
    if not array.flags.writeable:  # torch warns on read-only memory (a decoded buffer, a PIL view)
        array = array.copy()
    return torch.from_numpy(array).permute(2, 0, 1).float().div_(255.0)
