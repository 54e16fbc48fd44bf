"""Calibrating DiffCut's affinity per image: alpha="auto" (METHOD.md section 10).

DiffCut's W = C**alpha (C the cosine matrix, min-max normalised to [0, 1]) with alpha 10 was tuned
on SSD-1B. Other features put C in another band (ReLU CNN features share a large common
component: their cosines sit high and close together), so one alpha gives very different graphs
from one backbone, and one image, to the next. The rule chosen here (by measurement against a
per-node perplexity target and DiffCut's relative-eigengap scan, docs/benchmarks-real.md,
"Calibrated affinity") fixes what the cut sees instead of the exponent:

    m(alpha) = mean_{i != j} C_ij ** alpha  falls monotonically in alpha (0 <= C_ij <= 1);
    alpha*   = the alpha with m(alpha*) = d*                      (ncut-pytorch's degree target)

found by bisection on log alpha. m is estimated on a fixed, seeded sample of ``SAMPLE``
off-diagonal entries (all of them for small graphs), so the search costs a few milliseconds
whatever N is: docs/benchmarks-real.md times it against the cut at 64 x 64. alpha* is rounded to
eighths and W = C ** alpha* built on the upper bands by square roots and squaring; then W_ii = 0
(no self-loops, see ``calibrated_affinity``). The fixed-alpha path (``affinity``) is not touched.
"""
from __future__ import annotations

import math

import torch

from ovseg.settings.defaults import AUTO_ALPHA_RANGE, DEGREE_TARGET
from ovseg.masks.affinity import _CHUNK, affinity_checked, cosine_bands


def _power(x: torch.Tensor, n: int) -> torch.Tensor:
    """x ** n in place for a whole n >= 1, by repeated squaring (exact IEEE multiplies)."""
    acc, base = None, x
    while True:
        if n & 1:
            acc = base.clone() if acc is None else acc.mul_(base)
        n >>= 1
        if not n:
            break
        base = base * base if base is x else base.mul_(base)
    return x.copy_(acc)

__all__ = ["AUTO", "SAMPLE", "batch_graph", "calibrated_affinity", "check_alpha", "degree_alpha", "graph", "is_auto",
           "mean_affinity"]

AUTO = "auto"
SAMPLE = 1 << 16  # off-diagonal entries m(alpha) is estimated on (relative standard error of m ~5 % at d* = 0.005: alpha within ~0.1)
_ITERATIONS = 40  # bisection steps on log alpha: the bracket's width falls 2**40-fold


def is_auto(alpha) -> bool:
    """alpha is the string "auto" (the calibrated affinity)."""
    return isinstance(alpha, str) and alpha == AUTO


def check_alpha(alpha) -> float | str:
    """A positive finite number (the fixed exponent) or "auto"; ValueError otherwise."""
    if isinstance(alpha, str):
        if alpha != AUTO:
            raise ValueError(f'alpha must be a positive number or "auto", got {alpha!r}')
        return alpha
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not (0 < alpha < math.inf):
        raise ValueError(f'alpha must be a positive finite number or "auto", got {alpha!r}')
    return float(alpha)


def _sample(C: torch.Tensor, size: int, seed: int = 0) -> torch.Tensor:
    """(n,) entries of C (N, N) above the diagonal (only those need to be written): all of them
    when N*(N-1)/2 <= size, else ``size`` pairs i < j drawn uniformly with a fixed seed (the same
    pairs for every image of that N)."""
    N = C.shape[0]
    if N * (N - 1) // 2 <= size:
        i, j = torch.triu_indices(N, N, 1)
    else:
        g = torch.Generator(device="cpu").manual_seed(seed)
        a = torch.randint(0, N, (size,), generator=g)
        b = (a + torch.randint(1, N, (size,), generator=g)) % N  # b != a
        i, j = torch.minimum(a, b), torch.maximum(a, b)
    return C.view(-1)[(i * N + j).to(C.device)]


def mean_affinity(values: torch.Tensor, alpha: float) -> float:
    """m(alpha) = mean(values ** alpha) of entries in [0, 1] (float64)."""
    return float(values.double().pow(alpha).mean())


def degree_alpha(values: torch.Tensor, target: float = DEGREE_TARGET, *,
                 bounds: tuple[float, float] = AUTO_ALPHA_RANGE) -> float:
    """alpha with mean(values ** alpha) = target, by bisection on log alpha.

    Args:
        values: (n,) entries of the normalised cosine matrix, in [0, 1] (``_sample``).
        target: d*, the mean off-diagonal affinity wanted, in (0, 1).
        bounds: the alpha searched; an alpha at a bound is returned when the target lies beyond it.

    Returns:
        alpha (float). m(alpha) = mean(C ** alpha) falls monotonically in alpha (each entry <= 1),
        so the root is unique where it exists (ncut-pytorch, ``find_gamma_by_degree``).
    """
    if not 0 < target < 1:
        raise ValueError(f"the degree target must lie in (0, 1), got {target}")
    logs = values.double().clamp_min(1e-300).log()  # C ** a = exp(a log C); C = 0 -> 0
    lo, hi = math.log(bounds[0]), math.log(bounds[1])

    def m(log_alpha: float) -> float:
        return float(torch.exp(logs * math.exp(log_alpha)).mean())

    if m(lo) <= target:
        return bounds[0]
    if m(hi) >= target:
        return bounds[1]
    for _ in range(_ITERATIONS):
        mid = (lo + hi) / 2
        if m(mid) > target:  # still too dense: a larger alpha
            lo = mid
        else:
            hi = mid
    return math.exp((lo + hi) / 2)


def calibrated_affinity(feats: torch.Tensor, target: float = DEGREE_TARGET, *, alpha: float | None = None,
                        out: torch.Tensor | None = None) -> tuple[torch.Tensor, float, float, float]:
    """DiffCut's affinity with alpha chosen for this image (the degree target, METHOD.md 10) and
    no self-loops.

    Args:
        feats: (C, h, w) or (N, C) floating features already passed through ``check_features``.
        target: d*, the mean off-diagonal entry of W wanted (``settings.defaults.DEGREE_TARGET``).
        alpha: the exponent when already chosen for these features (a rebuild): no search.
        out: a contiguous (N, N) tensor to build W in (a batch's slice), as ``affinity_checked``.

    Returns:
        (W (N, N) float32 (float64 for float64 features), symmetric, entries in [0, 1], diagonal
        0; lo, hi: bounds of W's entries (0 and 1); alpha: the exponent used, a multiple of 1/8).
        alpha is rounded to eighths so that W = ((C^(1/2))^(1/2))^(1/2))^(8 alpha) costs three
        square roots and a few multiplies per entry on the upper bands (a general ``pow`` costs
        several times more: docs/benchmarks-real.md, "Calibrated affinity", cost); the mean of W
        then lies within about 2 % of d* (m(alpha) changes by that much over 1/16 of alpha ~ 6).
        W_ii = 0: a self-loop of weight 1 next to off-diagonal weights of mean d* << 1 makes
        cutting off a lone token cost almost nothing (its NCut ~ its off-diagonal degree), which
        shatters the cut at the alphas a low target chooses. Uniform features (every cosine
        equal) give W all ones and alpha 1.0: no structure to calibrate, one segment.
    """
    cos, edges, bands, lo, hi = cosine_bands(feats, out)
    span = hi - lo
    if span <= 1e-6 * max(1.0, abs(hi)):  # all cosines equal: nothing to calibrate (as affinity_checked)
        return (torch.ones_like(cos) if out is None else cos.fill_(1.0)), 1.0, 1.0, 1.0
    if alpha is None:  # min-max normalised (METHOD.md 2) sampled entries, then the degree target
        values = ((_sample(cos, SAMPLE).double() - lo) / span).clamp_(0.0, 1.0)
        alpha = degree_alpha(values, target)
    n = max(1, round(alpha * _EIGHTHS))
    cpu = cos.device.type == "cpu"
    for (a, b), band in zip(zip(edges[:-1], edges[1:]), bands):
        rows = max(1, _CHUNK // band.shape[1]) if cpu else band.shape[0]  # chunks that stay in cache
        for r in range(0, band.shape[0], rows):
            x = band[r:r + rows].sub_(lo).div_(span).clamp_(0.0, 1.0)  # C, min-max normalised
            _power(x.sqrt_().sqrt_().sqrt_(), n)  # C ** (n / 8)
        cos[b:, a:b] = cos[a:b, b:].T
    return cos.fill_diagonal_(0.0), 0.0, 1.0, n / _EIGHTHS


_EIGHTHS = 8  # alpha is a multiple of 1/8: three square roots, then repeated squaring


def graph(feats: torch.Tensor, alpha: float | str, *, out: torch.Tensor | None = None,
          known: float | None = None) -> tuple[torch.Tensor, float, float, float]:
    """The cut's affinity of one image: DiffCut's W = C**alpha for a number (``affinity_checked``,
    unchanged), the calibrated one for "auto". feats: (C, h, w) or (N, C), checked.
    known: for "auto", the alpha an earlier build chose (no search). Returns (W, lo, hi, alpha used)."""
    if is_auto(alpha):
        return calibrated_affinity(feats, alpha=known, out=out)
    return (*affinity_checked(feats, alpha, out=out), float(alpha))


def batch_graph(feats: torch.Tensor, alpha: float | str) -> tuple[torch.Tensor, list[float]]:
    """(B, C, h, w) checked features -> (W (B, N, N), the alpha used per image), each W built in
    its slice of the batch (``graph``)."""
    B, N = feats.shape[0], feats.shape[2] * feats.shape[3]
    dtype = feats.dtype if feats.dtype in (torch.float32, torch.float64) else torch.float32
    W = torch.empty(B, N, N, dtype=dtype, device=feats.device)
    return W, [graph(f, alpha, out=w)[3] for f, w in zip(feats, W)]
