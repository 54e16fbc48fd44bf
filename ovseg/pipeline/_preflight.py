"""Every model's weights found before any model runs: seconds, where a model load takes a minute.

Reads no weights and downloads nothing (`ovseg.settings.weights.check_weights`): a local folder,
the Hugging Face cache, or a hub that answers. Raises WeightsNotFoundError naming the model, its
size and how to pass a local copy; the commands turn it into one line (exit 1). `Models.check_weights`
(and so `Segmenter.preflight`) and the evaluation call these.
"""
from __future__ import annotations

from ovseg.features import backbone_info
from ovseg.labels._loading import _CHECKPOINTS, _SIZES, DOWNLOAD_FILES, _official_repo
from ovseg.settings.weights import check_weights


def check_backbone_weights(backbone: str, weights, hint: str = "weights") -> None:
    info = backbone_info(backbone)
    files = None if info.download_files is None else list(info.download_files)
    check_weights(backbone, weights, info.repo_id, info.download_size, hint, files=files)


def check_labeler_weights(labeler: str, pretrained: str | None, weights, hint: str = "clip_weights") -> None:
    repo = None if weights is not None else _official_repo(labeler, pretrained)
    check_weights(f"open_clip {labeler} ({pretrained or 'custom weights'})", weights, repo,
                  _SIZES.get(labeler, "an unknown size"), hint, required=[_CHECKPOINTS], files=DOWNLOAD_FILES)
