"""Text embeddings of a vocabulary: every synonym through every template, averaged, normalised.

Cached per (model identity, templates, synonyms): in memory, and on disk under
`ovseg.io.paths.cache_root() / "text-embeds"` (unless `disk=False`: `--no-cache`), so a large
vocabulary is encoded once per machine. A cache that cannot be written warns once.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from ovseg.io.paths import cache_root
from ovseg.io import atomic_write

log = logging.getLogger(__name__)

_MEMORY: dict[str, torch.Tensor] = {}  # cache key -> (S, D) float32 on CPU


def cache_key(model_id: str, templates: Sequence[str], synonyms: Sequence[str]) -> str:
    blob = json.dumps([model_id, list(templates), list(synonyms)], ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]


@torch.no_grad()
def encode_names(
    encode_text: Callable[[torch.Tensor], torch.Tensor],
    tokenizer: Callable[[list[str]], torch.Tensor],
    names: Sequence[str],
    templates: Sequence[str],
    *,
    device: torch.device,
    batch_size: int = 1024,
    progress: bool | None = False,
) -> torch.Tensor:
    """(S, D) float32: for each name, the mean over templates of the L2-normalised prompt
    embeddings, normalised again (the CLIP zero-shot recipe, Radford et al. 2021, and ViLD).

    Prompts go through the text tower `batch_size` at a time (a template group is never split
    across names, so at least one name's prompts form a batch). progress: a tqdm bar over names
    (None: only on a terminal).
    """
    per_batch = max(1, batch_size // len(templates))  # names per forward pass
    out = []
    bar = None
    if progress is not False:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(names), unit="name", desc="text embeddings", leave=False, disable=None if progress is None else False)
    for start in range(0, len(names), per_batch):
        chunk = names[start : start + per_batch]
        prompts = [template.format(name) for name in chunk for template in templates]
        tokens = tokenizer(prompts).to(device)
        emb = F.normalize(encode_text(tokens).float(), dim=-1)
        emb = emb.reshape(len(chunk), len(templates), -1).mean(1)
        out.append(F.normalize(emb, dim=-1).cpu())
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    return torch.cat(out)


def fast_encode_text(clip: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """`clip.encode_text`, cut to the longest prompt in the batch when that gives the same result.

    CLIP's text tower is causal and reads its embedding at the end-of-text token (the largest
    token id, "argmax" pooling), so the padding after it changes nothing; a prompt is ~15 tokens
    of the 77-token context, so this is ~4x less work for the first encoding of a vocabulary.
    Other text towers (HF, CoCa, eos/last pooling, no causal mask) use `encode_text` as is.
    """
    mask = getattr(clip, "attn_mask", None)
    if type(clip).__name__ != "CLIP" or mask is None or getattr(clip, "text_pool_type", None) != "argmax":
        return clip.encode_text

    def encode(tokens: torch.Tensor) -> torch.Tensor:
        length = int(tokens.argmax(dim=-1).max()) + 1  # through the last end-of-text token
        tokens = tokens[:, :length]
        cast = clip.transformer.get_cast_dtype()
        x = clip.token_embedding(tokens).to(cast) + clip.positional_embedding[:length].to(cast)
        x = clip.ln_final(clip.transformer(x, attn_mask=mask[:length, :length]))
        x = x[torch.arange(len(tokens), device=x.device), tokens.argmax(dim=-1)]
        proj = clip.text_projection
        if proj is None:
            return x
        return proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj

    return encode


def cached_text_embeddings(
    key: str,
    compute: Callable[[], torch.Tensor],
    *,
    disk: bool = True,
) -> torch.Tensor:
    """Memory, then disk, then `compute()`; what is computed is stored in both."""
    if key in _MEMORY:
        return _MEMORY[key]
    path = cache_root() / "text-embeds" / f"{key}.pt" if disk else None
    if path is not None and path.is_file():
        try:
            emb = torch.load(path, map_location="cpu", weights_only=True)
            _MEMORY[key] = emb
            return emb
        except Exception as err:  # a truncated file from an interrupted run: recompute
            log.warning("ignoring unreadable text-embedding cache %s (%s)", path, err)
    emb = compute()
    _MEMORY[key] = emb
    if path is not None:
        try:
            atomic_write(path, lambda f: torch.save(emb, f))  # concurrent runs never read half a file
        except OSError as err:  # an unwritable cache costs time, never a result
            from ovseg.io.cache import warn_write_failure

            warn_write_failure("text-embeds", path.parent, err)
    return emb


def clear_memory_cache() -> None:
    _MEMORY.clear()
