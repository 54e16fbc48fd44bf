"""Naming segments with CLIP: mask-pooled dense image embeddings against text embeddings.

DiffCut's open-vocabulary extension (METHOD.md section 6): open_clip `convnext_large_d_320`
(`laion2b_s29b_b131k_ft_soup`), dense features of the last ConvNeXt stage (stride 32), averaged
inside each segment, passed through the model's head and projection, compared by cosine with
the text embeddings of the class names; the best class wins.

Image preprocessing, by default as DiffCut's published code (docs/fidelity.md): the image is used
as given (the pipeline gives the backbone's square input, 1024 x 1024 for SSD-1B: a 32 x 32
grid), only rounded to multiples of the feature stride if needed, raw in [0, 1] (no CLIP
mean/std), and each segment's binary mask is resized to the feature grid by `nearest-exact`
sampling. Options (LabelerConfig): `resolution=320` resizes the short side to 320 first (about
10x less work on CPU, see docs/fidelity.md), `normalize=True` applies the model's mean/std,
`pooling="area"` uses soft area-fraction weights instead of binary masks.

    labeler = create_labeler(weights="/models/clip-convnext")   # or weights=None: official hub repo
    labels = labeler.label(image, segments, load_vocabulary("voc"))
    classes = semantic_map(segments, labels)                     # (H, W) class ids, -1 unlabeled
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Literal

import torch
import torch.nn.functional as F

from ovseg.labels import _dense, _text
from ovseg.io.quiet import quiet_loading
from ovseg.labels._loading import load_open_clip
from ovseg.labels._vocabulary import (Vocabulary, VocabularyError, _key, load_background, load_templates,
                                     load_vocabulary)
from ovseg.settings.devices import resolve_device

UNLABELED = -1  # class_index of a segment whose best score is below the threshold


@dataclass(frozen=True)
class SegmentLabel:
    segment_id: int
    class_index: int  # index into the vocabulary; len(vocabulary) = background; -1 = unlabeled
    class_name: str
    score: float  # see LabelerConfig.score
    alternatives: list[tuple[str, float]] = field(default_factory=list)  # top-k (name, score), best first


@dataclass(frozen=True)
class LabelerConfig:
    # short side of the CLIP input (bilinear resize); None = the image as given (the published
    # recipe: the pipeline passes the backbone's res x res input). 320 = convnext_large_d_320's own
    # training size, the fast CPU option (docs/fidelity.md).
    resolution: int | None = None
    normalize: bool = False  # CLIP's mean/std on the input; False = raw [0, 1], as DiffCut's code
    pooling: Literal["binary", "area"] = "binary"  # binary masks nearest-exact to the grid (DiffCut), or area weights
    templates: str | tuple[str, ...] = "vild"  # the 14 ViLD templates, as DiffCut; "openai" = 80
    # "softmax": softmax over classes of logit_scale * cosine (CLIP's learned temperature, ~100),
    # a probability that sums to 1 over the vocabulary (and background). "cosine": raw cosine
    # similarity in [-1, 1]. Thresholds apply to whichever is chosen.
    score: Literal["softmax", "cosine"] = "softmax"
    text_batch_size: int = 1024  # prompts per text-tower forward pass
    disk_cache: bool = True  # keep text embeddings under ovseg's cache dir ("text-embeds")


class Labeler:
    """Names segments with an open_clip model (see module docstring)."""

    def __init__(self, clip: torch.nn.Module, tokenizer, *, identity: str, config: LabelerConfig,
                 device: torch.device, dtype: torch.dtype) -> None:
        import open_clip

        self.clip, self.tokenizer, self.identity, self.config = clip, tokenizer, identity, config
        self.device, self.dtype = device, dtype
        visual = clip.visual
        _dense.tower_kind(visual)  # unsupported towers fail here, not at the first image
        self.stride = _dense.stride_of(visual)
        pre = open_clip.get_model_preprocess_cfg(clip)
        self.resolution = config.resolution  # None: the image as given
        self.mean = torch.tensor(pre.get("mean", open_clip.OPENAI_DATASET_MEAN), device=device).view(3, 1, 1)
        self.std = torch.tensor(pre.get("std", open_clip.OPENAI_DATASET_STD), device=device).view(3, 1, 1)
        self.logit_scale = float(clip.logit_scale.detach().exp()) if hasattr(clip, "logit_scale") else 100.0
        self.templates = load_templates(config.templates)
        self._text_encoder = _text.fast_encode_text(clip)

    # ---- text side ---------------------------------------------------------------------------
    def text_embeddings(self, vocabulary: Vocabulary, *, templates: Sequence[str] | None = None,
                        progress: bool | None = False) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (emb (S, D) float32 L2-normalised, owner (S,) int64): one row per synonym, owner = class.

        templates: prompt templates (default: LabelerConfig.templates, loaded once); progress: a
        tqdm bar over the text batches when they are computed, not when read from the cache
        (None: only on a terminal)."""
        templates = self.templates if templates is None else tuple(templates)
        synonyms = [s for syns in vocabulary.classes for s in syns]
        owner = torch.tensor([i for i, syns in enumerate(vocabulary.classes) for _ in syns])
        key = _text.cache_key(f"{self.identity}|{self.dtype}", templates, synonyms)

        def compute() -> torch.Tensor:
            return _text.encode_names(self._encode_text, self.tokenizer, synonyms, templates,
                                      device=self.device, batch_size=self.config.text_batch_size,
                                      progress=progress)

        emb = _text.cached_text_embeddings(key, compute, disk=self.config.disk_cache)
        return emb.to(self.device), owner.to(self.device)

    def _encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self._text_encoder(tokens)

    # ---- image side --------------------------------------------------------------------------
    def prepare_image(self, image: torch.Tensor) -> torch.Tensor:
        """image (3, H, W) float in [0, 1] -> (3, H', W') the CLIP input in self.dtype on self.device:
        resized (LabelerConfig.resolution) or only rounded to the stride, normalised if asked."""
        image = _check_image(image).to(self.device, torch.float32)
        x = _dense.clip_input(image, self.resolution, self.stride)
        if self.config.normalize:
            x = (x - self.mean) / self.std
        return x.to(self.dtype)

    @torch.no_grad()
    def dense_features(self, image: torch.Tensor) -> torch.Tensor:
        """image (3, H, W) float in [0, 1] -> (C, h, w) float32 dense features (before projection)."""
        return self.dense_features_batch([image])[0]

    def segment_weights(self, segments: torch.Tensor, grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """segments (H, W) int64 -> (ids (K,), weights (K, h, w)) on the feature grid, by
        LabelerConfig.pooling (binary nearest-exact masks, or area fractions)."""
        if self.config.pooling == "area":
            return _dense.segment_weights(segments, grid)
        return _dense.binary_segment_masks(segments, grid)

    @torch.no_grad()
    def dense_features_batch(self, images: Sequence[torch.Tensor], *, batch_size: int = 8) -> list[torch.Tensor]:
        """images: (3, H_i, W_i) floats in [0, 1] -> [(C, h_i, w_i) float32], one per image.

        Images whose tower inputs have the same size go through the tower together, up to
        `batch_size` at a time (no padding: a padded border would change a CNN's features).
        Raises FloatingPointError when the features hold NaN or inf (fp16 overflow).
        """
        inputs = [self.prepare_image(image) for image in images]
        groups: dict[tuple, list[int]] = {}
        for i, x in enumerate(inputs):
            groups.setdefault(tuple(x.shape), []).append(i)
        out: list[torch.Tensor | None] = [None] * len(inputs)
        for members in groups.values():
            for start in range(0, len(members), max(1, batch_size)):
                chunk = members[start:start + max(1, batch_size)]
                feats = _dense.dense_features(self.clip.visual, torch.stack([inputs[i] for i in chunk])).float()
                if not bool(torch.isfinite(feats).all()):  # one host sync per chunk
                    raise FloatingPointError(
                        f"labeler {self.identity}: dense CLIP features contain NaN or inf in {self.dtype} "
                        "(overflow); use float32 or bfloat16 (ovseg --dtype float32 / bfloat16)")
                for i, f in zip(chunk, feats):
                    out[i] = f
        return out

    @torch.no_grad()
    def pool_segments(self, image: torch.Tensor, segments: torch.Tensor, *,
                      features: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """image (3, H, W) [0, 1], segments (H', W') int64 ids >= 0 (negative = ignore), usually
        H' = H, W' = W -> (ids (K,) int64, emb (K, D) float32 L2-normalised), one row per segment.
        features: the image's `dense_features`, when already computed."""
        feats = self.dense_features(image) if features is None else features
        segments = _check_segments(segments, image)
        ids, weights = self.segment_weights(segments.to(self.device), tuple(feats.shape[-2:]))
        pooled = _dense.pool(feats, weights)
        emb = _dense.project(self.clip.visual, pooled.to(self.dtype)).float()
        return ids, F.normalize(emb, dim=-1)

    # ---- matching ----------------------------------------------------------------------------
    def class_scores(self, embeddings: torch.Tensor, vocabulary: Vocabulary, *,
                     text: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """embeddings (K, D) L2-normalised -> (K, M) scores (LabelerConfig.score) for M classes,
        each class's cosine being the max over its synonyms. text: the vocabulary's
        `text_embeddings` (emb (S, D), owner (S,)) when already at hand (automatic naming)."""
        text, owner = self.text_embeddings(vocabulary) if text is None else text
        if embeddings.ndim != 2 or embeddings.shape[1] != text.shape[1]:
            raise ValueError(f"embeddings must be (K, {text.shape[1]}), got {tuple(embeddings.shape)}")
        cos = embeddings.to(text) @ text.T  # (K, S)
        per_class = cos.new_full((cos.shape[0], len(vocabulary)), -torch.inf)
        per_class = per_class.scatter_reduce(1, owner.expand_as(cos), cos, reduce="amax")  # max over synonyms
        if self.config.score == "cosine":
            return per_class
        return (self.logit_scale * per_class).softmax(dim=-1)

    def classify_embeddings(
        self, embeddings: torch.Tensor, vocabulary: Vocabulary, *, segment_ids: Sequence[int] | None = None,
        top_k: int = 3, threshold: float | None = None, background: bool | str | Sequence[str] | None = None,
        text: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> list[SegmentLabel]:
        """Name K segments from their embeddings (K, D). See `label` for the options; text: the
        text embeddings of the vocabulary with its background class, if already computed."""
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        full = _with_background(vocabulary, background)
        scores = self.class_scores(embeddings, full, text=text).cpu()
        ids = list(range(len(scores))) if segment_ids is None else [int(i) for i in segment_ids]
        if len(ids) != len(scores):
            raise ValueError(f"{len(ids)} segment ids for {len(scores)} embeddings")
        best_scores, order = scores.topk(min(top_k, scores.shape[1]), dim=1)
        labels = []
        for sid, row_scores, row in zip(ids, best_scores.tolist(), order.tolist()):
            alternatives = [(full[c], s) for c, s in zip(row, row_scores)]
            index, score = row[0], row_scores[0]
            if threshold is not None and score < threshold:  # unknown: no class is convincing
                labels.append(SegmentLabel(sid, UNLABELED, "unlabeled", score, alternatives))
            else:
                labels.append(SegmentLabel(sid, index, full[index], score, alternatives))
        return labels

    @torch.no_grad()
    def label(
        self, image: torch.Tensor, segments: torch.Tensor, vocabulary: Vocabulary | Sequence[str] | str, *,
        top_k: int = 3, threshold: float | None = None, background: bool | str | Sequence[str] | None = None,
    ) -> list[SegmentLabel]:
        """Name every segment of an image.

        image (3, H, W) float in [0, 1]; segments (H, W) int64 ids (negative = ignore);
        vocabulary: a Vocabulary, a list of names ("person,people" = synonyms) or a shipped name.
        top_k: how many (name, score) alternatives each result lists, best first.
        threshold: a segment whose best score is below it is "unlabeled" (class_index -1).
            Off by default: a score's scale depends on the vocabulary's size and the `score`
            setting, so no single value suits every vocabulary; benchmarks assign every pixel.
        background: add a VOC-style background class (True: the shipped stuff-word list; or a
            "background,sky,wall" string / list of synonyms), index len(vocabulary); words that
            are already classes of the vocabulary are left out of it. Off by
            default: the benchmark vocabularies that need one (VOC, COCO-Object, Context-60)
            carry it as class 0, and a user's vocabulary names what they want found.
        Returns one SegmentLabel per segment id present, in increasing id order.
        """
        vocabulary = _as_vocabulary(vocabulary)
        ids, emb = self.pool_segments(image, segments)
        return self.classify_embeddings(emb, vocabulary, segment_ids=ids.tolist(), top_k=top_k,
                                        threshold=threshold, background=background)

    @torch.no_grad()
    def label_batch(
        self, images: Sequence[torch.Tensor], segments: Sequence[torch.Tensor],
        vocabulary: Vocabulary | Sequence[str] | str, *, top_k: int = 3, threshold: float | None = None,
        background: bool | str | Sequence[str] | None = None, batch_size: int = 8,
    ) -> list[list[SegmentLabel]]:
        """`label` for several images: the dense CLIP pass runs on batches of images
        (`dense_features_batch`, `batch_size` at a time), the vocabulary's text embeddings are
        computed (or read from the cache) once; pooling and matching are per image, as `label`.

        images: (3, H_i, W_i) floats in [0, 1]; segments: (H_i, W_i) int64 ids, one per image.
        Returns one list of SegmentLabel per image, equal to `label` on that image alone.
        """
        if len(images) != len(segments):
            raise ValueError(f"{len(images)} images but {len(segments)} segment maps")
        vocabulary = _as_vocabulary(vocabulary)
        feats = self.dense_features_batch(images, batch_size=batch_size)
        out = []
        for image, segs, f in zip(images, segments, feats):
            ids, emb = self.pool_segments(image, segs, features=f)
            out.append(self.classify_embeddings(emb, vocabulary, segment_ids=ids.tolist(), top_k=top_k,
                                                threshold=threshold, background=background))
        return out


def _as_vocabulary(vocabulary) -> Vocabulary:
    if isinstance(vocabulary, str):
        return load_vocabulary(vocabulary)
    if not isinstance(vocabulary, Vocabulary):
        return Vocabulary.from_names(vocabulary)
    return vocabulary


def _with_background(vocabulary: Vocabulary, background) -> Vocabulary:
    if background is None or background is False:
        return vocabulary
    if background is True:
        synonyms = load_background()
    elif isinstance(background, str):
        synonyms = tuple(background.split(","))
    else:
        synonyms = tuple(background)
    taken = {_key(s) for syns in vocabulary.classes for s in syns}
    kept = tuple(s for s in synonyms if _key(s) not in taken)  # a stuff word the user asks for stays theirs
    if not kept:
        raise VocabularyError(f"background words {list(synonyms)} are all classes of vocabulary "
                              f"{vocabulary.name!r} (does it carry its own background? then leave background=None)")
    synonyms = kept
    return vocabulary.with_class(synonyms)


def _check_image(image: torch.Tensor) -> torch.Tensor:
    if not isinstance(image, torch.Tensor) or image.ndim != 3 or image.shape[0] != 3:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"image must be a (3, H, W) float tensor in [0, 1], got {shape}")
    if not image.is_floating_point():
        raise TypeError(f"image must be float in [0, 1], got {image.dtype} (divide uint8 images by 255)")
    return image


def _check_segments(segments: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    if not isinstance(segments, torch.Tensor) or segments.ndim != 2:
        shape = tuple(segments.shape) if isinstance(segments, torch.Tensor) else type(segments).__name__
        raise ValueError(f"segments must be an (H, W) integer tensor, got {shape}")
    if segments.is_floating_point() or segments.dtype == torch.bool:
        raise TypeError(f"segments must hold integer ids, got {segments.dtype}")
    (H, W), (h, w) = image.shape[-2:], segments.shape
    if abs(H / W - h / w) > 0.05 * (H / W):
        raise ValueError(f"segments {h}x{w} do not match the image {H}x{W} (different aspect ratio)")
    return segments.long()


def semantic_map(segments: torch.Tensor, labels: Sequence[SegmentLabel]) -> torch.Tensor:
    """segments (H, W) int64 instance ids -> (H, W) int64 class index per pixel, merging segments of
    the same class (-1 for unlabeled segments and for ids without a label). The instances stay in
    `segments`; `segments_by_class` lists them."""
    lut = torch.full((int(segments.max().clamp_min(0)) + 2,), UNLABELED, dtype=torch.long)
    for item in labels:
        if 0 <= item.segment_id < len(lut) - 1:
            lut[item.segment_id] = item.class_index
    index = segments.long().cpu().clamp(-1, len(lut) - 2)
    index = torch.where(index < 0, torch.full_like(index, len(lut) - 1), index)  # ignored -> last slot (-1)
    return lut[index].to(segments.device)


def segments_by_class(labels: Sequence[SegmentLabel]) -> dict[int, list[int]]:
    """class index -> the ids of its segments (instances), in increasing id order."""
    out: dict[int, list[int]] = {}
    for item in sorted(labels, key=lambda x: x.segment_id):
        out.setdefault(item.class_index, []).append(item.segment_id)
    return out


def create_labeler(
    model: str = "convnext_large_d_320", pretrained: str | None = "laion2b_s29b_b131k_ft_soup", *,
    weights: str | os.PathLike | None = None, device: str | torch.device | None = None,
    dtype: torch.dtype | None = None, **options,
) -> Labeler:
    """Load an open_clip model as a Labeler.

    weights: None = the official Hugging Face repo of (model, pretrained); a repo id; or a local
        folder (open_clip_config.json + open_clip_pytorch_model.bin or a .safetensors checkpoint,
        docs/weights.md). Offline without a local copy: `ovseg.WeightsNotFoundError`, within
        seconds, saying how to pass a folder.
    device: default CUDA when available, else CPU (`ovseg.settings.devices.resolve_device`; a device that
        is not there is a SettingError). dtype: default float32 (float16/bfloat16 on GPU halve the memory).
    options: LabelerConfig fields (resolution, normalize, pooling, templates, score, text_batch_size,
        disk_cache).
    """
    known = {f.name for f in fields(LabelerConfig)}
    unknown = set(options) - known
    if unknown:
        raise TypeError(f"unknown labeler options {sorted(unknown)}; valid: {sorted(known)}")
    config = replace(LabelerConfig(), **{k: v for k, v in options.items() if v is not None})
    if config.score not in ("softmax", "cosine"):
        raise ValueError(f"score must be 'softmax' or 'cosine', got {config.score!r}")
    if config.pooling not in ("binary", "area"):
        raise ValueError(f"pooling must be 'binary' or 'area', got {config.pooling!r}")
    if config.resolution is not None and (not isinstance(config.resolution, int) or config.resolution < 32):
        raise ValueError(f"resolution must be an int >= 32 (pixels, short side), got {config.resolution!r}")
    if not isinstance(config.text_batch_size, int) or config.text_batch_size < 1:
        raise ValueError(f"text_batch_size must be a positive int, got {config.text_batch_size!r}")
    device = resolve_device(device)  # the one rule: None -> cuda when available (SettingError if absent)
    dtype = dtype or torch.float32
    with quiet_loading():
        clip, tokenizer, identity = load_open_clip(model, pretrained, weights)
    clip = clip.to(device=device, dtype=dtype)
    return Labeler(clip, tokenizer, identity=identity, config=config, device=device, dtype=dtype)
