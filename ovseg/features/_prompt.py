"""The empty-prompt conditioning of a diffusion UNet, computed once and cached on disk.

DiffCut conditions the UNet on the empty prompt (METHOD.md section 1). Those embeddings never
change, so they are computed once per (weights, text-encoder config) and kept in
`ovseg.io.paths.cache_root() / "prompt-embeds"`; later runs never load the text encoders.
`--no-cache` leaves this cache on: it is a pure function of the weights (one file of ~0.3 MB per
backbone), and without it every run would load the text encoders (1.6 GB for SDXL-type models)
again. `ovseg cache clear` removes it.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from ovseg.io.paths import cache_root
from ovseg.io import atomic_write

TEXT_ENCODER_CONFIGS = ["text_encoder/config.json", "text_encoder_2/config.json"]


def cache_file(weights_id: str, path: str | os.PathLike, *, sdxl: bool) -> Path:
    """Cache file keyed by the repo id or local path, the conditioning kind (SDXL-type: with a
    pooled embedding) and a content hash of the text encoder configs."""
    digest = hashlib.sha256(weights_id.encode() + (b"\0sdxl" if sdxl else b"\0sd1"))
    for rel in TEXT_ENCODER_CONFIGS:
        f = Path(path) / rel
        if f.is_file():
            digest.update(rel.encode() + f.read_bytes())
    return cache_root() / "prompt-embeds" / f"{digest.hexdigest()[:32]}.safetensors"


def load_cached(file: Path) -> dict[str, torch.Tensor] | None:
    if not file.is_file():
        return None
    from safetensors.torch import load_file

    try:
        return load_file(str(file))
    except Exception:  # unreadable (a disk error, a foreign file): compute it again
        return None


def save_cached(file: Path, embeds: dict[str, torch.Tensor]) -> None:
    """Store; a cache that cannot be written warns once (the embeddings are then recomputed on the
    next run) and never fails the model."""
    from safetensors.torch import save

    data = save({k: v.detach().float().contiguous().cpu() for k, v in embeds.items()})
    try:
        atomic_write(file, lambda f: f.write(data))  # a concurrent reader never sees half a file
    except OSError as err:
        from ovseg.io.cache import warn_write_failure

        warn_write_failure("prompt-embeds", file.parent, err)


@torch.no_grad()
def encode_empty_prompt(path: str | os.PathLike, *, sdxl: bool) -> dict[str, torch.Tensor]:
    """Empty-prompt embeddings, as the SD / SDXL pipelines compute them for prompt "".

    Returns {"prompt_embeds": (1, 77, D)} and for SDXL-type models also
    {"pooled_prompt_embeds": (1, P)}: the penultimate hidden states of both text encoders
    concatenated (D = 768 + 1280), pooled = text_encoder_2's projected embedding.
    """
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    path = Path(path)

    def load(sub: str, cls):
        variant = "fp16" if (path / sub / "model.fp16.safetensors").is_file() else None
        return cls.from_pretrained(path, subfolder=sub, variant=variant, dtype=torch.float32).eval()

    def ids(sub: str) -> torch.Tensor:
        tok = CLIPTokenizer.from_pretrained(path, subfolder=sub)
        return tok("", padding="max_length", max_length=tok.model_max_length, truncation=True,
                   return_tensors="pt").input_ids

    if not sdxl:  # SD1.x: last hidden state of the single text encoder
        return {"prompt_embeds": load("text_encoder", CLIPTextModel)(ids("tokenizer"))[0]}
    out1 = load("text_encoder", CLIPTextModel)(ids("tokenizer"), output_hidden_states=True)
    out2 = load("text_encoder_2", CLIPTextModelWithProjection)(ids("tokenizer_2"), output_hidden_states=True)
    return {
        "prompt_embeds": torch.cat([out1.hidden_states[-2], out2.hidden_states[-2]], dim=-1),
        "pooled_prompt_embeds": out2.text_embeds,
    }
