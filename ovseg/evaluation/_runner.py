"""Run a predictor over a benchmark and accumulate its scores, resumably.

A predictor is any callable `image (3, H, W) float32 in [0, 1] -> map (h, w) int`:
a segment map (ids are arbitrary) for the unsupervised protocol, a class map (indices into the
dataset's classes; anything else = no class) for the open-vocabulary protocol. It may instead
return a dict `{variant: map}` (for example one map per tau of a sweep); each variant is then
scored separately. Maps of any size are resized to the scoring size by nearest neighbour.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from ovseg.evaluation._datasets import DatasetSpec, Sample, get_dataset
from ovseg.evaluation._matching import MATCHINGS, open_vocabulary_counts, unsupervised_counts
from ovseg.evaluation._metrics import EvaluationResult
from ovseg.io import open_image, resize_nearest, to_rgb

PROTOCOLS = ("unsupervised", "open-vocabulary")
RESULTS_FILE = "per_image.jsonl"

Predictor = Callable[[Any], Any]  # image (3, H, W) tensor -> (h, w) int map, or {variant: map}


def centre_square(height: int, width: int) -> tuple[int, int, int]:
    """(top, left, side) of the largest centred square of an H x W image."""
    side = min(height, width)
    return (height - side) // 2, (width - side) // 2, side


def prepare(spec: DatasetSpec, sample: Sample, protocol: str, image_size: int, score_size: int):
    """Read one sample. Returns (image (3, S, S) float32 [0, 1] tensor, labels (s, s) int64).

    Unsupervised: centre square crop, image resized (bilinear) to image_size, labels (nearest) to
    score_size. Open vocabulary: the whole image and the labels at full resolution.
    """
    import torch
    from PIL import Image

    labels = spec.read_label(sample.label)
    with open_image(sample.image) as im:  # ovseg.io's policy (alpha on white, 16-bit scaled);
        rgb = Image.fromarray(to_rgb(im, max_pixels=None, exif_transpose=False))  # unrotated, as labels
    if rgb.size != (labels.shape[1], labels.shape[0]):
        raise ValueError(f"{sample.image} is {rgb.size[0]}x{rgb.size[1]} but its label is "
                         f"{labels.shape[1]}x{labels.shape[0]}")
    if protocol == "unsupervised":
        top, left, side = centre_square(labels.shape[0], labels.shape[1])
        rgb = rgb.crop((left, top, left + side, top + side)).resize((image_size, image_size), Image.BILINEAR)
        labels = resize_nearest(labels[top:top + side, left:left + side], (score_size, score_size),
                                mode="torch")  # the published code resizes with torch "nearest"
    image = torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()
    return image, labels


def _as_map(pred) -> np.ndarray:
    if hasattr(pred, "detach"):
        pred = pred.detach().cpu().numpy()
    pred = np.asarray(pred)
    if pred.ndim == 3 and pred.shape[0] == 1:
        pred = pred[0]
    if pred.ndim != 2 or not (np.issubdtype(pred.dtype, np.integer) or pred.dtype == bool):
        raise TypeError(f"a predictor must return an integer (h, w) map, got {pred.dtype} {pred.shape}")
    return pred.astype(np.int64)


def settings_key(spec: DatasetSpec, protocol: str, image_size: int, score_size: int, settings: Mapping) -> str:
    """Short hash naming one evaluation setting; per-image results are kept under it."""
    blob = json.dumps({"dataset": spec.name, "protocol": protocol, "image_size": image_size,
                       "score_size": score_size, **settings}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def _load_done(path: Path, key: str, infos: dict | None = None) -> dict[str, dict]:
    """Counts per image id of the records under `key`; their cut info goes into `infos`."""
    done: dict[str, dict] = {}
    if not path.is_file():
        return done
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by an interruption: that image reruns
            continue
        if record.get("settings") == key:
            done[record["image"]] = record["counts"]
            if infos is not None and record.get("info"):
                infos[record["image"]] = record["info"]
    return done


def _numbers(info) -> dict:
    """The numeric entries of a cut's info ({"k_chosen": 5, "tau_chosen": 0.41}), JSON-safe."""
    return {k: float(v) if isinstance(v, float) else int(v) for k, v in (info or {}).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def chosen_summary(infos: list[dict]) -> dict:
    """Per info key (k_chosen, tau_chosen) over images: {"mean", "min", "max", "images"}."""
    out = {}
    for key in dict.fromkeys(k for info in infos for k in info):
        values = [info[key] for info in infos if key in info]
        out[key] = {"mean": float(np.mean(values)), "min": min(values), "max": max(values), "images": len(values)}
    return out


def evaluate(dataset: str | DatasetSpec, predictor: Predictor, *, root: str | Path | None = None,
             image_list: str | Path | None = None, samples: list[Sample] | None = None,
             protocol: str = "unsupervised", limit: int | None = None, out: str | Path | None = None,
             settings: Mapping | None = None, image_size: int = 1024, score_size: int = 128,
             matching: str | None = None, progress: bool = True,
             recipe: str = "ovseg") -> EvaluationResult | dict[str, EvaluationResult]:
    """Score `predictor` on a dataset with the published protocol (see docs/evaluation.md).

    dataset: a registered name (`list_datasets()`) or a DatasetSpec; images come from `root`
    (and `image_list`), or from `samples`. limit: first N images only. out: folder where
    per-image TP/FP/FN are appended (per_image.jsonl), keyed by image id and a hash of the
    settings, so an interrupted run resumes where it stopped. settings: what identifies the
    predictor (tau, alpha, backbone...): recorded, and part of that key. matching: "present"
    (ovseg's rule) or "published" (the published code's rule, for comparison; docs/evaluation.md);
    None: "present", or "published" with recipe="published".
    recipe: "ovseg" (ovseg's protocol) or "published" (DiffCut's preprocessing, label rules and
    averaging, `ovseg.evaluation._published`; docs/fidelity.md): crop min(H, W) - 1, float bilinear
    resize, labels nearest-exact, VOC/COCO-Object 255 as background, ADE20K raw 0..149 scored and
    150 dropped; open vocabulary scored at image_size per image, mIoU averaged over images.
    Returns one EvaluationResult, or {variant: EvaluationResult} if the predictor returns dicts.
    """
    from ovseg.evaluation import _published

    if recipe not in _published.RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose one of {', '.join(_published.RECIPES)}")
    matching = matching or ("published" if recipe == "published" else "present")
    spec = get_dataset(dataset) if isinstance(dataset, str) else dataset
    if recipe == "published":
        spec = _published.published_spec(spec)
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    if matching not in MATCHINGS:
        raise ValueError(f"unknown matching {matching!r}; choose one of {', '.join(MATCHINGS)}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be positive, got {limit}")
    if samples is None:
        if root is None:
            raise ValueError("give the dataset's root folder (root=) or its samples (samples=)")
        samples = spec.samples(root, image_list)
    if out is not None and not settings:
        raise ValueError(
            "resumable output (out=) needs settings= that identify the predictor (e.g. backbone, weights, "
            "tau, device, dtype): per-image results are keyed by them, and without them a rerun with a "
            "different predictor would silently reuse the old results")
    samples = list(samples)[:limit] if limit else list(samples)
    settings = dict(settings or {})
    if protocol == "unsupervised":
        settings["matching"] = matching
    if recipe != "ovseg":  # the ovseg recipe's key is unchanged, so earlier results still resume
        settings["recipe"] = recipe
    key = settings_key(spec, protocol, image_size, score_size, settings)
    read = _published.prepare_published if recipe == "published" else prepare

    results_path = None
    done: dict[str, dict] = {}
    infos: dict[str, dict] = {}  # image id -> {variant: what its cut reported (k_chosen, tau_chosen)}
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        results_path = Path(out) / RESULTS_FILE
        done = _load_done(results_path, key, infos)

    from tqdm.auto import tqdm

    todo = [s for s in samples if s.id not in done]
    bar = tqdm(total=len(samples), initial=len(samples) - len(todo), disable=not progress,
               desc=f"{spec.name} ({protocol})", unit="img")
    handle = open(results_path, "a") if results_path else None
    if handle and results_path.stat().st_size and not results_path.read_bytes().endswith(b"\n"):
        handle.write("\n")  # after a line cut short by an interruption, start on a fresh line
    try:
        for sample in todo:
            image, labels = read(spec, sample, protocol, image_size, score_size)
            prediction = predictor(image)
            maps = prediction if isinstance(prediction, Mapping) else {"": prediction}
            counts = {}
            for variant, pred in maps.items():
                pred = resize_nearest(_as_map(pred), labels.shape, mode="torch")
                if protocol == "unsupervised":
                    c = unsupervised_counts(labels, pred, spec.num_classes, background=spec.background,
                                            matching=matching)
                else:
                    c = open_vocabulary_counts(labels, pred, spec.num_classes)
                counts[str(variant)] = c.tolist()
            done[sample.id] = counts
            info = {str(v): _numbers(i) for v, i in (getattr(prediction, "info", None) or {}).items() if _numbers(i)}
            if info:
                infos[sample.id] = info
            if handle:
                handle.write(json.dumps({"settings": key, "image": sample.id, "counts": counts,
                                         **({"info": info} if info else {})}) + "\n")
                handle.flush()
            bar.update(1)
    finally:
        bar.close()
        if handle:
            handle.close()

    totals: dict[str, np.ndarray] = {}
    images: dict[str, int] = {}
    per_image: dict[str, list[float]] = {}
    for sample in samples:
        for variant, c in done[sample.id].items():
            totals[variant] = totals.get(variant, 0) + np.asarray(c, dtype=np.int64)
            images[variant] = images.get(variant, 0) + 1
            per_image.setdefault(variant, []).append(_published.image_jaccard(c))
    by_image = recipe == "published" and protocol == "open-vocabulary"  # torchmetrics per image, averaged
    chosen = {variant: chosen_summary([infos[s.id][variant] for s in samples
                                       if variant in infos.get(s.id, {})]) for variant in totals}
    results = {
        variant: EvaluationResult(spec.name, protocol, spec.classes, totals[variant], images[variant],
                                  {**settings, **({"variant": variant} if variant else {}), **chosen[variant]},
                                  image_miou=float(np.nanmean(per_image[variant])) if by_image else None)
        for variant in totals
    }
    if set(results) == {""}:
        return results[""]
    return results
