"""Every model's weights found before any model runs: seconds, where a model load takes a minute.

Reads no weights and downloads nothing (`ovseg.settings.weights.check_weights`): a local folder,
the Hugging Face cache, or a hub that answers. Raises WeightsNotFoundError naming the model, its
size and how to pass a local copy; the commands turn it into one line (exit 1).
"""
from __future__ import annotations

from ovseg.settings.weights import check_weights


def check_backbone_weights(backbone: str, weights, hint: str = "weights") -> None:
    from ovseg.features import backbone_info

    info = backbone_info(backbone)
    files = None if info.download_files is None else list(info.download_files)
    check_weights(backbone, weights, info.repo_id, info.download_size, hint, files=files)


def check_labeler_weights(labeler: str, pretrained: str | None, weights, hint: str = "clip_weights") -> None:
    from ovseg.labels._loading import _CHECKPOINTS, _SIZES, DOWNLOAD_FILES, _official_repo

    repo = None if weights is not None else _official_repo(labeler, pretrained)
    check_weights(f"open_clip {labeler} ({pretrained or 'custom weights'})", weights, repo,
                  _SIZES.get(labeler, "an unknown size"), hint, required=[_CHECKPOINTS], files=DOWNLOAD_FILES)


def preflight(config, *, labels: bool):
    """Steps 1-3 for a `SegmenterConfig`: `validate()` (stride, device, dtype, weights folders:
    SettingError), then the backbone's and, when labelling, the labeler's weights
    (WeightsNotFoundError). Returns the config."""
    config.validate()
    check_backbone_weights(config.backbone, config.weights)
    if labels:
        check_labeler_weights(config.labeler, config.labeler_pretrained, config.clip_weights)
    return config
