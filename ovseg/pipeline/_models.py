"""The models a Segmenter runs: a backbone and a labeler, built once on first use, or given.

    models = Models(backbone=my_backbone)           # inject one (a test's planted backbone)
    seg = Segmenter(config, models=models)
    other = Segmenter(config2, models=seg.models)   # share loaded models between segmenters

At --verbose (logger "ovseg", level INFO) one line per model names where its weights came from.
"""
from __future__ import annotations

import logging

import ovseg.features as _features  # by attribute: a test may stand in for create_backbone
import ovseg.labels as _labels
from ovseg.pipeline import _preflight
from ovseg.settings.checks import check_resolution
from ovseg.settings.devices import resolve_device, resolve_dtype, torch_dtype
from ovseg.settings.weights import WeightsNotFoundError

__all__ = ["ModelLoadError", "Models"]

log = logging.getLogger("ovseg")


class ModelLoadError(RuntimeError):
    """A model could not be built from the settings (unknown name, bad files, bad resolution)."""


class Models:
    """A backbone and a labeler for one SegmenterConfig, each built on first use (or given).

    Arguments:
      config: the SegmenterConfig that builds what is not given (None: bound by the first
        Segmenter that takes these models).
      backbone: a feature extractor (`ovseg.features` protocol: `stride`, `resolution`,
        `__call__(images (B, 3, S, S) float32 [0, 1]) -> (B, C, h, w)`), or None to build it.
      labeler: an `ovseg.labels.Labeler`, or None to build it.
    """

    def __init__(self, config=None, *, backbone=None, labeler=None) -> None:
        self.config, self._given_backbone, self._given_labeler = config, backbone, labeler
        self._built_backbone = self._built_labeler = None

    @property
    def device(self):
        """torch.device of the config (`ovseg.settings.devices.resolve_device`)."""
        return resolve_device(self.config.device)

    @property
    def backbone(self):
        if self._given_backbone is not None:
            return self._given_backbone
        if self._built_backbone is None:
            self._built_backbone = self._build_backbone()
        return self._built_backbone

    @property
    def labeler(self):
        if self._given_labeler is not None:
            return self._given_labeler
        if self._built_labeler is None:
            self._built_labeler = self._build_labeler()
        return self._built_labeler

    def loaded(self) -> dict:
        """{"backbone": model or None, "labeler": model or None}: what is built or given now."""
        return {"backbone": self._given_backbone or self._built_backbone,
                "labeler": self._given_labeler or self._built_labeler}

    def check_weights(self, *, labels: bool) -> None:
        """The weights of each model still to build (the backbone; the labeler when `labels`) on
        disk, in the Hugging Face cache or downloadable (`ovseg.pipeline._preflight`): reads no
        weights, downloads nothing; WeightsNotFoundError otherwise."""
        loaded = self.loaded()
        cfg = self.config
        if loaded["backbone"] is None:
            _preflight.check_backbone_weights(cfg.backbone, cfg.weights)
        if labels and loaded["labeler"] is None:
            _preflight.check_labeler_weights(cfg.labeler, cfg.labeler_pretrained, cfg.clip_weights)

    def _build_backbone(self):
        cfg = self.config
        device = self.device
        try:
            backbone = _features.create_backbone(cfg.backbone, weights=cfg.weights, device=device,
                                       dtype=torch_dtype(cfg.dtype))
        except WeightsNotFoundError:
            raise
        except Exception as err:
            raise ModelLoadError(f"backbone {cfg.backbone!r}: {err}") from err
        check_resolution(cfg.resolution or backbone.resolution, cfg.backbone, stride=backbone.stride)  # as built
        log.info("backbone %s: weights from %s (%s, %s)", cfg.backbone,
                 cfg.weights or _features.backbone_info(cfg.backbone).repo_id, device, resolve_dtype(cfg.dtype, device))
        return backbone.eval()

    def _build_labeler(self):
        cfg = self.config
        device = self.device
        try:
            labeler = _labels.create_labeler(
                cfg.labeler, cfg.labeler_pretrained, weights=cfg.clip_weights, device=device,
                dtype=torch_dtype(cfg.dtype) if device.type == "cuda" else None,
                resolution=cfg.clip_resolution, normalize=cfg.clip_normalize, pooling=cfg.clip_pooling,
                disk_cache=cfg.cache,  # --no-cache: no text-embedding disk cache either
            )
        except WeightsNotFoundError:
            raise
        except Exception as err:
            raise ModelLoadError(f"labeler {cfg.labeler!r}: {err}") from err
        log.info("labeler %s (%s): weights from %s (%s)", cfg.labeler, cfg.labeler_pretrained,
                 cfg.clip_weights or "the open_clip hub repo of that tag", device)
        return labeler
