"""Tiny random-weight open_clip checkpoints for the labeler, in the layout of the official repository
of the default model (open_clip_config.json + open_clip_pytorch_model.bin, docs/weights.md), loaded
back through the same `create_labeler(weights=DIR)` path as real weights."""
from __future__ import annotations

import json
import os
from pathlib import Path

_TEXT = {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}

# Same tower types as the real models, shrunk: a timm ConvNeXt trunk with open_clip's MLP head
# (as convnext_large_d_320; convnext_atto is timm's smallest ConvNeXt, 3.4 M parameters), and a
# 2-block ViT with 8-pixel patches.
TINY_CONFIGS = {
    "convnext": {
        "embed_dim": 32,
        "vision_cfg": {"timm_model_name": "convnext_atto", "timm_model_pretrained": False, "timm_pool": "",
                       "timm_proj": "mlp", "timm_drop": 0.0, "timm_drop_path": 0.0, "image_size": 64},
        "text_cfg": _TEXT,
    },
    "vit": {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
        "text_cfg": _TEXT,
    },
}


# The checkpoint names open_clip's hub repositories use; the default model's repository holds the .bin.
CHECKPOINT_NAMES = ("open_clip_pytorch_model.bin", "open_clip_model.safetensors", "open_clip_pytorch_model.safetensors")


def make_tiny_clip_weights(directory: str | os.PathLike, *, kind: str = "convnext", seed: int = 0,
                           checkpoint: str = "open_clip_pytorch_model.bin") -> str:
    """Write a tiny random open_clip model (`kind`: "convnext" or "vit") to `directory`; return it.

    checkpoint: the weight file's name, one of `CHECKPOINT_NAMES` (default: the name the default
    model's official repository uses; a .bin is a plain state_dict, as open_clip saves it). Use
    as `ovseg.labels.create_labeler(weights=path)`. Its outputs mean nothing.
    """
    import open_clip
    import torch
    from safetensors.torch import save_file

    if kind not in TINY_CONFIGS:
        raise ValueError(f"unknown tiny CLIP kind {kind!r}; valid: {', '.join(TINY_CONFIGS)}")
    if checkpoint not in CHECKPOINT_NAMES:
        raise ValueError(f"unknown checkpoint name {checkpoint!r}; valid: {', '.join(CHECKPOINT_NAMES)}")
    cfg = json.loads(json.dumps(TINY_CONFIGS[kind]))
    torch.manual_seed(seed)
    model = open_clip.CLIP(**cfg)
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    size = cfg["vision_cfg"]["image_size"]
    config = {"model_cfg": cfg, "preprocess_cfg": {"mean": list(open_clip.OPENAI_DATASET_MEAN),
                                                   "std": list(open_clip.OPENAI_DATASET_STD), "size": size}}
    (path / "open_clip_config.json").write_text(json.dumps(config, indent=2))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if checkpoint.endswith(".bin"):
        torch.save(state, path / checkpoint)
    else:
        save_file(state, str(path / checkpoint))
    return str(path)


def make_random_labeler(model: str = "convnext_large_d_320", size: str = "full", *, device=None, dtype=None,
                        **options):
    """A Labeler with random weights, in memory, for timing and memory benchmarks (no download).

    size="full": open_clip's architecture `model` (default DiffCut's ConvNeXt-L at 320 px, ~1.4 GB
    in fp32), built by `open_clip.create_model` without pretrained weights; size="tiny": the tiny
    ConvNeXt of `make_tiny_clip_weights`, written to a temporary folder and loaded through
    `create_labeler`. options: LabelerConfig fields (text embeddings are not cached on disk).
    """
    import tempfile

    import open_clip
    import torch

    from ovseg.labels.labeler import Labeler, LabelerConfig, create_labeler

    options = {"disk_cache": False, **options}
    if size == "tiny":
        with tempfile.TemporaryDirectory() as tmp:
            return create_labeler(weights=make_tiny_clip_weights(tmp), device=device, dtype=dtype, **options)
    if size != "full":
        raise ValueError(f"size must be 'full' or 'tiny', got {size!r}")
    device, dtype = torch.device(device or "cpu"), dtype or torch.float32
    torch.manual_seed(0)
    clip = open_clip.create_model(model, pretrained=None, pretrained_text=False).to(device=device, dtype=dtype)
    return Labeler(clip.eval(), open_clip.get_tokenizer(model), identity=f"random:{model}",
                   config=LabelerConfig(**options), device=device, dtype=dtype)
