"""Loading an open_clip model from its official hub location, another repo id, or a local folder.

A folder is in the layout of open_clip's `hf-hub:` checkpoints: `open_clip_config.json` (with
`model_cfg` and `preprocess_cfg`) next to one of `_CHECKPOINTS` (the official repository of the
default model holds `open_clip_pytorch_model.bin`, see docs/weights.md). A folder with only a
checkpoint file is read with open_clip's built-in config for `model`.
"""
from __future__ import annotations

import os
from pathlib import Path

from ovseg.settings.weights import WeightsNotFoundError, resolve_weights

# Approximate download sizes (fp32 checkpoints), for the offline error message.
_SIZES = {
    "convnext_large_d_320": "1.4 GB", "convnext_large_d": "1.4 GB", "convnext_base_w_320": "0.7 GB",
    "ViT-B-16": "0.6 GB", "ViT-B-32": "0.6 GB", "ViT-L-14": "1.7 GB", "ViT-L-14-336": "1.7 GB",
}
# The names open_clip's hub repositories use, in open_clip's own order of preference. The default
# model's repository holds open_clip_pytorch_model.bin (1.41 GB); some repositories also hold the
# same weights as safetensors. A download takes the first of these the repository has, and only
# that one; a pickle is read by open_clip with torch.load(weights_only=True): tensors only.
_CHECKPOINTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors",
                "open_clip_pytorch_model.bin", "open_clip_pytorch_model.pth")
_TEXT_FILES = ["open_clip_config.json", "tokenizer*", "special_tokens_map.json", "vocab*", "merges.txt"]
# The files docs/weights.md (and the offline message) tell users to download: what the default
# repository is known to hold.
DOWNLOAD_FILES = ["open_clip_config.json", "open_clip_pytorch_model.bin"]


def _official_repo(model: str, pretrained: str) -> str:
    import open_clip

    cfg = open_clip.get_pretrained_cfg(model, pretrained)
    if not cfg:
        if model not in open_clip.list_models():
            raise ValueError(f"unknown open_clip model {model!r}; see open_clip.list_models()")
        tags = open_clip.list_pretrained_tags_by_model(model)
        raise ValueError(f"unknown pretrained tag {pretrained!r} for {model}; known: {', '.join(tags) or 'none'}")
    hub = cfg.get("hf_hub", "").strip("/")
    if not hub:
        raise WeightsNotFoundError(
            f"open_clip {model} ({pretrained}) has no Hugging Face location; download its checkpoint "
            "yourself and pass the folder holding it as weights='DIR'."
        )
    return "/".join(hub.split("/")[:2])  # 'org/repo/filename' -> 'org/repo'


def _checkpoint_in(directory: Path) -> Path | None:
    for name in _CHECKPOINTS:
        if (directory / name).is_file():
            return directory / name
    return None


def load_open_clip(model: str, pretrained: str | None, weights: str | os.PathLike | None):
    """-> (clip model on CPU in eval mode, tokenizer, identity string for caches)."""
    import open_clip

    if weights is None:
        if not pretrained:
            raise ValueError("pass pretrained= (an open_clip tag) or weights= (a repo id or folder)")
        repo_id = _official_repo(model, pretrained)
    else:
        repo_id = str(weights)
    directory = Path(resolve_weights(
        weights, repo_id=repo_id, model=f"open_clip {model} ({pretrained or 'custom weights'})",
        download_size=_SIZES.get(model, "an unknown size"), required=[_CHECKPOINTS], optional=_TEXT_FILES,
        hint="clip_weights", hint_files=DOWNLOAD_FILES,
    ))
    checkpoint = _checkpoint_in(directory)
    if (directory / "open_clip_config.json").is_file():
        name = f"local-dir:{directory}"
        clip = open_clip.create_model(name, device="cpu")
        tokenizer = open_clip.get_tokenizer(name)
    else:
        if model not in open_clip.list_models():
            raise ValueError(f"{directory} has no open_clip_config.json and {model!r} is not a built-in "
                             "open_clip model, so its architecture is unknown")
        clip = open_clip.create_model(model, pretrained=str(checkpoint), device="cpu")
        tokenizer = open_clip.get_tokenizer(model)
    stat = checkpoint.stat()
    identity = f"{model}|{pretrained}|{checkpoint.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    return clip.eval(), tokenizer, identity
