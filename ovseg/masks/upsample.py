"""Low-resolution segments -> full-resolution segment map (METHOD.md section 4, DiffCut).

Each segment gets a *concept embedding*: the masked spatial mean of its L2-normalised low-res
features. The normalised features are upsampled bilinearly (``align_corners=False``) to the output
size and every output pixel takes the segment whose concept has the largest dot product with it.

Implementation note (exact, not an approximation): bilinear interpolation is linear and separable,
and the dot product with the concepts is linear over channels, so

    argmax_k <concept_k, up(X)(p)> = argmax_k up(S_k)(p),   S = concepts @ X   (K, h, w)

with ``up(Z) = Ry @ Z @ Rx^T`` for 1-D interpolation matrices Ry (H, h) and Rx (W, w) that are
exactly the weights ``F.interpolate(mode="bilinear", align_corners=False)`` uses. So we never build
the (C, H, W) upsampled feature tensor: memory is O(K * rows * W) per chunk of output rows, and
compute is O(K*C*h*w + K*H*w*h + K*H*W*w). For 2048x2048, C=1280, K=30, 32x32 features the full
upsampled features would be 20 GiB in fp32; here the peak is about K * chunk_rows * W * 4 bytes
(30 * 256 * 2048 * 4 = 63 MiB with the default chunk). Time and memory at that size:
docs/benchmarks-upsample.md.

Ids: output ids are the *input* ids (not relabelled). A small segment can lose every pixel at high
resolution (another concept wins everywhere it was), so an id present in ``segments`` may be
absent from the output; call ``torch.unique(out, return_inverse=True)`` to get dense ids 0..K'-1.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["assign_concepts", "concept_embeddings", "interpolation_matrix"]


def interpolation_matrix(n_in: int, n_out: int, *, dtype=torch.float32, device=None) -> torch.Tensor:
    """1-D linear interpolation weights (n_out, n_in), ``align_corners=False`` (PyTorch's rule).

    ``R @ v`` equals ``F.interpolate(v[None, None], size=n_out, mode="linear", align_corners=False)``;
    ``Ry @ Z @ Rx.T`` equals 2-D bilinear interpolation of Z (h, w) to (H, W).
    """
    eye = torch.eye(n_in, dtype=dtype, device=device)[None]  # (1, n_in, n_in): channel i = e_i
    R = F.interpolate(eye, size=n_out, mode="linear", align_corners=False)  # (1, n_in, n_out)
    return R[0].T.contiguous()


def concept_embeddings(feats: torch.Tensor, segments: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked spatial mean of L2-normalised features per segment (DiffCut concept embedding).

    feats (C, h, w) float, segments (h, w) int. Returns (ids (K,) int64 sorted, concepts (K, C)):
    concepts[k] is the mean of the normalised features over the pixels with id ids[k] (not
    re-normalised, as in DiffCut: a less coherent segment gets a shorter concept vector).
    """
    C = feats.shape[0]
    X = F.normalize(feats.float().reshape(C, -1), dim=0)  # (C, N), unit norm per position
    ids, inverse = torch.unique(segments.reshape(-1), return_inverse=True)
    K = ids.numel()
    sums = torch.zeros(K, C, dtype=X.dtype, device=X.device).index_add_(0, inverse, X.T)
    counts = torch.bincount(inverse, minlength=K).to(X.dtype)
    return ids, sums / counts[:, None]


def _check(feats: torch.Tensor, segments: torch.Tensor, size) -> tuple[int, int]:
    if not isinstance(feats, torch.Tensor) or not isinstance(segments, torch.Tensor):
        raise TypeError("feats and segments must be torch.Tensor")
    if feats.dim() != 3:
        raise ValueError(f"feats must be (C, h, w), got shape {tuple(feats.shape)}")
    if segments.shape != feats.shape[1:]:
        raise ValueError(
            f"segments {tuple(segments.shape)} must match the feature grid {tuple(feats.shape[1:])}"
        )
    if segments.dtype.is_floating_point or segments.dtype == torch.bool:
        raise TypeError(f"segments must be an integer tensor, got {segments.dtype}")
    if isinstance(size, int):
        size = (size, size)
    H, W = (int(s) for s in size)
    if H <= 0 or W <= 0:
        raise ValueError(f"size must be positive, got {size}")
    return H, W


@torch.no_grad()
def assign_concepts(
    feats: torch.Tensor,
    segments: torch.Tensor,
    size: tuple[int, int] | int,
    *,
    chunk_rows: int = 256,
) -> torch.Tensor:
    """Full-resolution segment map from low-res segments (METHOD.md section 4).

    feats (C, h, w) or (B, C, h, w) float; segments (h, w) or (B, h, w) int; size (H, W) or H.
    Returns (H, W) or (B, H, W) int64 with the input ids (an id may vanish, see module docstring).
    Runs on the device of ``feats``; memory per chunk is K * chunk_rows * W floats.
    """
    if isinstance(feats, torch.Tensor) and feats.dim() == 4:  # batched form: a loop, no padding of K
        if not isinstance(segments, torch.Tensor) or segments.dim() != 3 or segments.shape[0] != feats.shape[0]:
            raise ValueError("batched feats (B, C, h, w) need segments (B, h, w)")
        return torch.stack([assign_concepts(f, s, size, chunk_rows=chunk_rows) for f, s in zip(feats, segments)])
    H, W = _check(feats, segments, size)
    C, h, w = feats.shape
    segments = segments.to(feats.device)
    ids, concepts = concept_embeddings(feats, segments)  # (K,), (K, C)
    X = F.normalize(feats.float().reshape(C, -1), dim=0)
    S = (concepts @ X).reshape(-1, h, w)  # (K, h, w): <concept_k, x(p)> at low res
    Ry = interpolation_matrix(h, H, device=X.device)  # (H, h)
    Rx = interpolation_matrix(w, W, device=X.device)  # (W, w)
    SRx = S @ Rx.T  # (K, h, W): upsample columns once
    out = torch.empty(H, W, dtype=torch.int64, device=X.device)
    for r0 in range(0, H, max(1, chunk_rows)):
        r1 = min(H, r0 + max(1, chunk_rows))
        scores = torch.einsum("rh,khW->krW", Ry[r0:r1], SRx)  # (K, rows, W) bilinear scores
        out[r0:r1] = scores.argmax(0)
    return ids[out]
