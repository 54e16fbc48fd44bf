"""The three stages joined: image -> features -> segments -> names.

    seg = ovseg.Segmenter()                                   # models load on first use, once
    result = seg.label("examples/chelsea.png", "cat,floor,wall")
    result.save_png("chelsea.labels.png"); result.save_overlay("chelsea.overlay.png")

`Segmenter.process_files` is what `ovseg label` / `ovseg segment` run: many files, outputs
written atomically, done images skipped, unreadable ones reported and the rest still done.

Sizes (defaults = DiffCut's published open-vocabulary path, docs/fidelity.md): the backbone sees
the image resized to a square of `resolution` pixels by bilinear interpolation of the float image
(`F.interpolate`, align_corners=False, no antialias). With `work_aspect="square"` (default),
concept assignment, PAMR and CLIP naming all run on that res x res square; the square map is then
mapped back to the input's own size and aspect by nearest neighbour with pixel centres aligned
(`ovseg.io.resize_nearest`): output pixel (i, j) of an H x W image takes square pixel
(floor((i + 0.5) * res / H), floor((j + 0.5) * res / W)). With
`work_aspect="image"`, they run at the image's own aspect, long side at most `resolution`, and
the map is brought to full size the same way. Images above `max_pixels` are first scaled down on
reading (see `ovseg.io`).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ovseg import io as _io
from ovseg._checks import SettingError, check_output_dir, looks_like_file as _looks_like_file
from ovseg._config import SegmenterConfig
from ovseg._results import OUTPUT_FORMAT_VERSION, Segment, SegmentationResult, build_result, output_status
from ovseg._weights import WeightsNotFoundError

__all__ = ["ModelLoadError", "RunSummary", "Segment", "SegmentationResult", "Segmenter",
           "SegmenterConfig", "SettingError"]


class ModelLoadError(RuntimeError):
    """A model could not be built from the settings (unknown name, bad files, bad resolution)."""


@dataclass
class RunSummary:
    """What `Segmenter.process_files` did, per input image: done (outputs written), skipped (outputs
    up to date), failed (with the reason); `redone` lists the done images whose earlier outputs were
    made with other settings, vocabulary or output format (so they were redone, not skipped)."""

    done: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    redone: list[Path] = field(default_factory=list)


class Segmenter:
    """DiffCut segmentation and CLIP naming, with models loaded once on first use.

    Segmenter(config) or Segmenter(**settings), e.g. Segmenter(tau=0.4, device="cuda"); the
    settings are the fields of `SegmenterConfig`, checked on construction (ValueError).

    Arguments:
      backbone (str): feature extractor, a name of `ovseg.list_backbones()`; "ssd-1b" (the paper's).
      weights (str | None): backbone weights: None for the official repo, another Hugging Face
        repo id ("org/name"), or a local folder (a value that looks like a path must exist).
      resolution (int | None): square backbone input in pixels, a multiple of the backbone's
        stride; None: the backbone's own (1024 for ssd-1b, the paper's).
      alpha (float | None): affinity exponent, W = C**alpha; finite and > 0. None: the
        backbone's default (`ovseg.backbone_info(name).alpha`; ssd-1b: 10, the paper's).
      tau (float | "auto" | None): NCut threshold in [0, 2]; a split is kept when its NCut < tau;
        None: the backbone's default (ssd-1b: 0.5, the paper's; docs/benchmarks-real.md lists
        each); "auto" picks it per image from the hierarchy (docs/random-walk.md; the JSON records
        the chosen value as tau_chosen). The JSON records the values used.
      method (str): "diffcut" (recursive NCut of the feature affinity, the paper) or
        "random-walk" (NCut of the backbone's self-attention read as a random walk, seed 002).
      walk_steps (int): random-walk only: k of the k-step walk P^k (1); larger k merges more.
      attention_layers (tuple | None): random-walk only: self-attention layers combined (names or
        indices); None: every layer the backbone's pass runs through (docs/random-walk.md).
      refine (bool): refine the upsampled segments with PAMR (DiffCut's open-vocabulary setting).
      refine_iterations (int): PAMR iterations (15, DiffCut's open-vocabulary setting).
      refine_dilations (tuple[int, ...]): PAMR neighbourhood dilations (DiffCut's 1024 px setting).
      refine_filter (str): 3x3 label filter after PAMR: "median" (DiffCut), "mode" (majority,
        never invents a minority id) or "none".
      work_aspect (str): "square": assign, refine and name segments on the backbone's res x res
        input, as DiffCut, then map back to the image; "image": at the image's own aspect.
      labeler (str): open_clip model naming the segments ("convnext_large_d_320", DiffCut's).
      labeler_pretrained (str): its open_clip pretrained tag ("laion2b_s29b_b131k_ft_soup").
      clip_weights (str | None): local folder (or repo id) of the labeler's weights.
      clip_resolution (int | None): CLIP input short side; None: the working image as is (the
        backbone's square by default, as DiffCut); 320 is several times faster on a CPU.
      clip_normalize (bool): CLIP's mean/std on its input (False: raw [0, 1], as DiffCut's code).
      clip_pooling (str): "binary" (segment masks nearest-exact on the CLIP grid, DiffCut) or
        "area" (area-weighted masks).
      top_k (int): alternatives kept per segment in the JSON (3).
      device (str | None): "cpu", "cuda", "cuda:1", "mps"; None: CUDA when available, else CPU.
      dtype (str | None): backbone precision "float32" | "float16" | "bfloat16"; None: float16
        on CUDA, float32 on the CPU.
      batch_size (int): images per backbone pass and dense CLIP pass (1).
      overlap (bool): process_files decodes ahead and writes behind in background threads
        (True); the outputs are the same bytes either way (`ovseg._runner`).
      max_pixels (int): inputs (files and arrays) above this many pixels are scaled down first
        (default 2**25, about 33.5 MP; see `ovseg.io`).
      cache (bool): keep segment maps (and class-name embeddings) on disk, keyed by pixels and
        settings, so relabelling skips the backbone (see `ovseg._cache`).
      cache_dir (str | None): folder of the segment cache; None: `$OVSEG_CACHE/segments`.

    Images, for `segment` and `label`: a path, a PIL image, a numpy array (H, W, 3|4) or (H, W)
    (uint8, uint16 scaled by 1/257, or float in [0, 1]; NaN/inf refused) or a tensor (3, H, W)
    in [0, 1]; or a list of them (then a list of results comes back).
    """

    def __init__(self, config: SegmenterConfig | None = None, **settings: Any) -> None:
        if config is None:
            config = SegmenterConfig(**settings)
        elif settings:
            if "backbone" in settings:  # alpha/tau that came from the old backbone: the new one's
                settings = {**{k: None for k in getattr(config, "_from_backbone", ())}, **settings}
            config = dataclasses.replace(config, **settings)
        self.config = config
        self._backbone = None
        self._labeler = None
        self._cache = None
        self._key_settings = None
        if self.config.cache:
            from ovseg._cache import SegmentCache

            self._cache = SegmentCache(self.config.cache_dir)

    # -- models, loaded lazily --------------------------------------------------------------
    @property
    def device(self):
        import torch

        return torch.device(self.config.device or ("cuda" if torch.cuda.is_available() else "cpu"))

    @property
    def backbone(self):
        if self._backbone is None:
            from ovseg.features import create_backbone

            try:
                backbone = create_backbone(self.config.backbone, weights=self.config.weights,
                                           device=self.device, dtype=_torch_dtype(self.config.dtype))
            except WeightsNotFoundError:
                raise
            except Exception as err:
                raise ModelLoadError(f"backbone {self.config.backbone!r}: {err}") from err
            res = self.config.resolution or backbone.resolution
            if res % backbone.stride:
                raise ModelLoadError(
                    f"resolution {res} is not a multiple of the {self.config.backbone} backbone's "
                    f"stride {backbone.stride}; try {res // backbone.stride * backbone.stride}"
                )
            self._backbone = backbone.eval()
        return self._backbone

    @property
    def labeler(self):
        if self._labeler is None:
            from ovseg.labels import create_labeler

            try:
                self._labeler = create_labeler(
                    self.config.labeler, self.config.labeler_pretrained,
                    weights=self.config.clip_weights, device=self.device,
                    dtype=_torch_dtype(self.config.dtype) if self.device.type == "cuda" else None,
                    resolution=self.config.clip_resolution, normalize=self.config.clip_normalize,
                    pooling=self.config.clip_pooling,
                    **self._labeler_options(),
                )
            except WeightsNotFoundError:
                raise
            except Exception as err:
                raise ModelLoadError(f"labeler {self.config.labeler!r}: {err}") from err
        return self._labeler

    def _labeler_options(self) -> dict:
        """LabelerConfig options the Segmenter sets (--no-cache: no text-embedding disk cache)."""
        return {"disk_cache": self.config.cache}

    # -- public API ---------------------------------------------------------------------------
    def segment(self, images):
        """Class-agnostic segments.

        images: one image or a list (see the class docstring).
        Returns a `SegmentationResult` (a list of them for a list): `segment_map` (H, W) int32
        segment ids 0..K-1 at the input's resolution, `segments` (id, area, COCO bbox, mask),
        `classes` None; `save_png`, `save_overlay`, `save_json`, `to_json` write it.
        """
        many, arrays, sources, sizes = self._inputs(images)
        results = self._run(arrays, None, sources, sizes)
        return results if many else results[0]

    def label(self, images, classes=None, *, vocab=None):
        """Named segments.

        images: one image or a list (see the class docstring).
        classes: class names, see `vocabulary`: a list ("person;people" = synonyms), a comma
            string ("dog,grass,sky"), a Vocabulary, a vocabulary file or a shipped name ("voc").
        vocab: instead of classes, a shipped vocabulary name or a vocabulary file (never read as
            a class name: a mistyped name is an error).
        Returns a `SegmentationResult` (a list of them for a list): as `segment`, plus `classes`
        (the vocabulary's names), and per segment `class_index`, `class_name`, `score` and the
        top-k `alternatives`; `label_map` (H, W) int32 gives each pixel's class index.
        """
        many, arrays, sources, sizes = self._inputs(images)
        results = self._run(arrays, self.vocabulary(classes, vocab=vocab), sources, sizes)
        return results if many else results[0]

    @staticmethod
    def vocabulary(classes=None, *, vocab=None):
        """`classes` (or `vocab`) as an `ovseg.labels.Vocabulary`.

        classes: a Vocabulary; a list of names ("person;people" = synonyms); a string: an
            existing file is a vocabulary file, a path-like string (with a path separator or a
            file suffix such as ".txt") that is no file is an error, a string with commas is
            names, a shipped vocabulary's name ("voc", `ovseg.labels.list_vocabularies()`) is
            that vocabulary, and any other single word is one class name (a warning names close
            shipped vocabularies, in case it was meant as one: use vocab= to be explicit).
        vocab: a shipped vocabulary name or a vocabulary file; unknown names are an error.
        Returns the Vocabulary; raises ValueError (VocabularyError) or TypeError.
        """
        from ovseg.labels import Vocabulary, VocabularyError, list_vocabularies, load_vocabulary

        if (classes is None) == (vocab is None):
            raise TypeError("give exactly one of classes and vocab")
        if vocab is not None:
            return vocab if isinstance(vocab, Vocabulary) else load_vocabulary(vocab)
        if isinstance(classes, Vocabulary):
            return classes
        if isinstance(classes, (str, os.PathLike)):
            text = str(classes)
            if Path(text).expanduser().is_file():
                return Vocabulary.from_file(text)
            if _looks_like_file(text):
                raise VocabularyError(f"{text}: no such vocabulary file")
            if "," not in text:
                try:
                    return load_vocabulary(text)
                except (KeyError, ValueError, OSError):
                    import difflib
                    import warnings

                    close = difflib.get_close_matches(text.strip().lower().replace("-", "_"),
                                                      list_vocabularies(), n=3, cutoff=0.75)
                    if close:
                        warnings.warn(f"{text!r} is taken as one class name; did you mean the shipped "
                                      f"vocabulary {' or '.join(map(repr, close))}? (pass vocab=...)",
                                      UserWarning, stacklevel=3)
            classes = text.split(",")
        if isinstance(classes, Sequence):  # "person;people" (or "person,people") = synonyms
            return Vocabulary.from_names([str(c).strip().replace(";", ",") for c in classes])
        raise TypeError(f"classes must be names, a comma string or a Vocabulary, not {type(classes)}")

    def run_record(self, vocab=None) -> dict:
        """What outputs made now would record (in their JSON's "record"): the output format version,
        the segment settings, `max_pixels`, and for labelling the vocabulary (classes with their
        synonyms, prompt templates, labeler, its weights, top_k). An existing output is reused
        only when its record equals this one (`ovseg._results.output_status`)."""
        record = {"format_version": OUTPUT_FORMAT_VERSION, "task": "segment" if vocab is None else "label",
                  "settings": self.config.segment_settings(), "max_pixels": self.config.max_pixels}
        if vocab is not None:
            from ovseg.labels import load_templates

            clip = self.config.clip_weights
            if clip and Path(clip).expanduser().is_dir():
                clip = str(Path(clip).expanduser().resolve())
            record["vocabulary"] = {
                "classes": [list(syns) for syns in vocab.classes],
                "templates": list(load_templates(self._labeler_options().get("templates", "vild"))),
                "labeler": self.config.labeler, "labeler_pretrained": self.config.labeler_pretrained,
                "clip_weights": clip, "top_k": self.config.top_k,
                "clip_resolution": self.config.clip_resolution, "clip_normalize": self.config.clip_normalize,
                "clip_pooling": self.config.clip_pooling,
            }
        return record

    def process_files(
        self,
        inputs: str | os.PathLike | Sequence[str | os.PathLike],
        out_dir: str | os.PathLike,
        *,
        classes=None,
        vocab=None,
        overwrite: bool = False,
        progress: bool | None = None,
    ) -> RunSummary:
        """Label (classes or vocab given) or segment every image in `inputs`, writing per image
        `<stem>.labels.png`, `<stem>.labels.overlay.png` and `<stem>.labels.json` (`segments` in
        place of `labels` when segmenting only) into `out_dir`.

        inputs: a file or folder, or a list of them (folders are searched recursively; ovseg's own
            outputs found there are left out, so `out_dir` may lie inside an input folder).
        classes, vocab: as `label`; neither: segment only.
        overwrite: redo every image. Otherwise an image is skipped only when its outputs exist and
            its JSON records the same settings, vocabulary and output format (`run_record`); those
            made otherwise are redone (counted in `RunSummary.redone`).
        progress: a tqdm bar (None: only on a terminal).
        Returns a RunSummary. An image that cannot be read or processed is listed as failed and
        the run goes on; settings errors (SettingError), missing weights and models that cannot
        load stop it before or at the first image.
        """
        from tqdm.auto import tqdm

        vocab = None if classes is None and vocab is None else self.vocabulary(classes, vocab=vocab)
        self.config.validate()  # before any model loads
        check_output_dir(out_dir)
        jobs = self.plan_files(inputs, out_dir, "segment" if vocab is None else "label")
        record = self.run_record(vocab)
        summary = RunSummary()
        bar = tqdm(total=len(jobs), unit="img", disable=None if progress is None else not progress)
        todo = []
        for path, outs in jobs:
            status = "missing" if overwrite else output_status(outs["json"], record, [outs["png"], outs["overlay"]])
            if status == "current":
                summary.skipped.append(path)
                bar.update()
                continue
            if status == "changed":
                summary.redone.append(path)
            todo.append((path, outs))
        from ovseg._runner import run_files

        try:  # read, process and write, overlapped when config.overlap (ovseg._runner)
            run_files(self, todo, vocab, summary, bar)
        finally:
            bar.close()
        done = set(summary.done)
        summary.redone = [p for p in summary.redone if p in done]
        return summary

    @staticmethod
    def plan_files(inputs, out_dir: str | os.PathLike, task: str) -> list[tuple[Path, dict[str, Path]]]:
        """(image path, its output paths {"png", "overlay", "json"}) for every image in `inputs` (a
        file or folder, or a list of them; each must exist), in order. Files ovseg wrote are left
        out of folders (see `ovseg.io.find_images`)."""
        inputs = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
        for item in inputs:
            if not isinstance(item, (str, os.PathLike)):
                raise TypeError(f"inputs must be paths of files or folders, got {type(item).__name__}")
            if not Path(item).exists():
                raise FileNotFoundError(f"no such file or folder: {item}")
        paths = _io.find_images(inputs)
        stems = _io.output_stems(paths, inputs)
        return [(p, _io.output_paths(p, Path(out_dir), task, stem)) for p, stem in zip(paths, stems)]

    @staticmethod
    def write_outputs(result: SegmentationResult, outs: dict[str, Path]) -> None:
        """Write one image's label PNG, overlay and JSON (the JSON last: it marks the image done)."""
        result.save_png(outs["png"])
        result.save_overlay(outs["overlay"])
        result.save_json(outs["json"], label_png=outs["png"].name)

    # -- internals ----------------------------------------------------------------------------
    def _inputs(self, images) -> tuple[bool, list[np.ndarray], list, list]:
        """-> (a list was given, arrays (H, W, 3) uint8, sources (path or None), source sizes)."""
        many = isinstance(images, (list, tuple)) or (
            type(images).__module__.startswith("torch") and images.ndim == 4
        )
        arrays, sources, sizes = [], [], []
        for item in list(images) if many else [images]:
            if isinstance(item, (str, os.PathLike)):
                array, size = _io.read_image(item, max_pixels=self.config.max_pixels)
                sources.append(str(item))
            else:
                array = _io.as_rgb_array(item, max_pixels=self.config.max_pixels)
                size = None
                sources.append(None)
            arrays.append(array)
            sizes.append(size)
        return many, arrays, sources, sizes

    def _prepare(self, array: np.ndarray):
        """(H, W, 3) uint8 -> (backbone input (3, res, res), working image (3, h, w)), float32 in
        [0, 1]: the CPU work before the models (process_files does it in reader threads). The
        working image is the square itself (work_aspect="square") or the image at its own aspect."""
        res = self.config.segment_settings()["resolution"]
        image = _to_tensor(array)
        square = _resize(image, (res, res))  # DiffCut: bilinear on the float image
        if self.config.work_aspect == "square":  # assignment, PAMR and naming on the backbone's input
            return square, square
        return square, _resize(image, _work_size(array.shape[:2], res))

    def _run(self, arrays, vocab, sources=None, source_sizes=None, prepared=None) -> list[SegmentationResult]:
        import torch

        names = None if vocab is None else list(vocab.names)
        settings = self.config.segment_settings()
        record = self.run_record(vocab)
        prepared = prepared or [self._prepare(a) for a in arrays]
        results = []
        with torch.inference_mode():
            maps, infos = self._segment_maps(arrays, prepared)
            labels = [{} for _ in arrays]
            if vocab is not None:  # one dense CLIP pass per batch, text embeddings once
                per_image = self.labeler.label_batch([work for _, work in prepared],
                                                     [torch.from_numpy(m) for m in maps], vocab,
                                                     top_k=self.config.top_k, batch_size=self.config.batch_size)
                labels = [{int(lab.segment_id): lab for lab in labs} for labs in per_image]
            for i, (array, work) in enumerate(zip(arrays, maps)):
                full = _io.resize_nearest(work, array.shape[:2]).astype(np.int32)
                results.append(build_result(array, full, labels[i], names, {**settings, **infos[i]},
                                       sources[i] if sources else None,
                                       source_sizes[i] if source_sizes else None, record))
        return results

    def _segment_maps(self, arrays: list[np.ndarray], prepared: list) -> tuple[list[np.ndarray], list[dict]]:
        """Segment maps (h, w) int64 at the working size (res x res, or with
        work_aspect="image" the input's aspect, long side <= resolution), and
        per image what the JSON records beyond the settings (with tau="auto": tau_chosen);
        prepared: `_prepare` of each array."""
        from ovseg._cache import cache_key

        keys = [cache_key(a, self.cache_settings()) for a in arrays] if self._cache else [None] * len(arrays)
        entries = [self._cache.load(k) if self._cache else None for k in keys]
        maps = [None if e is None else e[0] for e in entries]
        infos = [{} if e is None else e[1] for e in entries]
        todo = [i for i, m in enumerate(maps) if m is None]
        for chunk in _io.iter_batches(todo, self.config.batch_size):
            for i, (m, info) in zip(chunk, self._cut([prepared[i] for i in chunk])):
                maps[i], infos[i] = m, info
                if self._cache:
                    self._cache.put(keys[i], m, info)
        return maps, infos

    def cache_settings(self) -> dict:
        """The segment cache's key settings (`ovseg._cache.key_settings`): segment settings, device
        type, resolved dtype (float16 on CUDA, float32 elsewhere when dtype is None), a fingerprint
        of the backbone weights and the segment code version. Computed once, without a model."""
        if self._key_settings is None:
            from ovseg._cache import key_settings, weights_fingerprint
            from ovseg.features import backbone_info

            device = self.device
            dtype = self.config.dtype or ("float16" if device.type == "cuda" else "float32")
            weights_id = weights_fingerprint(self.config.weights, backbone_info(self.config.backbone).repo_id)
            self._key_settings = key_settings(self.config.segment_settings(), device_type=device.type,
                                              dtype=dtype, weights_id=weights_id)
        return self._key_settings

    def _cut(self, prepared: list) -> list[tuple[np.ndarray, dict]]:
        """prepared: `_prepare` outputs -> (segment map (h, w) int64 at the working size, info)."""
        from ovseg.masks import segment_image

        cfg = self.config
        feats, walks = self._features(prepared)
        out = []
        for f, P, (_, work) in zip(feats, walks, prepared):
            low, tau = segment_image(f, P, method=cfg.method, tau=cfg.tau, alpha=cfg.alpha,
                                     steps=cfg.walk_steps)  # (h, w), the tau used
            info = {"tau_chosen": tau} if cfg.tau == "auto" else {}
            out.append((self._refine(f, low, work), info))
        return out

    # The steps of _cut, also called one by one by ovseg.demo (one backbone pass, then recuts of
    # the kept tree at any tau <= the build tau).
    def _features(self, prepared: list):
        """One backbone pass -> (features (B, C, h, w) float32, per image the random-walk
        transition matrix P (h*w, h*w), or None with method="diffcut")."""
        import torch
        from ovseg.masks import capture_transitions

        batch = torch.stack([inp for inp, _ in prepared]).to(self.device)
        if self.config.method == "random-walk":  # the combined attention walk P (B, N, N)
            return capture_transitions(self.backbone, batch, self.config.attention_layers)
        return self.backbone(batch).float(), [None] * len(prepared)

    def _hierarchy(self, feats, transition=None, tau: float | None = None):
        """The NCut tree of one image (features (C, h, w), and P for random-walk), built at a
        numeric `tau` (default: config.tau)."""
        from ovseg.masks import hierarchy_builder

        cfg = self.config
        tau = cfg.tau if tau is None else tau
        if tau == "auto":
            raise ValueError('a tree is built at a numeric tau; "auto" is a cut of it (masks.cut_auto)')
        build = hierarchy_builder(feats, transition, method=cfg.method, alpha=cfg.alpha, steps=cfg.walk_steps)
        return build(float(tau))

    def _refine(self, feats, low, work) -> np.ndarray:
        """Low-res segments (h, w) -> (h', w') int64 ids 0..K-1 on the working image `work`
        (3, h', w') (concept assignment, then PAMR: `masks.refine_segments`)."""
        from ovseg.masks import PAMRConfig, refine_segments

        cfg = self.config
        refine = PAMRConfig(iterations=cfg.refine_iterations, dilations=cfg.refine_dilations,
                            label_filter=cfg.refine_filter) if cfg.refine else None
        seg = refine_segments(feats, low, work, refine=refine)
        return np.unique(seg.cpu().numpy(), return_inverse=True)[1].reshape(work.shape[-2:])


def _work_size(hw: tuple[int, int], resolution: int) -> tuple[int, int]:
    """The input's size, scaled down (never up) so that its long side is at most `resolution`."""
    h, w = hw
    scale = min(1.0, resolution / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def _resize(image, size: tuple[int, int]):
    """(3, H, W) float [0, 1] -> (3, h, w): bilinear on the float image, align_corners=False, no
    antialias, as DiffCut's `F.interpolate` (METHOD.md 1). Returned as is when already that size."""
    import torch.nn.functional as F

    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(image[None], size=tuple(size), mode="bilinear", align_corners=False, antialias=False)[0]


def _to_tensor(array: np.ndarray):
    """(H, W, 3) uint8 -> (3, H, W) float32 in [0, 1]."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).float().div_(255.0)


def _torch_dtype(name: str | None):
    if name is None:
        return None
    import torch

    return getattr(torch, name)
