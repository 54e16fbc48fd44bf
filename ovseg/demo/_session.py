"""Segment once, recut cheaply: what the demo page keeps per image (no gradio in this module).

The expensive passes run once per image: the backbone (features), the cut method's tree (the
recursive normalized cut kept whole as a `Hierarchy`, built at the slider's top tau; for "kway"
the k_max solution and its merge order, a `KWayTree`, recut at any merge threshold tau) and,
when naming, the CLIP dense features. A slider move at any tau <= that top is then a pruning of the tree
(`Hierarchy.cut`, no recomputation), followed by the cheap steps the pipeline runs after the
cut: concept assignment and PAMR at the working size (`stages.refine`), CLIP mask pooling on
the cached dense map, and the full-resolution result. The refined map of each distinct cut is
memoised too, so moving back to a tau seen before costs only the naming.

Results equal `Segmenter(tau=t).label(image, classes)` (tests/demo/test_demo.py checks it): a split's
acceptance depends only on its own NCut, so the tree built at the top tau and cut at t is the
tree built at t (METHOD.md section 3).
"""
from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from ovseg import io as _io
from ovseg.settings.defaults import SLIDER_TAU_MAX, TAU
from ovseg.pipeline import stages
from ovseg.pipeline._results import SegmentationResult

__all__ = ["DemoSession", "ImageState"]


@dataclass
class ImageState:
    """What one image costs once: features, the NCut tree, CLIP dense features (when named).

    array: (H, W, 3) uint8, as read; work: (3, h', w') float32 in [0, 1], the working image
    (`stages.prepare`: the backbone's square by default); feats: (C, h, w) float32 backbone
    features; tree: the NCut tree (either method) built at the session's top tau; work_maps: memo per cut, keyed by the
    cut's tree leaves: its refined segment map "work" (h', w') int32 at the working size, and
    once named its CLIP segment embeddings "ids", "emb".
    """

    key: str
    array: np.ndarray = field(repr=False)
    source: str | None
    source_size: tuple[int, int] | None
    work: object = field(repr=False)
    feats: object = field(repr=False)
    tree: object
    clip_dense: object = field(default=None, repr=False)  # (C', h'', w'') float32, on first naming
    work_maps: OrderedDict = field(default_factory=OrderedDict, repr=False)
    seconds: dict = field(default_factory=dict)  # cost of the one-off passes
    created: float = field(default_factory=time.perf_counter)


class DemoSession:
    """A `Segmenter` (models loaded once, on first use) plus per-image trees for instant recuts.

    Arguments:
        segmenter: an `ovseg.Segmenter`; its config gives every setting but tau.
        max_tau: top of the slider; the tree is built there once per image (at least config.tau).
        max_images: images kept (least recently used dropped first).
        max_cuts: refined maps kept per image.
    Thread-safe: gradio calls it from worker threads; one image is computed at a time.
    """

    def __init__(self, segmenter, *, max_tau: float = SLIDER_TAU_MAX, max_images: int = 4, max_cuts: int = 32):
        if not 0 < max_tau <= 2:
            raise ValueError(f"max_tau must lie in (0, 2] (the range of NCut), got {max_tau}")
        self.segmenter = segmenter
        tau = segmenter.config.tau
        self.max_tau = float(max_tau) if tau == "auto" else max(float(max_tau), float(tau))
        self.start_tau = min(TAU, self.max_tau) if tau == "auto" else float(tau)  # the slider's first value
        self.max_images, self.max_cuts = max_images, max_cuts
        self._images: OrderedDict[str, ImageState] = OrderedDict()
        self._lock = threading.RLock()

    # -- the one-off passes ------------------------------------------------------------------
    def read(self, image) -> tuple[np.ndarray, str | None, tuple[int, int] | None]:
        """A path or array as ((H, W, 3) uint8, source, source size); `ovseg.io.ImageReadError`
        for a file that is not an image."""
        max_pixels = self.segmenter.config.max_pixels
        if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
            array, size = _io.read_image(image, max_pixels=max_pixels)
            return array, str(image), size
        return _io.as_rgb_array(image, max_pixels=max_pixels), None, None

    def key(self, array: np.ndarray) -> str:
        """The image's identity: its pixels and the settings that shape the tree."""
        digest = hashlib.sha1(np.ascontiguousarray(array).tobytes())
        digest.update(repr((array.shape, self.max_tau, self._tree_settings())).encode())
        return digest.hexdigest()

    def cached(self, image) -> ImageState | None:
        """The state of an image seen before (no model runs), else None."""
        array, _, _ = self.read(image)
        with self._lock:
            return self._images.get(self.key(array))

    def prepare(self, image) -> ImageState:
        """Backbone pass and NCut tree of `image` (a path, PIL image or array), or the kept ones."""
        import torch

        array, source, size = self.read(image)
        key = self.key(array)
        with self._lock:
            if key in self._images:
                self._images.move_to_end(key)
                return self._images[key]
            seg = self.segmenter
            t0 = time.perf_counter()
            seg.backbone  # noqa: B018 - loads the model once per process (timed apart)
            loaded = time.perf_counter() - t0
            with torch.inference_mode():
                t0 = time.perf_counter()
                cfg = seg.config
                prepared = seg.prepare(array)  # (backbone input, working image)
                feats, walks = stages.extract(seg.backbone, prepared[0][None].to(seg.device), method=cfg.method,
                                              attention_layers=cfg.attention_layers)  # the one backbone pass
                t1 = time.perf_counter()
                tree = stages.build_tree(feats, walks, method=cfg.method, top=self.max_tau,
                                         **stages.method_options(cfg))[0]
                t2 = time.perf_counter()
            state = ImageState(key, array, source, size, prepared[1], feats[0], tree,
                               seconds={"load": loaded, "backbone": t1 - t0, "ncut_tree": t2 - t1})
            self._images[key] = state
            while len(self._images) > self.max_images:
                self._images.popitem(last=False)
            return state

    # -- the cheap steps, per slider move ----------------------------------------------------
    def result(self, state: ImageState, tau: float, vocabulary=None) -> SegmentationResult:
        """The segmentation of a prepared image at `tau` (<= max_tau), named when `vocabulary`
        (an `ovseg.labels.Vocabulary`, or an `AutoVocabulary`: automatic names) is given. Runs no
        backbone pass."""
        import torch

        from ovseg.labels._auto import AutoVocabulary

        tau = float(tau)
        if not 0 <= tau <= self.max_tau:
            raise ValueError(f"tau must lie in [0, {self.max_tau}] (the tree was built at "
                             f"{self.max_tau}), got {tau}")
        seg = self.segmenter
        with self._lock, torch.inference_mode():
            leaves, work = self._work_map(state, tau)
            labels, names, chosen = {}, None, None
            if isinstance(vocabulary, AutoVocabulary):
                labels, chosen = self._auto_labels(state, work, vocabulary)
                names = [c.name for c in chosen]
            elif vocabulary is not None:
                names = list(vocabulary.names)
                labels = self._labels(state, leaves, work, vocabulary)
            record = seg.run_record(vocabulary)  # as `Segmenter.label` at this tau would record
            record["settings"][self._method().setting] = tau
            info = state.work_maps[leaves].get("info") or {}  # what the cut reported (kway: k_chosen)
            result = stages.assemble(state.array, work, labels=labels, names=names,
                                     settings={**record["settings"], **info},
                                     source=state.source, source_size=state.source_size, record=record)
            if chosen is not None:
                result.auto_vocabulary = {"bank": vocabulary.bank.name, "max_classes": vocabulary.config.max_classes,
                                          "chosen": [c.to_json() for c in chosen]}
            return result

    def _auto_labels(self, state: ImageState, work: np.ndarray, auto) -> tuple[dict, list]:
        """Automatic names (`stages.name_auto`'s rule) on the cached CLIP dense features."""
        import torch
        from ovseg.labels._auto import label_auto

        labeler = self.segmenter.labeler
        if state.clip_dense is None:
            state.clip_dense = labeler.dense_features(state.work)
        found, chosen = label_auto(labeler, state.work, torch.from_numpy(work.astype(np.int64)), auto.bank,
                                   auto.config, top_k=self.segmenter.config.top_k, features=state.clip_dense,
                                   progress=False)
        return {int(lab.segment_id): lab for lab in found}, chosen

    def num_segments(self, state: ImageState, tau: float) -> int:
        """Segments of the low-res cut at `tau` (before refinement, which may drop a few)."""
        return state.tree.num_segments(tau)

    def _work_map(self, state: ImageState, tau: float) -> tuple[tuple, np.ndarray]:
        """-> (the cut's leaves, its refined map (h', w') int32 at the working size)."""
        leaves = tuple(state.tree.leaves(tau))  # the cut is identified by its leaves
        if leaves not in state.work_maps:
            low, info = stages.cut(state.tree, tau)  # pruning of the kept tree (Hierarchy.cut)
            work = stages.refine(state.feats, low, state.work, stages.pamr_settings(self.segmenter.config)).astype(np.int32)
            state.work_maps[leaves] = {"work": work, "info": info}
            while len(state.work_maps) > self.max_cuts:
                state.work_maps.popitem(last=False)
        state.work_maps.move_to_end(leaves)
        return leaves, state.work_maps[leaves]["work"]

    def _labels(self, state: ImageState, leaves: tuple, work: np.ndarray, vocabulary) -> dict:
        """segment id -> SegmentLabel, as `Labeler.label` on the working-size image gives, but
        pooling CLIP dense features computed once per image (and once per cut: the pooled
        embeddings do not depend on the vocabulary)."""
        import torch

        labeler = self.segmenter.labeler
        if state.clip_dense is None:
            t0 = time.perf_counter()
            state.clip_dense = labeler.dense_features(state.work)  # (C', h'', w''): the pipeline's CLIP input
            state.seconds["clip_dense"] = time.perf_counter() - t0
        memo = state.work_maps[leaves]
        if "emb" not in memo:  # the labeler's own pooling, on the cached dense features
            segments = torch.from_numpy(work.astype(np.int64))
            memo["ids"], memo["emb"] = labeler.pool_segments(state.work, segments, features=state.clip_dense)
        ids, emb = memo["ids"], memo["emb"]
        found = labeler.classify_embeddings(emb, vocabulary, segment_ids=ids.tolist(),
                                            top_k=self.segmenter.config.top_k)
        return {int(lab.segment_id): lab for lab in found}

    def _method(self):
        from ovseg.masks import get_method

        return get_method(self.segmenter.config.method)

    def _tree_settings(self) -> tuple:
        """The settings that shape features and tree: all segment settings but the slider's own."""
        settings = dict(self.segmenter.config.segment_settings())
        settings.pop(self._method().setting, None)
        return tuple(sorted((k, repr(v)) for k, v in settings.items()))

    def slider(self) -> tuple[str, bool]:
        """(the slider's label, whether it moves anything): from the cut method's registry entry;
        a setting the method ignores for this config (kway with a fixed k ignores tau) freezes it."""
        method = self._method()
        ignored = method.ignores(self.segmenter.config.method_settings())
        if method.setting in ignored:
            return f"{method.setting}: no effect here ({ignored[method.setting]})", False
        return method.slider, True
