"""Feature affinity of DiffCut (METHOD.md section 2): min-max normalised cosine, raised to alpha."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ovseg.settings.defaults import ALPHA


def check_features(feats: object, *, name: str = "feats", finite: bool = True) -> torch.Tensor:
    """Validate a feature tensor at the edge and return it as floating point.

    Raises TypeError for a non-tensor or non-numeric tensor and ValueError for an empty tensor or
    one holding NaN/inf, naming how many entries are bad, so nothing fails deep inside the cut.
    ``finite=False`` skips the NaN/inf pass: for callers that build the affinity with
    ``affinity_checked``, which finds non-finite features at no extra cost (a NaN or inf in a
    feature vector makes its cosines NaN, and the min-max already reads every cosine).
    """
    if not isinstance(feats, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(feats).__name__}")
    if feats.dtype == torch.bool or feats.is_complex():
        raise TypeError(f"{name} must be a real floating-point tensor, got dtype {feats.dtype}")
    if feats.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(feats.shape)})")
    if not feats.is_floating_point():
        feats = feats.float()
    if finite:
        _raise_if_not_finite(feats, name)
    return feats


def batch_grid(feats: torch.Tensor) -> tuple[int, int]:
    """(h, w) of a batch of feature maps (B, C, h, w); ValueError for another shape."""
    if feats.ndim != 4:
        raise ValueError(f"feats must be (B, C, h, w), got shape {tuple(feats.shape)}")
    return tuple(feats.shape[2:])


def _raise_if_not_finite(feats: torch.Tensor, name: str = "feats") -> None:
    bad = ~torch.isfinite(feats)
    if bool(bad.any()):
        raise ValueError(
            f"{name} holds {int(bad.sum())} non-finite value(s) (NaN or inf) out of "
            f"{feats.numel()}; the normalized cut needs finite features"
        )


def gram(x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """x @ x.T for (N, C) rows, computing only the blocks on and above the diagonal.

    The lower blocks are the transposes of the upper ones, so the result is exactly symmetric and
    the multiply costs about (1 + 1/b) / 2 of the full product (b row blocks; timings in
    docs/benchmarks-ncut.md, "Symmetric Gram").
    """
    out, edges = _gram_upper(x, out)
    for a, b in zip(edges[:-1], edges[1:]):
        out[b:, a:b] = out[a:b, b:].T
    return out


def _edges(N: int) -> list[int]:
    blocks = max(1, min(8, N // 128))
    return [N * i // blocks for i in range(blocks + 1)]


def _gram_upper(x: torch.Tensor, out: torch.Tensor | None) -> tuple[torch.Tensor, list[int]]:
    """The row bands out[a:b, a:] of x @ x.T (the blocks on and above the diagonal; below them
    ``out`` is left unwritten when there is more than one band) and the band edges."""
    N = x.shape[0]
    edges = _edges(N)
    if len(edges) == 2:
        return (x @ x.T if out is None else torch.mm(x, x.T, out=out)), edges
    if out is None:
        out = torch.empty(N, N, dtype=x.dtype, device=x.device)
    for a, b in zip(edges[:-1], edges[1:]):
        torch.mm(x[a:b], x[a:].T, out=out[a:b, a:])  # rows a:b against every row from a on
    return out, edges


def affinity(feats: torch.Tensor, *, alpha: float = ALPHA) -> torch.Tensor:
    """Dense affinity matrix W of DiffCut.

    Args:
        feats: (C, h, w) feature map or (N, C) feature rows, any floating dtype and device.
        alpha: exponent on the normalised cosine (paper default 10); larger keeps only the
            strongest similarities.

    Returns:
        W (N, N) float32 (float64 if the input is float64), symmetric, entries in [0, 1], on the
        features' device, N = h*w positions in raster order.

    Zero feature vectors have cosine 0 with everything (no NaN). If every entry of the cosine
    matrix is equal (one position, constant features, all-zero features) there is no structure
    and W is all ones, which the cut turns into one segment.
    """
    feats = check_features(feats)
    if feats.ndim not in (2, 3):
        raise ValueError(f"feats must be (C, h, w) or (N, C), got shape {tuple(feats.shape)}")
    if not (alpha > 0 and alpha == alpha and alpha != float("inf")):
        raise ValueError(f"alpha must be a positive finite number, got {alpha}")
    return affinity_checked(feats, alpha)[0]


def affinity_checked(feats: torch.Tensor, alpha: float, *,
                     out: torch.Tensor | None = None) -> tuple[torch.Tensor, float, float]:
    """``affinity`` without input validation, for callers that validated once at their entry.

    Args:
        feats: (C, h, w) or (N, C) floating tensor already passed through ``check_features``.
        alpha: positive finite exponent.
        out: a contiguous (N, N) tensor of the result's dtype and device to build W in (a batch's
            slice: no copy of W into a stacked batch); the same values as without it.

    Returns:
        (W, lo, hi): W as ``affinity`` returns it, and bounds of its entries known by
        construction (all ones: 1, 1; otherwise min 0 exactly and max <= 1 after the clamp), so the
        cut needs no further pass over W to validate it.

    Raises:
        ValueError: the features hold NaN or inf (found from the cosine bounds, no extra pass).
    """
    cos, edges, bands, lo, hi = cosine_bands(feats, out)
    span = hi - lo
    if span <= 1e-6 * max(1.0, abs(hi)):
        return (torch.ones_like(cos) if out is None else cos.fill_(1.0)), 1.0, 1.0
    # min-max over the whole matrix (METHOD.md 2), then W = C ** alpha, a soft threshold; in place,
    # chunk by chunk so the passes run in cache, on the upper bands only, each band then mirrored
    # below the diagonal (an element-wise map of a symmetric matrix: the same values as mapping
    # every entry, at about half the element-wise work). The minimum entry maps to
    # (lo - lo) / span = 0 exactly, 0 ** alpha = 0; every entry <= 1
    cpu = cos.device.type == "cpu"
    if not _whole(alpha):  # pow_'s result can depend on the memory layout: map the full matrix
        for a, b in zip(edges[:-1], edges[1:]):
            cos[b:, a:b] = cos[a:b, b:].T
        flat = cos.view(-1)
        chunk = _CHUNK if cpu else flat.numel()  # a GPU: one launch per pass
        for start in range(0, flat.numel(), chunk):
            _power(flat[start:start + chunk].sub_(lo).div_(span).clamp_(0.0, 1.0), alpha)
        return cos, 0.0, 1.0
    for (a, b), band in zip(zip(edges[:-1], edges[1:]), bands):  # only IEEE sub, div, clamp, mul
        rows = max(1, _CHUNK // band.shape[1]) if cpu else band.shape[0]  # a GPU: one launch per band
        for r in range(0, band.shape[0], rows):
            _power(band[r:r + rows].sub_(lo).div_(span).clamp_(0.0, 1.0), alpha)
        cos[b:, a:b] = cos[a:b, b:].T
    return cos, 0.0, 1.0


def cosine_bands(feats: torch.Tensor, out: torch.Tensor | None = None):
    """The cosine matrix of checked features (C, h, w) or (N, C), upper row bands only -> (cos
    (N, N): rows a:b hold their entries from column a on, below them unwritten when there is more
    than one band; edges: the band edges; bands: the views cos[a:b, a:]; lo, hi: min and max cosine).
    Raises ValueError for non-finite features (found from the bounds, no extra pass)."""
    if feats.dtype not in (torch.float32, torch.float64):
        feats = feats.float()  # fp16/bf16 features are cast to fp32 before the cut (METHOD.md 1)
    if feats.ndim == 3:  # (C, h, w): normalise each position's column, then (N, C) rows, raster order
        cols = feats.flatten(1)
        # column norms as a plain sum of squares: torch's norm over the outer dim is slower (docs/benchmarks-ncut.md)
        x = (cols / (cols * cols).sum(0).sqrt_().clamp_min_(1e-12)).T  # F.normalize over C
    else:
        x = F.normalize(feats, dim=1)  # L2-normalise each position; zero rows stay zero
    cos, edges = _gram_upper(x, out)  # cosine similarity: the upper row bands (symmetric)
    bands = [cos[a:b, a:] for a, b in zip(edges[:-1], edges[1:])]  # hold every entry, by symmetry
    ext = [torch.aminmax(band) for band in bands]
    lo, hi = float(min(e.min for e in ext)), float(max(e.max for e in ext))
    if not (math.isfinite(lo) and math.isfinite(hi)):  # NaN/inf in a feature vector: NaN cosines
        _raise_if_not_finite(feats)
        raise ValueError("the cosine matrix holds non-finite values; the normalized cut needs finite features")
    return cos, edges, bands, lo, hi


_CHUNK = 1 << 17  # values per chunk of the affinity's element-wise passes (512 KiB of float32)


def _whole(alpha: float) -> bool:
    """alpha is computed by repeated squaring (exact IEEE multiplies, layout-independent)."""
    return alpha == int(alpha) and 1 <= alpha <= 64


def _power(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """x ** alpha in place. A whole alpha from 1 to 64 by repeated squaring (alpha = 10: four
    multiplies, within ~5 ulp of pow; torch's pow for a general exponent cost 60 % of the affinity's
    element-wise time at N = 4096), any other alpha by ``pow_``."""
    if not _whole(alpha):
        return x.pow_(alpha)
    e, acc, base = int(alpha), None, x
    while True:
        if e & 1:
            acc = base.clone() if acc is None else acc.mul_(base)
        e >>= 1
        if not e:
            break
        base = base * base if base is x else base.mul_(base)
    return x.copy_(acc)


def batch_affinity(feats: torch.Tensor, alpha: float) -> torch.Tensor:
    """(B, C, h, w) validated features -> W (B, N, N), DiffCut's affinity per image (section 2),
    each built in its slice of the batch (no stacking copy)."""
    B, N = feats.shape[0], feats.shape[2] * feats.shape[3]
    dtype = feats.dtype if feats.dtype in (torch.float32, torch.float64) else torch.float32
    W = torch.empty(B, N, N, dtype=dtype, device=feats.device)
    for f, w in zip(feats, W):
        affinity_checked(f, alpha, out=w)
    return W
