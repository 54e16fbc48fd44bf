"""Predictors for `evaluate`, built from ovseg's own stages (imported lazily, only here).

The runner needs a callable `image (3, H, W) [0, 1] -> map (h, w) int`. For the unsupervised
benchmark, `sweep_predictor` makes the masks the way the published benchmark did (one hierarchy
per image, cut at every tau, masks at 128 px refined there); for the open-vocabulary protocol,
`labeler_predictor` runs `ovseg.Segmenter.label` and returns its class map.
"""
from __future__ import annotations

from typing import Callable, Sequence

from ovseg._defaults import ALPHA, TAU


def sweep_predictor(*, taus: Sequence[float | str], backbone: str = "ssd-1b", weights: str | None = None,
                    device: str = "cpu", alpha: float = ALPHA, refine: bool = True,
                    mask_size: int = 128, method: str = "diffcut", walk_steps: int = 1,
                    attention_layers: Sequence[int | str] | None = None) -> Callable:
    """image (3, S, S) -> {"tau=<t>": segment map (mask_size, mask_size) int64}, one per tau.

    As the published benchmark: features of the whole (already 1024 px) image, the method's tree
    built once at the largest tau and cut at every tau, segments brought to mask_size by concept
    assignment (METHOD.md 4) and refined there with PAMR, 10 iterations, dilations 1, 2, 4, 8,
    then a 3x3 median filter on the labels (`PAMRConfig.benchmark()`). The same public stages as
    `Segmenter` (`ovseg.pipeline.stages`: extract, build_tree, cut, refine); method: a name of
    `ovseg.masks.list_methods()` (walk_steps, attention_layers as in ``Segmenter``). A tau of
    "auto" ("tau=auto") is ``auto_tau`` on the same tree (built up to tau = 1 then).
    """
    import torch
    import torch.nn.functional as F

    import ovseg
    from ovseg.masks import PAMRConfig, get_method
    from ovseg.masks._random_walk import AUTO_TAU_MAX
    from ovseg.pipeline import stages

    pamr = PAMRConfig.benchmark() if refine else None  # METHOD.md 4, the benchmark setting
    fixed = sorted({float(t) for t in taus if t != "auto"})
    auto = any(t == "auto" for t in taus)
    top = max(fixed + ([AUTO_TAU_MAX] if auto else []))  # auto reads the tree up to tau = 1
    given = {"alpha": alpha, "walk_steps": walk_steps}
    options = {k: given[k] for k in get_method(method).options if k in given}
    model = ovseg.create_backbone(backbone, weights=weights, device=device)
    model = model.eval() if hasattr(model, "eval") else model

    @torch.no_grad()
    def predict(image: torch.Tensor) -> dict[str, torch.Tensor]:
        feats, walks = stages.extract(model, image[None].to(device), method=method,
                                      attention_layers=attention_layers)
        tree = stages.build_tree(feats, walks, method=method, top=top, **options)[0]
        feats = feats[0]  # (C, h, w); normalised by the cut
        small = F.interpolate(image[None].float(), size=(mask_size, mask_size), mode="bilinear",
                              align_corners=False)[0].to(feats.device)
        out = {}
        for tau in fixed + (["auto"] if auto else []):
            low, _ = stages.cut(tree, tau)
            key = "tau=auto" if tau == "auto" else f"tau={tau:g}"
            out[key] = torch.from_numpy(stages.refine(feats, low, small, pamr, compact=False))
        return out

    return predict


def labeler_predictor(*, vocabulary, offset: int = 0, backbone: str = "ssd-1b", weights: str | None = None,
                      clip_weights: str | None = None, device: str = "cpu", tau: float | str = TAU,
                      alpha: float = ALPHA, refine: bool = True, method: str = "diffcut",
                      walk_steps: int = 1, attention_layers=None,
                      **segmenter_options) -> Callable:
    """image (3, H, W) -> class map (H, W) int64 from `Segmenter.label` (-1: no class).

    vocabulary: a name in prompts/, a file, or an `ovseg.labels.Vocabulary`, in the dataset's
    class order shifted by `offset` (vocabulary class i is dataset class i - offset).
    segmenter_options: other SegmenterConfig fields (e.g. clip_resolution=2048, as the published
    COCO-Object evaluation).
    """
    import numpy as np

    from ovseg.pipeline import Segmenter

    segmenter = Segmenter(backbone=backbone, weights=weights, clip_weights=clip_weights, device=device,
                          tau=tau, alpha=alpha, refine=refine, cache=False, method=method,
                          walk_steps=walk_steps, attention_layers=attention_layers,
                          **segmenter_options)
    vocab = segmenter.vocabulary(vocabulary)

    def predict(image) -> np.ndarray:
        classes = np.asarray(segmenter.label(image, vocab).label_map).astype(np.int64)  # 255: none
        num = len(vocab.classes)
        return np.where((classes >= offset) & (classes < num), classes - offset, -1)

    return predict


def make_predictor(protocol: str, *, vocabulary, vocabulary_offset: int = 0, taus: Sequence[float | str],
                   backbone: str, weights: str | None, clip_weights: str | None, device: str | None,
                   alpha: float, refine: bool, method: str = "diffcut", walk_steps: int = 1,
                   attention_layers=None, dataset: str | None = None, recipe: str = "ovseg") -> Callable:
    """The predictor the `ovseg eval` command scores (tests replace this function).

    recipe="published", open vocabulary: COCO-Object's CLIP input is the 1024 px image upsampled to
    2048 px, as DiffCut's open-vocabulary script; every other setting is already the published one.
    """
    from ovseg._devices import resolve_device

    device = str(resolve_device(device))
    if protocol == "open-vocabulary":
        if len(taus) != 1:
            raise ValueError("the open-vocabulary protocol takes a single --tau")
        if vocabulary is None:
            raise ValueError("this dataset has no shipped vocabulary: pass --vocabulary FILE "
                             "(one class per line, in the dataset's class order)")
        extra = {"clip_resolution": 2048} if recipe == "published" and dataset == "coco-object" else {}
        return labeler_predictor(vocabulary=vocabulary, offset=vocabulary_offset, backbone=backbone,
                                 weights=weights, clip_weights=clip_weights, device=device, tau=taus[0],
                                 alpha=alpha, refine=refine, method=method, walk_steps=walk_steps,
                                 attention_layers=attention_layers, **extra)
    return sweep_predictor(taus=taus, backbone=backbone, weights=weights, device=device, alpha=alpha,
                           refine=refine, method=method, walk_steps=walk_steps,
                           attention_layers=attention_layers)
