"""Predictors for `evaluate`, built from ovseg's own stages (`ovseg eval` imports this module only
once every setting is checked).

The runner needs a callable `image (3, H, W) [0, 1] -> map (h, w) int`. For the unsupervised
benchmark, `sweep_predictor` makes the masks the way the published benchmark did (one hierarchy
per image, cut at every tau, masks at 128 px refined there); for the open-vocabulary protocol,
`labeler_predictor` runs `ovseg.Segmenter.label` and returns its class map.
"""
from __future__ import annotations

import itertools
from dataclasses import fields
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

import ovseg
from ovseg.evaluation._auto_names import UNMATCHED, NameMapper
from ovseg.masks import PAMRConfig, get_method
from ovseg.pipeline import Segmenter, SegmenterConfig, _preflight, stages
from ovseg.settings.defaults import AUTO_TAU_MAX
from ovseg.settings.devices import resolve_device



class Prediction(dict):
    """{variant: map}, as a predictor returns it, plus ``info``: {variant: {"k_chosen": 5, ...}}, what
    each variant's cut reported (the runner records it per image; `_runner.evaluate`)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.info: dict[str, dict] = {}


def sweep_predictor(*, taus: Sequence[float | str], backbone: str = "ssd-1b", weights: str | None = None,
                    device: str = "cpu", refine: bool = True, mask_size: int = 128, method: str = "diffcut",
                    attention_layers: Sequence[int | str] | None = None, **options) -> Callable:
    """image (3, S, S) -> {"tau=<t>": segment map (mask_size, mask_size) int64}, one per tau (a
    `Prediction`: its ``info`` holds per variant what the cut reported, e.g. {"k_chosen": 5}).

    As the published benchmark: features of the whole (already 1024 px) image, the method's tree
    built once at the largest tau and cut at every tau, segments brought to mask_size by concept
    assignment (METHOD.md 4) and refined there with PAMR, 10 iterations, dilations 1, 2, 4, 8,
    then a 3x3 median filter on the labels (`PAMRConfig.benchmark()`). The same public stages as
    `Segmenter` (`ovseg.pipeline.stages`: extract, build_tree, cut, refine); method: a name of
    `ovseg.masks.list_methods()`; options: SegmenterConfig fields (alpha=, walk_steps=, k=, ...),
    of which the method's own (`get_method(method).options`) are used, the others ignored; one
    not given (or None) is the backbone's default (alpha) or SegmenterConfig's.
    An option given as a list is swept: one tree per value (no new backbone pass), variants
    "k=4,tau=0.5" (kway: "k=4" alone, as a fixed K ignores tau). A tau of "auto" ("tau=auto") is
    ``auto_tau`` on the same tree (built up to tau = 1 then). The runner records each variant's
    info (tau_chosen, k_chosen) per image and the report averages it.
    """
    entry = get_method(method)
    pamr = PAMRConfig.benchmark() if refine else None  # METHOD.md 4, the benchmark setting
    fixed = sorted({float(t) for t in taus if t != "auto"})
    auto = any(t == "auto" for t in taus)
    top = max(fixed + ([AUTO_TAU_MAX] if auto else []))  # auto reads the tree up to tau = 1
    base = SegmenterConfig(backbone=backbone, method=method, attention_layers=attention_layers).method_settings()
    mine = {k: options[k] if options.get(k) is not None else base[k] for k in entry.options}
    min_area = options.get("min_area")  # any method's; None: the backbone's default, as label/segment
    min_area = SegmenterConfig(backbone=backbone).min_area if min_area is None else min_area
    swept = {k: list(dict.fromkeys(v)) for k, v in mine.items() if isinstance(v, list)}
    combos = [dict(zip(swept, values)) for values in itertools.product(*swept.values())] or [{}]
    plans = []  # (build options, [(variant name, tau)])
    for combo in combos:
        opts = {**mine, **combo}
        head = [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in combo.items() if len(swept[k]) > 1]
        cuts = fixed + (["auto"] if auto else [])
        if entry.setting in entry.ignores(opts):  # e.g. kway with a fixed k: one cut, named by k
            head = head or [f"{k}={opts[k]}" for k in _causes(entry, opts)]
            plans.append((opts, [(",".join(head), cuts[0])]))
            continue
        plans.append((opts, [(",".join(head + [f"{entry.setting}=auto" if t == "auto" else f"{entry.setting}={t:g}"]), t)
                             for t in cuts]))
    model = ovseg.create_backbone(backbone, weights=weights, device=device)
    model = model.eval() if hasattr(model, "eval") else model

    @torch.no_grad()
    def predict(image: torch.Tensor) -> Prediction:
        feats, walks = stages.extract(model, image[None].to(device), method=method,
                                      attention_layers=attention_layers)  # one backbone pass
        small = F.interpolate(image[None].float(), size=(mask_size, mask_size), mode="bilinear",
                              align_corners=False)[0].to(feats.device)
        out = Prediction()
        for opts, cuts in plans:
            tree = stages.build_tree(feats, walks, method=method, top=top, min_area=min_area, **opts)[0]
            for key, tau in cuts:
                low, out.info[key] = stages.cut(tree, tau)
                out[key] = torch.from_numpy(stages.refine(feats[0], low, small, pamr, compact=False))
        return out

    return predict


def _causes(entry, opts: dict) -> list[str]:
    """The options that make `entry` ignore its setting (each one's SegmenterConfig default would not)."""
    defaults = {f.name: f.default for f in fields(SegmenterConfig)}
    return [k for k in opts if k in defaults
            and entry.setting not in entry.ignores({**opts, k: defaults[k]})] or list(opts)


def labeler_predictor(*, vocabulary, offset: int = 0, backbone: str = "ssd-1b", weights: str | None = None,
                      clip_weights: str | None = None, device: str = "cpu", tau: float | str | None = None,
                      refine: bool = True, method: str = "diffcut", attention_layers=None,
                      auto_names: bool = False, **segmenter_options) -> Callable:
    """image (3, H, W) -> class map (H, W) int64 from `Segmenter.label` (-1: no class).

    vocabulary: a name in prompts/, a file, or an `ovseg.labels.Vocabulary`, in the dataset's
    class order shifted by `offset` (vocabulary class i is dataset class i - offset).
    segmenter_options: other SegmenterConfig fields (alpha=, walk_steps=, k=, or clip_resolution=2048
    as the published COCO-Object evaluation); None values: the defaults (alpha, tau: the backbone's).
    auto_names: the labeler gets no class list (automatic names from the bank); each chosen name is
    mapped to a dataset class of `vocabulary` by its words (`_auto_names.NameMapper`), unmatched
    names give no class; the predictor's `stats` counts segments and names, and the unmatched.
    """
    segmenter_options = {k: v for k, v in segmenter_options.items() if v is not None}
    segmenter = Segmenter(backbone=backbone, weights=weights, clip_weights=clip_weights, device=device,
                          tau=tau, refine=refine, cache=False, method=method,
                          attention_layers=attention_layers, **segmenter_options)
    vocab = segmenter.vocabulary(vocabulary)
    if auto_names:
        return _auto_names_predictor(segmenter, vocab, offset)

    def predict(image) -> np.ndarray:
        classes = np.asarray(segmenter.label(image, vocab).label_map).astype(np.int64)  # 255: none
        num = len(vocab.classes)
        return np.where((classes >= offset) & (classes < num), classes - offset, -1)

    return predict


def _auto_names_predictor(segmenter, vocab, offset: int) -> Callable:
    mapper = NameMapper(vocab, segmenter.auto_vocabulary().bank, offset)
    stats = {"images": 0, "segments": 0, "unmatched_segments": 0, "names": 0, "unmatched_names": 0}

    def predict(image) -> np.ndarray:
        result = segmenter.label(image, vocab="auto")
        lut = np.array([mapper(n) for n in result.classes] + [UNMATCHED], dtype=np.int64)
        none = len(lut) - 1
        index = np.array([none if s.class_index is None else s.class_index for s in result.segments])
        stats["images"] += 1
        stats["segments"] += len(index)
        stats["unmatched_segments"] += int((lut[index] == UNMATCHED).sum())
        stats["names"] += len(result.classes)
        stats["unmatched_names"] += int((lut[:-1] == UNMATCHED).sum())
        return lut[index][result.segment_map]

    predict.stats = stats
    return predict


def make_predictor(protocol: str, *, vocabulary, vocabulary_offset: int = 0, taus: Sequence[float | str],
                   backbone: str, weights: str | None, clip_weights: str | None, device: str | None,
                   refine: bool, method: str = "diffcut", attention_layers=None, dataset: str | None = None,
                   recipe: str = "ovseg", auto_names: bool = False, **options) -> Callable:
    """The predictor the `ovseg eval` command scores (tests replace this function).

    options: the cut method's SegmenterConfig fields (alpha=, walk_steps=, k=; a list is swept by
    the unsupervised sweep). recipe="published", open vocabulary: COCO-Object's CLIP input is the
    1024 px image upsampled to 2048 px, as DiffCut's open-vocabulary script; every other setting is
    already the published one.
    """
    _preflight.check_backbone_weights(backbone, weights)  # every model's weights found before any loads
    if protocol == "open-vocabulary":
        C = SegmenterConfig  # the labeler the Segmenter loads
        _preflight.check_labeler_weights(C.labeler, C.labeler_pretrained, clip_weights)

    device = str(resolve_device(device))
    mine = {k: v for k, v in options.items() if k in get_method(method).options or k == "min_area"}
    if protocol == "open-vocabulary":
        if len(taus) != 1 or any(isinstance(v, list) and len(v) != 1 for v in mine.values()):
            raise ValueError("the open-vocabulary protocol takes a single --tau (and a single value of each option)")
        if vocabulary is None:
            raise ValueError("this dataset has no shipped vocabulary: pass --vocabulary FILE "
                             "(one class per line, in the dataset's class order)")
        extra = {"clip_resolution": 2048} if recipe == "published" and dataset == "coco-object" else {}
        single = {k: v[0] if isinstance(v, list) else v for k, v in mine.items()}
        entry = get_method(method)  # a setting the method ignores here (kway's fixed k: tau) is not given
        tau = None if entry.setting in entry.ignores({**single, entry.setting: taus[0]}) else taus[0]
        return labeler_predictor(vocabulary=vocabulary, offset=vocabulary_offset, backbone=backbone,
                                 weights=weights, clip_weights=clip_weights, device=device, tau=tau,
                                 refine=refine, method=method, attention_layers=attention_layers,
                                 auto_names=auto_names, **single, **extra)
    return sweep_predictor(taus=taus, backbone=backbone, weights=weights, device=device, refine=refine,
                           method=method, attention_layers=attention_layers, **mine)
