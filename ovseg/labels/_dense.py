"""Dense (per-location) CLIP image embeddings, and pooling them inside segments.

Two open_clip vision towers are supported, and split the same way into `dense` (image -> map)
and `project` (pooled map vectors -> joint image-text space):

- timm CNN trunks (ConvNeXt, the DiffCut default): `dense` = `trunk.forward_features`, the last
  stage's map (stride 32 for ConvNeXt); `project` = the trunk's head (global pool, a no-op on
  one pooled vector, then the head LayerNorm) and open_clip's `visual.head` (the MLP
  projection). open_clip pools before that norm too, so a mask covering the whole image
  gives exactly the model's own image embedding.
- ViT towers: the image embedding is the class token, and plain patch tokens are poorly
  aligned with text (MaskCLIP, Zhou et al. ECCV 2022). We use MaskCLIP's fix: in the last block
  each patch keeps only its own value vector (no query-key attention), projected by the
  attention output layer; like ClearCLIP (Lan et al. ECCV 2024) we drop that block's residual
  and MLP, which carry the global, noisy part. Then `ln_post` and `proj` per patch, so `dense`
  is already in the joint space and `project` is the identity. Positional embeddings are
  interpolated (bicubic) to the input's patch grid.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ovseg.io import nearest as _nearest


def tower_kind(visual: torch.nn.Module) -> str:
    """"timm" or "vit" for the supported open_clip vision towers; an error naming it otherwise."""
    if hasattr(visual, "trunk") and hasattr(visual.trunk, "forward_features"):
        return "timm"
    if hasattr(visual, "conv1") and hasattr(visual, "transformer") and hasattr(visual, "ln_post"):
        if getattr(visual, "attn_pool", None) is not None:
            raise ValueError("open_clip ViT towers with attentional pooling (CoCa) are not supported")
        return "vit"
    raise ValueError(f"dense CLIP features are not implemented for {type(visual).__name__} vision towers; "
                     "supported: timm CNN trunks (ConvNeXt) and open_clip VisionTransformer")


def stride_of(visual: torch.nn.Module) -> int:
    """Input pixels per dense feature cell."""
    if tower_kind(visual) == "vit":
        return int(visual.patch_size[0])
    reductions = [info["reduction"] for info in getattr(visual.trunk, "feature_info", []) if "reduction" in info]
    return int(reductions[-1]) if reductions else 32


def _vit_pos_embed(visual, grid: tuple[int, int]) -> torch.Tensor:
    """(1 + h*w, width) positional embeddings, the patch part resized to `grid` (bicubic)."""
    pos = visual.positional_embedding
    cls_pos, patch_pos = pos[:1], pos[1:]
    old = visual.grid_size
    if tuple(grid) == tuple(old):
        return pos
    patch_pos = patch_pos.reshape(1, old[0], old[1], -1).permute(0, 3, 1, 2)
    patch_pos = F.interpolate(patch_pos.float(), size=grid, mode="bicubic", align_corners=False)
    patch_pos = patch_pos.to(pos.dtype).permute(0, 2, 3, 1).reshape(grid[0] * grid[1], -1)
    return torch.cat([cls_pos, patch_pos])


def _vit_dense(visual, images: torch.Tensor) -> torch.Tensor:
    x = visual.conv1(images)  # (B, width, h, w)
    B, width, h, w = x.shape
    x = x.flatten(2).transpose(1, 2)  # (B, h*w, width)
    cls = visual.class_embedding.to(x.dtype).view(1, 1, -1).expand(B, -1, -1)
    x = torch.cat([cls, x], dim=1) + _vit_pos_embed(visual, (h, w)).to(x.dtype)
    x = visual.ln_pre(x)
    transformer = visual.transformer
    batch_first = getattr(transformer, "batch_first", True)
    x = x if batch_first else x.transpose(0, 1)
    for block in transformer.resblocks[:-1]:
        x = block(x)
    x = x if batch_first else x.transpose(0, 1)  # (B, 1+h*w, width)
    last = transformer.resblocks[-1]
    attn = last.attn
    # MaskCLIP: value embedding of each token alone, then the attention's output projection.
    v_weight = attn.in_proj_weight[2 * width:]
    v_bias = attn.in_proj_bias[2 * width:] if attn.in_proj_bias is not None else None
    v = F.linear(last.ln_1(x[:, 1:]), v_weight, v_bias)
    x = attn.out_proj(v)  # (B, h*w, width); no residual, no MLP (ClearCLIP)
    x = visual.ln_post(x)
    if visual.proj is not None:
        x = x @ visual.proj
    return x.transpose(1, 2).reshape(B, -1, h, w)


def dense_features(visual: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """images (B, 3, H, W) normalised -> feats (B, C, H/stride, W/stride), before `project`."""
    if tower_kind(visual) == "vit":
        return _vit_dense(visual, images)
    feats = visual.trunk.forward_features(images)
    if feats.ndim != 4:
        raise ValueError(f"timm trunk {type(visual.trunk).__name__} returns {tuple(feats.shape)} features, "
                         "expected a (B, C, h, w) map: only CNN trunks are supported")
    return feats


def project(visual: torch.nn.Module, pooled: torch.Tensor) -> torch.Tensor:
    """pooled (N, C) dense vectors -> (N, D) image embeddings (not normalised)."""
    if tower_kind(visual) == "vit":
        return pooled
    # timm head on a 1x1 map: its global pool is then a no-op, its norm the LayerNorm the
    # whole-image path applies after pooling; fc is Identity in open_clip (num_classes=0).
    x = visual.trunk.forward_head(pooled[:, :, None, None])
    return visual.head(x)


def segment_weights(segments: torch.Tensor, grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft masks of each segment on the feature grid.

    segments (H, W) int64, ids >= 0 (negative = ignored pixels).
    Returns (ids (K,) int64, weights (K, h, w) float32): the fraction of each feature cell's
    pixels that belong to the segment (area downsampling), so a segment smaller than a cell still
    has non-zero weight.
    """
    ids = torch.unique(segments)
    ids = ids[ids >= 0]
    if ids.numel() == 0:
        return ids, segments.new_zeros((0, *grid), dtype=torch.float32)
    # a chunk of full-resolution masks at a time: K masks of a 1024^2 image would be K * 4 MB
    chunks = [F.adaptive_avg_pool2d((segments[None] == chunk[:, None, None]).float(), grid)
              for chunk in ids.split(16)]
    return ids, torch.cat(chunks)


def nearest_exact_index(n_in: int, n_out: int, device=None) -> torch.Tensor:
    """(n_out,) int64 source indices of a nearest-exact resize n_in -> n_out, on `device`: ovseg's
    one rule (`ovseg.io.nearest.nearest_exact_index`, exact integers)."""
    return torch.from_numpy(_nearest.nearest_exact_index(n_in, n_out)).to(device)


def binary_segment_masks(segments: torch.Tensor, grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Binary masks of each segment on the feature grid, as DiffCut's mask pooling (METHOD.md 6).

    segments (H, W) int64, ids >= 0 (negative = ignored). Each segment's binary mask is resized to
    `grid` by nearest-exact sampling (one source pixel per cell, the one that holds the cell's
    centre: `ovseg.io.nearest`; torch's float32 `F.interpolate(mask, mode="nearest-exact")` equals it
    except where a centre falls exactly on a pixel boundary), so a cell belongs to exactly one segment.
    Returns (ids (K,) int64, masks (K, h, w) float32 in {0, 1}).

    Departure from the published code (a defect fix, docs/fidelity.md): a segment that no grid cell
    samples (smaller than a cell) would pool a zero vector there, and every such segment would get
    the same embedding whatever its content; here it falls back to its area-fraction weights.
    """
    ids = torch.unique(segments)
    ids = ids[ids >= 0]
    if ids.numel() == 0:
        return ids, segments.new_zeros((0, *grid), dtype=torch.float32)
    (H, W), (h, w) = segments.shape, grid
    sampled = segments[nearest_exact_index(H, h, segments.device)][:, nearest_exact_index(W, w, segments.device)]
    masks = (sampled[None] == ids[:, None, None]).float()  # (K, h, w)
    empty = masks.flatten(1).sum(1) == 0
    if empty.any():
        masks[empty] = segment_weights(torch.where(torch.isin(segments, ids[empty]), segments, -1), grid)[1]
    return ids, masks


def pool(feats: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """feats (C, h, w), weights (K, h, w) -> (K, C): weighted mean of the features in each mask."""
    C = feats.shape[0]
    w = weights.flatten(1).to(feats.dtype)
    total = w.sum(1, keepdim=True).clamp_min(torch.finfo(feats.dtype).tiny)
    return (w @ feats.reshape(C, -1).T) / total


def clip_input(image: torch.Tensor, resolution: int | None, stride: int) -> torch.Tensor:
    """(3, H, W) [0, 1] -> the CLIP input (3, H', W'), bilinear (align_corners=False).

    resolution None: the image as given (DiffCut feeds the backbone's 1024 x 1024 input), only
    resized if a side is not a multiple of `stride` (to the nearest multiple, at least `stride`).
    Otherwise the short side becomes `resolution` (`resize_for`'s sizes), antialiased when shrinking.
    """
    H, W = image.shape[-2:]
    if resolution is None:
        size = [max(stride, int(math.floor(s / stride + 0.5)) * stride) for s in (H, W)]
    else:
        scale = resolution / min(H, W)
        size = [max(stride, int(math.floor(s * scale / stride + 0.5)) * stride) for s in (H, W)]
    if list(size) == [H, W]:
        return image
    shrink = size[0] < H or size[1] < W
    return F.interpolate(image[None], size=size, mode="bilinear", align_corners=False, antialias=shrink)[0]


def resize_for(image: torch.Tensor, resolution: int, stride: int) -> torch.Tensor:
    """(3, H, W) -> (3, H', W'): short side `resolution`, both sides rounded to a multiple of `stride`."""
    H, W = image.shape[-2:]
    scale = resolution / min(H, W)
    size = [max(stride, int(math.floor(s * scale / stride + 0.5)) * stride) for s in (H, W)]
    return F.interpolate(image[None], size=size, mode="bicubic", align_corners=False, antialias=True)[0]
