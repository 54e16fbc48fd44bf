"""The three stages joined: image -> features -> segments -> names.

    seg = ovseg.Segmenter()                                   # models load on first use, once
    result = seg.label("examples/chelsea.png", "cat,floor,wall")
    result.save_png("chelsea.labels.png"); result.save_overlay("chelsea.overlay.png")

`Segmenter.process_files` is what `ovseg label` / `ovseg segment` run: many files, outputs
written atomically, done images skipped, unreadable ones reported and the rest still done.

Sizes: the backbone sees the image resized to a square of `resolution` pixels (DiffCut's
setting). Segments are brought back to the image at its own aspect, its long side at most
`resolution` (the working size: concept assignment and PAMR run there), and the results are
then at the input's full resolution (nearest-neighbour from the working size; images above
`max_pixels` are first scaled down on reading, see `ovseg.io`).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ovseg import io as _io
from ovseg._results import Segment, SegmentationResult, build_result
from ovseg._weights import WeightsNotFoundError

__all__ = ["ModelLoadError", "RunSummary", "Segment", "SegmentationResult", "Segmenter",
           "SegmenterConfig"]


class ModelLoadError(RuntimeError):
    """A model could not be built from the settings (unknown name, bad files, bad resolution)."""


@dataclass(frozen=True)
class SegmenterConfig:
    """Settings of the whole pipeline; the defaults reproduce DiffCut's open-vocabulary demos."""

    backbone: str = "ssd-1b"  # the paper's encoder: SSD-1B, a distilled SDXL UNet
    weights: str | None = None  # None: the official repo; or another repo id, or a local folder
    resolution: int | None = None  # square backbone input; None: the backbone's own (ssd-1b: 1024, the paper's)
    alpha: float = 10.0  # affinity exponent W = C**alpha, a soft threshold (paper default)
    tau: float = 0.5  # a split is kept when its NCut < tau; lower tau, fewer segments (paper)
    refine: bool = True  # PAMR on the upsampled segments (DiffCut's open-vocabulary setting)
    refine_iterations: int = 20  # DiffCut used 15 to 30 at 1024 px for demos
    refine_dilations: tuple[int, ...] = (1, 2, 4, 8, 12, 24, 32, 64)  # 1024 px demo setting
    labeler: str = "convnext_large_d_320"  # open_clip model DiffCut named segments with
    labeler_pretrained: str = "laion2b_s29b_b131k_ft_soup"
    clip_weights: str | None = None  # local folder (or repo id) of the labeler's weights
    top_k: int = 3  # alternatives kept per segment in the JSON
    device: str | None = None  # None: CUDA when available, else CPU
    dtype: str | None = None  # "float32" | "float16" | "bfloat16"; None: the backbone's choice
    batch_size: int = 1  # images per backbone pass
    max_pixels: int = _io.DEFAULT_MAX_PIXELS  # larger inputs are scaled down (see ovseg.io)
    cache: bool = True  # keep segment maps on disk, keyed by pixels and settings
    cache_dir: str | None = None  # None: ovseg._paths.cache_dir("segments")

    def __post_init__(self) -> None:
        if self.resolution is not None and self.resolution < 32:
            raise ValueError(f"resolution must be at least 32, got {self.resolution}")
        if self.alpha <= 0:
            raise ValueError(f"alpha must be positive, got {self.alpha}")
        if not 0 <= self.tau <= 2:
            raise ValueError(f"tau must lie in [0, 2] (the range of NCut), got {self.tau}")
        if self.batch_size < 1 or self.top_k < 1 or self.refine_iterations < 0:
            raise ValueError("batch_size and top_k must be >= 1, refine_iterations >= 0")
        if self.dtype not in (None, "float32", "float16", "bfloat16"):
            raise ValueError(f"dtype must be float32, float16 or bfloat16, got {self.dtype!r}")
        object.__setattr__(self, "refine_dilations", tuple(int(d) for d in self.refine_dilations))

    def segment_settings(self) -> dict:
        """The settings that change segment maps: the cache key and the JSON record them."""
        keys = ["backbone", "weights", "resolution", "alpha", "tau", "refine", "dtype"]
        out = {k: getattr(self, k) for k in keys}
        if self.resolution is None:  # the registry knows it without loading the model
            from ovseg.features import backbone_info

            out["resolution"] = backbone_info(self.backbone).resolution
        if self.refine:
            out.update(refine_iterations=self.refine_iterations, refine_dilations=self.refine_dilations)
        if self.weights and Path(self.weights).expanduser().is_dir():
            out["weights"] = str(Path(self.weights).expanduser().resolve())
        return out


@dataclass
class RunSummary:
    """What `Segmenter.process_files` did: output stems written, skipped (already done), failed."""

    done: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


class Segmenter:
    """DiffCut segmentation and CLIP naming, with models loaded once on first use.

    Segmenter(config) or Segmenter(**settings), e.g. Segmenter(tau=0.4, device="cuda").
    Images: a path, a PIL image, a numpy (H, W, 3) uint8 array or a (3, H, W) tensor in [0, 1];
    or a list of them (then a list of results comes back).
    """

    def __init__(self, config: SegmenterConfig | None = None, **settings: Any) -> None:
        config = config or SegmenterConfig()
        self.config = dataclasses.replace(config, **settings) if settings else config
        self._backbone = None
        self._labeler = None
        self._cache = None
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
                )
            except WeightsNotFoundError:
                raise
            except Exception as err:
                raise ModelLoadError(f"labeler {self.config.labeler!r}: {err}") from err
        return self._labeler

    # -- public API ---------------------------------------------------------------------------
    def segment(self, images):
        """Class-agnostic segments of one image (a result) or of a list (a list of results)."""
        many, arrays, sources, sizes = self._inputs(images)
        results = self._run(arrays, None, sources, sizes)
        return results if many else results[0]

    def label(self, images, classes):
        """Named segments. classes: a list of names ("person;people" = synonyms), a comma string
        ("dog,grass,sky"), a Vocabulary, a vocabulary file, or a shipped vocabulary ("voc")."""
        many, arrays, sources, sizes = self._inputs(images)
        results = self._run(arrays, self.vocabulary(classes), sources, sizes)
        return results if many else results[0]

    @staticmethod
    def vocabulary(classes):
        """`classes` as an `ovseg.labels.Vocabulary` (see `label`)."""
        from ovseg.labels import Vocabulary, load_vocabulary

        if isinstance(classes, Vocabulary):
            return classes
        if isinstance(classes, (str, os.PathLike)):
            if Path(classes).is_file():
                return Vocabulary.from_file(classes)
            text = str(classes)
            if "," not in text:
                try:
                    return load_vocabulary(text)
                except (KeyError, ValueError, FileNotFoundError, OSError):
                    pass  # not a shipped vocabulary: one class name
            classes = text.split(",")
        if isinstance(classes, Sequence):  # "person;people" (or "person,people") = synonyms
            return Vocabulary.from_names([str(c).strip().replace(";", ",") for c in classes])
        raise TypeError(f"classes must be names, a comma string or a Vocabulary, not {type(classes)}")

    def process_files(
        self,
        inputs: Sequence[str | os.PathLike],
        out_dir: str | os.PathLike,
        *,
        classes=None,
        overwrite: bool = False,
        progress: bool | None = None,
    ) -> RunSummary:
        """Label (classes given) or segment every image in `inputs` (files or folders), writing
        per image `<stem>.labels.png`, `<stem>.labels.overlay.png`, `<stem>.labels.json` (with
        `segments` in place of `labels` when segmenting only)
        into `out_dir`. Images whose three outputs exist are skipped unless `overwrite`.
        progress: a tqdm bar (None: only on a terminal)."""
        from tqdm.auto import tqdm

        self.config.segment_settings()  # an unknown backbone fails here, before any image
        vocab = None if classes is None else self.vocabulary(classes)
        task = "segment" if vocab is None else "label"
        out_dir = Path(out_dir)
        paths = _io.find_images(inputs, exclude=[out_dir])
        stems = _io.output_stems(paths, inputs)
        summary = RunSummary()
        pending: list[tuple[Path, dict, np.ndarray, tuple]] = []
        bar = tqdm(total=len(paths), unit="img", disable=None if progress is None else not progress)

        def flush():
            self._write_batch(pending, vocab, summary, bar)
            pending.clear()

        for path, stem in zip(paths, stems):
            outs = _io.output_paths(path, out_dir, task, stem)
            if not overwrite and all(p.is_file() for p in outs.values()):
                summary.skipped.append(path)
                bar.update()
                continue
            try:
                array, source_size = _io.read_image(path, max_pixels=self.config.max_pixels)
            except _io.ImageReadError as err:
                summary.failed.append((path, str(err)))
                bar.update()
                continue
            pending.append((path, outs, array, source_size))
            if len(pending) >= self.config.batch_size:
                flush()
        flush()
        bar.close()
        return summary

    # -- internals ----------------------------------------------------------------------------
    def _write_batch(self, pending, vocab, summary: RunSummary, bar) -> None:
        if not pending:
            return
        try:
            results = self._run([p[2] for p in pending], vocab, [str(p[0]) for p in pending],
                                [p[3] for p in pending])
        except (WeightsNotFoundError, ModelLoadError, MemoryError, KeyboardInterrupt):
            raise
        except (ValueError, RuntimeError, OSError) as err:  # this image fails, the run goes on
            if len(pending) > 1:  # find which image of the batch it was
                for item in pending:
                    self._write_batch([item], vocab, summary, bar)
                return
            summary.failed.append((pending[0][0], f"{pending[0][0]}: {type(err).__name__}: {err}"))
            bar.update()
            return
        for (path, outs, _, _), result in zip(pending, results):
            try:
                result.save_png(outs["png"])
                result.save_overlay(outs["overlay"])
                result.save_json(outs["json"], label_png=outs["png"].name)  # last: marks done
                summary.done.append(path)
            except OSError as err:
                summary.failed.append((path, f"{path}: cannot write outputs: {err}"))
            bar.update()

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

    def _run(self, arrays, vocab, sources=None, source_sizes=None) -> list[SegmentationResult]:
        import torch

        names = None if vocab is None else list(vocab.names)
        settings = self.config.segment_settings()
        results = []
        with torch.inference_mode():
            maps = self._segment_maps(arrays)
            for i, (array, work) in enumerate(zip(arrays, maps)):
                labels = {}
                if vocab is not None:
                    image = self._clip_input(array, work.shape)
                    for lab in self.labeler.label(image, torch.from_numpy(work), vocab,
                                                  top_k=self.config.top_k):
                        labels[int(lab.segment_id)] = lab
                full = _io.resize_nearest(work, array.shape[:2]).astype(np.int32)
                results.append(build_result(array, full, labels, names, settings,
                                       sources[i] if sources else None,
                                       source_sizes[i] if source_sizes else None))
        return results

    def _segment_maps(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        """Segment maps (h, w) int64 at the working size (the input, long side <= resolution)."""
        from ovseg._cache import cache_key

        settings = self.config.segment_settings()
        keys = [cache_key(a, settings) for a in arrays] if self._cache else [None] * len(arrays)
        maps = [self._cache.get(k) if self._cache else None for k in keys]
        todo = [i for i, m in enumerate(maps) if m is None]
        for chunk in _io.iter_batches(todo, self.config.batch_size):
            maps_chunk = self._cut([arrays[i] for i in chunk])
            for i, m in zip(chunk, maps_chunk):
                maps[i] = m
                if self._cache:
                    self._cache.put(keys[i], m)
        return maps

    def _cut(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        feats = self._features(arrays)
        return [self._refine(f, self._hierarchy(f).cut(), a) for f, a in zip(feats, arrays)]

    # The three steps of _cut, also called one by one by ovseg.demo (one backbone pass, then
    # recuts of the kept tree at any tau <= the build tau).
    def _features(self, arrays: list[np.ndarray]):
        """Backbone features (B, C, h, w) float32 of the images resized to the square input."""
        import torch

        backbone = self.backbone
        res = self.config.resolution or backbone.resolution
        batch = torch.stack([_to_tensor(_resize(a, (res, res))) for a in arrays]).to(self.device)
        return backbone(batch).float()

    def _hierarchy(self, feats, tau: float | None = None):
        """The NCut tree of one image's features (C, h, w), built at `tau` (default config.tau)."""
        from ovseg.masks import build_hierarchy

        return build_hierarchy(feats, alpha=self.config.alpha,
                               tau=self.config.tau if tau is None else tau)

    def _clip_input(self, array: np.ndarray, size: tuple[int, int]):
        """The labeler's input: the image at the working size `size`, (3, h', w') float in [0, 1]."""
        return _to_tensor(_resize(array, size)).to(self.device)

    def _refine(self, feats, low, array: np.ndarray) -> np.ndarray:
        """Low-res segments (h, w) -> (h', w') int64 ids 0..K-1 at the working size of `array`."""
        from ovseg.masks import PAMRConfig, refine_segments

        size = _work_size(array.shape[:2], self.config.resolution or self.backbone.resolution)
        refine = PAMRConfig(iterations=self.config.refine_iterations,  # the demo setting
                            dilations=self.config.refine_dilations) if self.config.refine else None
        seg = refine_segments(feats, low, _to_tensor(_resize(array, size)), refine=refine)
        return np.unique(seg.cpu().numpy(), return_inverse=True)[1].reshape(size)


def _work_size(hw: tuple[int, int], resolution: int) -> tuple[int, int]:
    """The input's size, scaled down (never up) so that its long side is at most `resolution`."""
    h, w = hw
    scale = min(1.0, resolution / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def _resize(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    if array.shape[:2] == tuple(size):
        return array
    return np.array(Image.fromarray(array).resize((size[1], size[0]), Image.Resampling.BICUBIC))


def _to_tensor(array: np.ndarray):
    """(H, W, 3) uint8 -> (3, H, W) float32 in [0, 1]."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).float().div_(255.0)


def _torch_dtype(name: str | None):
    if name is None:
        return None
    import torch

    return getattr(torch, name)
