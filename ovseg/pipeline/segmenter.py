"""`Segmenter`: settings + models, and the stages (`ovseg.pipeline.stages`) joined.

    seg = ovseg.Segmenter()                                   # models load on first use, once
    result = seg.label("examples/chelsea.png", "cat,floor,wall")
    result.save_png("chelsea.labels.png"); result.save_overlay("chelsea.overlay.png")

`Segmenter.process_files` is what `ovseg label` / `ovseg segment` run: it plans the files and
hands the plan and its stages to the file runner (`_runner.process_files`).
"""
from __future__ import annotations

import os
import warnings
from functools import partial
from typing import Any, Sequence

import numpy as np
import torch

from ovseg import io as _io
from ovseg.io.cache import SegmentCache, cache_key
from ovseg.labels._auto import auto_vocabulary
from ovseg.labels._classes import as_vocabulary
from ovseg.pipeline import _files, _records, _runner, _vocab, stages
from ovseg.pipeline._models import Models
from ovseg.pipeline._results import RunSummary, SegmentationResult
from ovseg.settings.checks import check_output_dir
from ovseg.settings.config import SETTINGS_DOC, SegmenterConfig
from ovseg.settings.devices import resolve_device

__all__ = ["Segmenter"]


class Segmenter:
    """DiffCut segmentation and CLIP naming, with models loaded once on first use.

    Segmenter(config) or Segmenter(**settings), e.g. Segmenter(tau=0.4, device="cuda"); the
    settings are the fields of `SegmenterConfig`, checked on construction (SettingError, a
    ValueError); each is described below.

    models: a `Models` to use (given or shared backbone and labeler); None: built from the config
    on first use. `seg.models.backbone` / `seg.models.labeler` load them.

    Images, for `segment` and `label`: a path, a PIL image, a numpy array (H, W, 3|4) or (H, W)
    (uint8, uint16 scaled by 1/257, or float in [0, 1]; NaN/inf refused) or a tensor (3, H, W)
    in [0, 1]; or a list of them (then a list of results comes back). A folder is its image files,
    sorted, subfolders too, as `ovseg label` takes it (a list comes back; all in memory: for many
    images `process_files` writes each image's files as it goes).
    """

    vocabulary = staticmethod(as_vocabulary)  # classes / vocab -> Vocabulary (ovseg.labels._classes)

    def __init__(self, config: SegmenterConfig | None = None, *, models: Models | None = None,
                 **settings: Any) -> None:
        if config is None:
            config = SegmenterConfig(**settings)  # every check that needs no model, torch-free
        elif settings:  # alpha/tau that came from the backbone: filled again (a new backbone's)
            config = config.replace(**settings)
        self.config = config
        self.models = models if models is not None else Models(self.config)
        if self.models.config is None:
            self.models.config = self.config
        self.cache = SegmentCache(self.config.cache_dir) if self.config.cache else None  # the segment cache
        self._auto = self._key_settings = None  # the AutoVocabulary, the cache key's settings: once needed
        self._validated = False  # config.validate() done: once per Segmenter, before any model loads

    device = property(lambda self: resolve_device(self.config.device),
                      doc="torch.device of config.device (`ovseg.settings.devices.resolve_device`).")

    def validate(self) -> None:
        """`config.validate()` (the device, the dtype on it: torch), once; every run calls it first."""
        if not self._validated:
            self.config.validate()
            self._validated = True

    def preflight(self, *, labels: bool) -> None:
        """Before any model loads: `validate`, then the weights of each model still to build (the backbone;
        the labeler when `labels`) on disk, cached or downloadable, in seconds (else WeightsNotFoundError)."""
        self.validate()
        self.models.check_weights(labels=labels)

    backbone = property(lambda self: self.models.backbone, doc="The backbone (`Models`), built on first use.")
    labeler = property(lambda self: self.models.labeler, doc="The labeler (`Models`), built on first use.")

    def segment(self, images):
        """Class-agnostic segments. images: one image or a list (see the class docstring).
        Returns a `SegmentationResult` (a list of them for a list): `segment_map` (H, W) int32
        segment ids 0..K-1 at the input's resolution, `segments` (id, area, COCO bbox, mask),
        `classes` None; `save_png`, `save_overlay`, `save_json`, `to_json` write it."""
        many, arrays, sources, sizes = self.read_inputs(images)
        results = self.run(arrays, None, sources=sources, source_sizes=sizes)
        return results if many else results[0]

    def label(self, images, classes=None, *, vocab=None):
        """Named segments. images: one image or a list (see the class docstring); classes / vocab:
        as `vocabulary` (the CLI's --classes / --vocab follow the same rule). Neither, or
        vocab="auto": automatic names, each image's names chosen from the name bank (settings
        max_classes, bank; docs/auto-vocabulary.md); `classes` is then that image's chosen names
        and `auto_vocabulary` lists them with their scores.
        Returns a `SegmentationResult` (a list of them for a list): as `segment`, plus `classes`
        (the vocabulary's names), and per segment `class_index`, `class_name`, `score` and the
        top-k `alternatives`; `label_map` (H, W) int32 gives each pixel's class index."""
        many, arrays, sources, sizes = self.read_inputs(images)
        vocab = _vocab.resolve(classes, vocab, self.auto_vocabulary)
        results = self.run(arrays, vocab, sources=sources, source_sizes=sizes)
        return results if many else results[0]

    def auto_vocabulary(self):
        """The `AutoVocabulary` of these settings (bank, max_classes), the bank read once; raises
        VocabularyError for a bank file that cannot be read or holds no names."""
        if self._auto is None:
            self._auto = auto_vocabulary(self.config.bank, max_classes=self.config.max_classes)
        return self._auto

    def run_record(self, vocab=None) -> dict:
        """What outputs made now record in their JSON's "record" (`_records.run_record`)."""
        return _records.run_record(self.config, vocab)

    def cache_settings(self) -> dict:
        """The segment cache's key settings (`_records.cache_settings`), computed once, no model."""
        if self._key_settings is None:
            self._key_settings = _records.cache_settings(self.config)
        return self._key_settings

    def process_files(self, inputs: str | os.PathLike | Sequence[str | os.PathLike], out_dir: str | os.PathLike,
                      *, classes=None, vocab=None, overwrite: bool = False,
                      progress: bool | None = None) -> RunSummary:
        """Label (classes or vocab given) or segment every image in `inputs` (files or folders,
        searched recursively; ovseg's own outputs are left out), writing per image
        `<stem>.labels.png`, `.labels.overlay.png` and `.labels.json` (`segments` when segmenting)
        into `out_dir`. An image is skipped when its outputs record the same settings, vocabulary
        and format (`run_record`), unless `overwrite`; progress: a tqdm bar (None: on a terminal).
        Returns a RunSummary. One retry policy (`_runner.run_batch`): an image that cannot be
        read, processed or written fails alone; settings errors, missing weights and models that
        cannot load stop the run."""
        vocab = None if classes is None and vocab is None else _vocab.resolve(classes, vocab, self.auto_vocabulary)
        self.validate()  # before any model loads
        check_output_dir(out_dir)
        jobs = self.plan_files(inputs, out_dir, "segment" if vocab is None else "label")
        if not jobs:  # as the CLI says it (exit 2 there); here a warning, and an empty summary
            warnings.warn(_files.no_images(inputs), UserWarning, stacklevel=2)
        _vocab.load_bank_text(self.models, vocab, progress=progress)  # automatic names: the bank's embeddings
        file_stages = _runner.FileStages(prepare=self.prepare, run=partial(self.run, vocab=vocab), write=self.write_outputs)
        return _runner.process_files(jobs, file_stages, self.run_record(vocab), overwrite=overwrite,
                                     progress=progress, overlap=self.config.overlap,
                                     batch_size=self.config.batch_size, max_pixels=self.config.max_pixels)

    plan_files = staticmethod(_files.plan_files)  # (image path, {"png", "overlay", "json"}) per image
    write_outputs = staticmethod(_files.write_outputs)  # one image's PNGs and JSON (the JSON last)

    def read_inputs(self, images) -> tuple[bool, list[np.ndarray], list, list]:
        """-> (a list was given, arrays (H, W, 3) uint8, sources (path or None), source sizes)."""
        return _files.read_inputs(images, self.config.max_pixels)

    def prepare(self, array: np.ndarray):
        """`stages.prepare` with this config: (backbone input (3, res, res), working image)."""
        return stages.prepare(array, self.config.segment_settings()["resolution"], self.config.work_aspect)

    def run(self, arrays, vocab=None, *, sources=None, source_sizes=None, prepared=None) -> list[SegmentationResult]:
        """The stages on a batch: arrays (H, W, 3) uint8; vocab: a Vocabulary, an AutoVocabulary
        or None (segment only); prepared: `prepare` of each array, when done already -> one result per array."""
        self.validate()  # the device and dtype, once: before any model loads
        # the labeler first: missing CLIP weights stop a run in seconds, before the backbone runs
        labeler = None if vocab is None else self.labeler
        settings, record = self.config.segment_settings(), self.run_record(vocab)
        prepared = prepared or [self.prepare(a) for a in arrays]
        with torch.inference_mode():
            maps, infos = self.segment_maps(arrays, prepared)
            labels, names, autos = _vocab.name_images(labeler, [work for _, work in prepared], maps, vocab,
                                                      top_k=self.config.top_k, batch_size=self.config.batch_size)
            results = [stages.assemble(array, m, labels=labels[i], names=names[i], settings={**settings, **infos[i]},
                                       source=sources[i] if sources else None,
                                       source_size=source_sizes[i] if source_sizes else None, record=record)
                       for i, (array, m) in enumerate(zip(arrays, maps))]
        for result, auto in zip(results, autos):
            if auto is not None:  # automatic names: the bank, the rule and each image's chosen names
                result.auto_vocabulary = auto
        return results

    def segment_maps(self, arrays: list[np.ndarray], prepared: list) -> tuple[list[np.ndarray], list[dict]]:
        """Segment maps (h', w') int64 at the working size and per image what the JSON records
        beyond the settings (tau="auto": tau_chosen); from the segment cache when there, else by
        `stages.segment_batch` in batches of config.batch_size. prepared: `prepare` of each array."""
        keys = [cache_key(a, self.cache_settings()) for a in arrays] if self.cache else [None] * len(arrays)
        entries = [self.cache.load(k) if self.cache else None for k in keys]
        maps = [None if e is None else e[0] for e in entries]
        infos = [{} if e is None else e[1] for e in entries]
        todo = [i for i, m in enumerate(maps) if m is None]
        for chunk in _io.iter_batches(todo, self.config.batch_size):
            done = stages.segment_batch(self.backbone, [prepared[i] for i in chunk], self.config, self.device)
            for i, (m, info) in zip(chunk, done):
                maps[i], infos[i] = m, info
                if self.cache:
                    self.cache.put(keys[i], m, info)
        return maps, infos


Segmenter.__doc__ = Segmenter.__doc__.rstrip() + "\n\n" + SETTINGS_DOC + "\n"
