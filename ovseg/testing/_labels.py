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


def make_planted_labeler(plants: dict[tuple[int, int, int], str], directory: str | os.PathLike, *,
                         bank=None, noise: float = 0.1, seed: int = 0, tolerance: int = 12, dim: int = 256,
                         disk_cache: bool = False):
    """A labeler with a known answer, for automatic naming.

    Text side: the real path (templates, batching, cache) of the tiny CLIP of
    `make_tiny_clip_weights(directory)`, loaded through `create_labeler`, except the text tower:
    each distinct prompt becomes a fixed random unit vector of `dim` dimensions (seeded by its
    tokens), because a random tiny tower maps all names to nearly one direction (cosines > 0.99).
    Image side: pixels of colour `rgb` carry the bank text embedding of name `plants[rgb]`, so a
    segment's pooled embedding is the area-weighted mean of the planted names' embeddings under
    it (other colours add nothing), plus Gaussian noise of norm ~`noise`, normalised.

    plants: {(r, g, b) 0..255: a display name of `bank`}; bank: a NameBank (None: the shipped
    one); tolerance: max per-channel difference (0..255) for a pixel to match a colour.
    """
    from ovseg.labels._auto import load_bank
    from ovseg.labels.labeler import create_labeler

    base = create_labeler(weights=make_tiny_clip_weights(directory), disk_cache=disk_cache)
    base.__class__ = _planted_class()
    base.identity = f"planted:{seed}:{dim}"
    base._plants, base._bank = dict(plants), bank if bank is not None else load_bank()
    base._noise, base._seed, base._tolerance, base._dim, base._planted = noise, seed, tolerance, dim, None
    missing = [n for n in base._plants.values() if n not in [c[0] for c in base._bank.classes]]
    if missing:
        raise ValueError(f"planted names not in the bank: {missing}")
    return base


def _planted_class():
    import zlib

    import torch
    import torch.nn.functional as F

    from ovseg.labels._auto import bank_text
    from ovseg.labels.labeler import Labeler, _check_segments

    class PlantedLabeler(Labeler):
        def _encode_text(self, tokens):
            out = []
            for row in tokens.cpu():
                end = int(row.argmax()) + 1  # through the end-of-text token
                gen = torch.Generator().manual_seed(zlib.crc32(row[:end].numpy().tobytes()) + self._seed)
                out.append(torch.randn(self._dim, generator=gen))
            return torch.stack(out)

        def _planted_text(self):
            if self._planted is None:
                text, owner = bank_text(self, self._bank, progress=False)
                names = [c[0] for c in self._bank.classes]
                rows = [int(torch.nonzero(owner == names.index(n))[0]) for n in self._plants.values()]
                self._planted = text[rows].cpu()  # (P, D): each planted name's display-name embedding
            return self._planted

        @torch.no_grad()
        def dense_features_batch(self, images, *, batch_size: int = 8):
            return [image.float() for image in images]  # the "features" are the colours

        @torch.no_grad()
        def pool_segments(self, image, segments, *, features=None):
            colours = (features if features is not None else image).float().cpu()
            segments = _check_segments(segments, colours).cpu()
            colours = F.interpolate(colours[None], size=tuple(segments.shape), mode="nearest")[0]
            rgb = torch.tensor(list(self._plants), dtype=torch.float32) / 255.0  # (P, 3)
            near = (colours[None] - rgb[:, :, None, None]).abs().amax(1) <= self._tolerance / 255.0  # (P, H, W)
            text = self._planted_text()
            ids = torch.unique(segments)
            ids = ids[ids >= 0]
            rows = []
            for sid in ids.tolist():
                mask = segments == sid
                share = (near & mask).flatten(1).sum(1).float() / mask.sum()  # (P,) fraction per colour
                gen = torch.Generator().manual_seed(self._seed * 100003 + sid)
                eps = torch.randn(text.shape[1], generator=gen) * (self._noise / text.shape[1] ** 0.5)
                rows.append(share @ text + eps)
            emb = torch.stack(rows) if rows else text.new_zeros((0, text.shape[1]))
            return ids, F.normalize(emb, dim=-1)

    return PlantedLabeler
