"""Pixel-adaptive mask refinement, PAMR (Araslanov & Roth, CVPR 2020, Sec. 3.2), vectorised.

Our own implementation of the published description:

1. For every pixel i and every neighbour j in the 8-neighbourhood at each dilation d, the colour
   difference |I_i - I_j| is divided by the local colour standard deviation sigma_i (per channel,
   over the 3x3 windows at all dilations, centre included) and averaged over channels:
       k(i, j) = -mean_c |I_i,c - I_j,c| / (eps + 0.1 * sigma_i,c)     (paper Eq. 5, lambda = 0.1)
2. alpha(i, j) = softmax_j k(i, j) over all 8 * len(dilations) neighbours            (Eq. 6)
3. Masks m (K, H, W), one-hot of the input labels, are updated ``iterations`` times:
       m_i <- sum_j alpha(i, j) m_j                                                   (Eq. 4)
4. Labels = argmax_k m, then a 3x3 filter on the labels. DiffCut applies a 3x3 *median* filter,
   the default here (published behaviour, docs/fidelity.md). On categorical ids a median depends
   on the arbitrary id order (at a junction of ids 1, 4, 7 it can hand a pixel of segment 1 to
   segment 4, which is not in the majority); ``label_filter="mode"`` is a 3x3 majority filter,
   which equals the median for two labels and never invents a minority label (an option: its
   benefit is plausible but not measured).

Borders use replicate padding (as the reference implementation). Neighbours are read as shifted
slices of one padded tensor, never with ``unfold``.

Speed (issue 11). The straightforward loop (kept as ``_propagate_reference``, the test and benchmark
baseline) does, per step, a padded copy of m and 8D ``addcmul_`` passes over the whole (K, H, W)
masks: every pass streams ~3 K*H*W floats through main memory (12 GB per step at 1024x768, K = 20,
D = 8). ``propagate`` does the same multiply-adds in the same order per pixel, in one of two ways:

* on CPU, by default, a fused Numba kernel (``pamr_kernel.py``): per output row and four masks at a
  time the accumulator stays in L1 and each pass over it adds two neighbours, so the memory
  operations per multiply-add fall from about four to about two. Compiled once per machine, then
  loaded from Numba's disk cache by every later process; without Numba, or if it fails to compile,
  the torch path below runs and one warning says so. ``OVSEG_PAMR_KERNEL=torch`` forces it;
* the torch path (GPUs, and CPUs without Numba): two padded buffers allocated once and swapped
  (no per-step padding copy, the border refreshed by four broadcast copies); on CPU the output is
  cut into blocks of 2 MiB (about 25 rows at 1024 px, K = 20) whose accumulator stays in cache
  across the 8D passes, each op large enough for torch's own threads.

``pamr_affinity`` is blocked over rows the same way. The per-pixel summation order is the
reference's (neighbour 0, 1, ..., 8D-1), so the torch path is *bit-identical* to the reference
(tested for all filters, blockings and thread counts), and so is the Numba kernel on the
development CPU (its test allows float rounding, since another compiler or CPU may fuse a
multiply-add differently). Evaluated and not used: ``torch.compile`` of one step (a compile of
minutes for every new image size, and gcc at run time); an (H, W, K) layout; gathering the 8D
neighbours and reducing with a matmul (changes the summation order, 8D times the memory); Numba
kernels that keep a pixel's sums in registers across all 8D neighbours (slower than the row-wise
kernel: they stream 17 rows x 4 masks at once, more than the prefetchers follow).

Cost: time iterations * 8 * D * K * H * W multiply-adds (20 GMAC at 1024x768, K = 20, demo);
memory: affinities 8*D*H*W floats plus two padded mask buffers 2 * K*(H+2p)*(W+2p) floats (p =
max dilation), i.e. O(K H W). Timings of both paths against the reference, and of the variants
named above: docs/benchmarks-pamr.md (benchmarks/pamr.py).

Everything runs on the device of ``image``.
"""
from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ovseg.masks import pamr_kernel as _pamr_kernel
from ovseg.settings.defaults import PAMR_DILATIONS, PAMR_FILTER, PAMR_ITERATIONS

__all__ = ["PAMRConfig", "pamr", "pamr_affinity", "propagate", "median_filter_labels", "mode_filter_labels"]


@dataclass(frozen=True)
class PAMRConfig:
    """PAMR settings. Defaults: DiffCut's benchmark evaluation (masks refined at 128 px)."""

    iterations: int = 10  # DiffCut benchmark evaluation: 10 iterations ...
    dilations: tuple[int, ...] = (1, 2, 4, 8)  # ... dilations [1, 2, 4, 8] at 128x128
    label_filter: str = "median"  # 3x3 filter after the argmax: "median" (DiffCut), "mode" or "none"

    @classmethod
    def benchmark(cls) -> "PAMRConfig":
        """10 iterations, dilations (1, 2, 4, 8): unsupervised benchmark scoring at 128 px."""
        return cls()

    @classmethod
    def open_vocabulary(cls) -> "PAMRConfig":
        """DiffCut's open-vocabulary evaluation: 15 iterations, dilations up to 64, median, at 1024 px."""
        return cls(iterations=PAMR_ITERATIONS, dilations=PAMR_DILATIONS, label_filter=PAMR_FILTER)

    @classmethod
    def demo(cls, iterations: int = 20) -> "PAMRConfig":
        """Open-vocabulary / demo setting at 1024 px: 15 to 30 iterations, dilations up to 64."""
        return cls(iterations=iterations, dilations=(1, 2, 4, 8, 12, 24, 32, 64))


def _offsets(dilations: tuple[int, ...]) -> list[tuple[int, int]]:
    """(dy, dx) of the 8 neighbours at every dilation, in a fixed order."""
    ring = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]
    return [(dy * d, dx * d) for d in dilations for dy, dx in ring]


def _shifted(padded: torch.Tensor, pad: int, dy: int, dx: int, H: int, W: int) -> torch.Tensor:
    """View of padded (..., H+2p, W+2p) holding x[i+dy, j+dx] at position (i, j)."""
    return padded[..., pad + dy : pad + dy + H, pad + dx : pad + dx + W]


def _pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Replicate padding for (C, H, W) of any size (F.pad's replicate wants pad < size)."""
    H, W = x.shape[-2:]
    rows = torch.arange(-pad, H + pad, device=x.device).clamp_(0, H - 1)
    cols = torch.arange(-pad, W + pad, device=x.device).clamp_(0, W - 1)
    return x[..., rows[:, None], cols[None, :]]


def _affinity_rows(xp: torch.Tensor, pad: int, dilations: tuple[int, ...], r0: int, r1: int,
                   W: int) -> torch.Tensor:
    """alpha for output rows r0:r1 from the padded image xp (C, H+2p, W+2p): (8D, r1-r0, W)."""
    offsets = _offsets(dilations)

    def at(dy: int, dx: int) -> torch.Tensor:  # x[i+dy, j+dx] for the rows of this block
        return xp[..., pad + dy + r0 : pad + dy + r1, pad + dx : pad + dx + W]

    x = at(0, 0)
    # std over the 3x3 windows at every dilation: 9 taps per dilation, centre counted once each
    window = [(0, 0)] * len(dilations) + offsets
    mean = sum(at(dy, dx) for dy, dx in window) / len(window)
    var = sum((at(dy, dx) - mean) ** 2 for dy, dx in window) / (len(window) - 1)
    scale = 1e-8 + 0.1 * var.sqrt()  # (C, rows, W); Eq. 5 with lambda = 0.1 (unbiased std, as torch.std)
    logits = torch.stack(
        [-((at(dy, dx) - x).abs() / scale).mean(0) for dy, dx in offsets]
    )  # (8D, rows, W): Eq. 5, averaged over colour channels
    return torch.softmax(logits, dim=0)  # Eq. 6


def pamr_affinity(image: torch.Tensor, dilations: tuple[int, ...] = (1, 2, 4, 8), *,
                  workers: int | None = None) -> torch.Tensor:
    """Neighbour weights alpha (8*len(dilations), H, W), softmax-normalised over dim 0 (Eq. 5-6).

    image (3, H, W) float (any number of channels works). On CPU the rows are processed in
    blocks of 2 MiB by ``workers`` Python threads (default 1: torch threads each op itself);
    every value is computed by the same per-pixel operations as one whole-image pass
    (``_pamr_affinity_reference``), so the result is bit-identical.
    """
    x = image.float()
    C, H, W = x.shape
    pad = max(dilations)
    xp = _pad(x, pad)  # (C, H+2p, W+2p)
    if x.device.type != "cpu":
        return _affinity_rows(xp, pad, dilations, 0, H, W)
    rows = max(1, _BLOCK_VALUES // max(1, C * W))
    out = torch.empty(8 * len(dilations), H, W)

    def run(r0: int) -> None:
        r1 = min(H, r0 + rows)
        out[:, r0:r1] = _affinity_rows(xp, pad, dilations, r0, r1, W)

    starts = list(range(0, H, rows))
    workers = max(1, min(len(starts), _workers(x.device) if workers is None else int(workers)))
    if workers == 1:
        for r0 in starts:
            run(r0)
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(_in_callers_mode(run), starts))
    return out


def _in_callers_mode(fn):
    """fn, run in a worker thread under the calling thread's inference and grad modes (torch keeps
    them per thread: without this, a worker writing into a tensor made under `inference_mode` fails)."""
    inference, grad = torch.is_inference_mode_enabled(), torch.is_grad_enabled()

    def call(*args):
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            return fn(*args)

    return call


def median_filter_labels(labels: torch.Tensor) -> torch.Tensor:
    """3x3 median of an integer label map (H, W) with replicate borders (lower median of 9 = exact)."""
    H, W = labels.shape
    p = _pad(labels[None], 1)[0]
    stack = torch.stack([p[1 + dy : 1 + dy + H, 1 + dx : 1 + dx + W] for dy in (-1, 0, 1) for dx in (-1, 0, 1)])
    return stack.median(dim=0).values


def mode_filter_labels(labels: torch.Tensor) -> torch.Tensor:
    """3x3 majority vote on dense labels (H, W) in 0..K-1, replicate borders; ties keep the centre."""
    K = int(labels.max()) + 1
    H, W = labels.shape
    onehot = F.one_hot(_pad(labels[None], 1)[0], K).permute(2, 0, 1).float()  # (K, H+2, W+2)
    votes = sum(onehot[:, 1 + dy : 1 + dy + H, 1 + dx : 1 + dx + W] for dy in (-1, 0, 1) for dx in (-1, 0, 1))
    votes += 0.5 * onehot[:, 1 : 1 + H, 1 : 1 + W]  # centre wins ties
    return votes.argmax(0)


_FILTERS = {"mode": mode_filter_labels, "median": median_filter_labels, "none": lambda x: x}


@torch.no_grad()
def pamr(
    image: torch.Tensor,
    segments: torch.Tensor,
    *,
    iterations: int = 10,
    dilations: tuple[int, ...] = (1, 2, 4, 8),
    label_filter: str = "median",
    config: PAMRConfig | None = None,
    block_rows: int | None = None,
    workers: int | None = None,
    kernel: str = "auto",
) -> torch.Tensor:
    """Refine a segment map so its boundaries follow the image's colour edges.

    image (3, H, W) float in [0, 1]; segments (H, W) int (any ids). Returns (H, W) int64 with the
    same ids (a segment may vanish). ``label_filter``: "median" (default, DiffCut's 3x3 median
    on the ids), "mode" (3x3 majority) or "none". ``config`` overrides the three settings if given.
    ``block_rows``, ``workers``, ``kernel``: blocking, threads and implementation of the
    propagation (see ``propagate``); the labels do not depend on them.
    """
    if config is not None:
        iterations, dilations = config.iterations, tuple(config.dilations)
        label_filter = config.label_filter
    if label_filter not in _FILTERS:
        raise ValueError(f"label_filter must be one of {sorted(_FILTERS)}, got {label_filter!r}")
    if not isinstance(image, torch.Tensor) or image.dim() != 3:
        raise ValueError(f"image must be a (3, H, W) tensor, got {getattr(image, 'shape', type(image))}")
    if not isinstance(segments, torch.Tensor) or segments.shape != image.shape[1:]:
        raise ValueError(
            f"segments must be an (H, W) tensor matching the image {tuple(image.shape[1:])}, "
            f"got {getattr(segments, 'shape', type(segments))}"
        )
    if segments.dtype.is_floating_point or segments.dtype == torch.bool:
        raise TypeError(f"segments must be an integer tensor, got {segments.dtype}")
    dilations = tuple(int(d) for d in dilations)
    if not dilations or min(dilations) < 1 or iterations < 0:
        raise ValueError(f"need dilations >= 1 and iterations >= 0, got {dilations}, {iterations}")
    H, W = segments.shape
    ids, inverse = torch.unique(segments.to(image.device).reshape(-1), return_inverse=True)
    if ids.numel() == 1:
        return segments.to(image.device, torch.int64).clone()
    alpha = pamr_affinity(image, dilations)  # (8D, H, W), computed once
    m = F.one_hot(inverse.reshape(H, W), ids.numel()).permute(2, 0, 1).float()  # (K, H, W)
    m = propagate(m, alpha, dilations, iterations, block_rows=block_rows, workers=workers, kernel=kernel)
    labels = _FILTERS[label_filter](m.argmax(0))
    return ids[labels]


def _fill_border(mp: torch.Tensor, pad: int, H: int, W: int) -> None:
    """Replicate the interior (K, H, W) of mp (K, H+2p, W+2p) into its border, in place.

    Equals ``_pad`` of the interior for any pad (also pad >= H or W), by broadcast copies.
    """
    if pad == 0:
        return
    rows = slice(pad, pad + H)
    mp[:, rows, :pad] = mp[:, rows, pad : pad + 1]
    mp[:, rows, pad + W :] = mp[:, rows, pad + W - 1 : pad + W]
    mp[:, :pad] = mp[:, pad : pad + 1]
    mp[:, pad + H :] = mp[:, pad + H - 1 : pad + H]


def _blocks(K: int, H: int, W: int, device: torch.device, block_rows: int | None) -> list[tuple[int, int, int, int]]:
    """(r0, r1, c0, c1) output blocks. On CPU each block holds < 32 Ki mask values (128 KiB):
    it stays in cache across the 8D passes, and it is below torch's intra-op grain size, so each
    pass runs inline in the calling thread (no OpenMP fork/join per pass). Elsewhere: one block."""
    if device.type != "cpu" and block_rows is None:
        return [(0, H, 0, W)]  # GPU: one launch per neighbour over the whole map
    if block_rows is None:
        rows = max(1, _BLOCK_VALUES // max(1, K * W))
        cols = W if rows > 1 else max(1, min(W, _BLOCK_VALUES // max(1, K)))
    else:
        rows, cols = max(1, int(block_rows)), W
    return [(r0, min(H, r0 + rows), c0, min(W, c0 + cols))
            for r0 in range(0, H, rows) for c0 in range(0, W, cols)]


# Output values per CPU block (2 MiB of float32): a block's accumulator and the source rows its
# 8D neighbour passes read stay in L2/L3, and each op is large enough for torch's own threads
# (one op per block and neighbour: ~1.5k ops per step at 1024x768, not ~50k). Smaller and larger
# blocks were slower (docs/benchmarks-pamr.md: "Block size, measured on the propagation alone").
_BLOCK_VALUES = 1 << 19


def _workers(device: torch.device) -> int:
    """Python threads sharing a step's blocks: 1 (torch parallelises each block's ops itself)."""
    return 1


def propagate(
    m: torch.Tensor,
    alpha: torch.Tensor,
    dilations: tuple[int, ...],
    iterations: int,
    *,
    block_rows: int | None = None,
    workers: int | None = None,
    kernel: str = "auto",
) -> torch.Tensor:
    """``iterations`` steps of Eq. 4, m_i <- sum_j alpha(i, j) m_j, cache-blocked.

    Arguments:
        m: (K, H, W) float32 masks.
        alpha: (8D, H, W) float32 neighbour weights from ``pamr_affinity`` (same dilations).
        dilations: the D dilations, in the order ``alpha`` was built with.
        iterations: number of steps (>= 0).
        block_rows: output rows per block (default: blocks of 2 MiB on CPU, whole map on GPU).
        workers: Python threads sharing the blocks of a step (default 1: torch's own threads
            run each op); steps are separated by a barrier.
        kernel: "auto" (default): on CPU the fused Numba kernel (``pamr_kernel.py``; the torch
            path if Numba is unavailable, or when ``block_rows``/``workers`` ask for the torch
            path's blocking), elsewhere torch; "numba" or "torch" to choose.

    Returns:
        (K, H, W) float32 masks, bit-identical to ``_propagate_reference`` on the torch path (same
        products, same per-pixel summation order: neighbour 0, 1, ..., 8D-1), whatever the blocks
        and workers. The Numba kernel keeps the order too; it is bit-identical on the development
        CPU, and equal up to float rounding wherever a compiler fuses multiply-adds differently.
    """
    if m.dim() != 3 or alpha.shape != (8 * len(dilations), *m.shape[1:]):
        raise ValueError(f"need masks (K, H, W) and alpha (8 * {len(dilations)}, H, W), got "
                         f"{tuple(m.shape)} and {tuple(alpha.shape)}")
    K, H, W = m.shape
    offsets = _offsets(dilations)
    pad = max(dilations)
    if kernel == "auto":
        kernel = "numba" if m.device.type == "cpu" and block_rows is None and workers is None else "torch"
    if kernel not in ("numba", "torch"):
        raise ValueError(f"kernel must be 'auto', 'numba' or 'torch', got {kernel!r}")
    fast = kernel == "numba" and m.device.type == "cpu" and m.dtype == alpha.dtype == torch.float32
    step = _pamr_kernel.kernel() if fast else None
    bufs = [m.new_empty(K, H + 2 * pad, W + 2 * pad), None]  # padded input, output; swapped per step
    bufs[1] = torch.empty_like(bufs[0])
    bufs[0][:, pad : pad + H, pad : pad + W] = m if step is None else m.detach()  # Numba: no autograd
    _fill_border(bufs[0], pad, H, W)
    if step is not None:
        steps = _pamr_kernel.numba_steps(step, alpha, offsets, pad)
    else:
        steps = _torch_steps(alpha, offsets, pad, _blocks(K, H, W, m.device, block_rows), workers, m.device)
    with steps as advance:  # advance(cur, nxt): one step of Eq. 4 into nxt's interior
        for _ in range(iterations):
            advance(*bufs)
            _fill_border(bufs[1], pad, H, W)
            bufs.reverse()
    return bufs[0][:, pad : pad + H, pad : pad + W].contiguous()


@contextlib.contextmanager
def _torch_steps(alpha: torch.Tensor, offsets: list[tuple[int, int]], pad: int,
                 blocks: list[tuple[int, int, int, int]], workers: int | None, device: torch.device):
    """The torch path's step, block by block, shared by ``workers`` Python threads (default 1)."""
    workers = max(1, min(len(blocks), _workers(device) if workers is None else int(workers)))

    def run(cur: torch.Tensor, nxt: torch.Tensor, part: list[tuple[int, int, int, int]]) -> None:
        for r0, r1, c0, c1 in part:
            acc = nxt[:, pad + r0 : pad + r1, pad + c0 : pad + c1]  # written in place, stays in cache
            a = alpha[:, r0:r1, c0:c1]
            for n, (dy, dx) in enumerate(offsets):  # Eq. 4, neighbours in the reference order
                src = cur[:, pad + dy + r0 : pad + dy + r1, pad + dx + c0 : pad + dx + c1]
                if n == 0:
                    torch.mul(src, a[0], out=acc)  # == 0 + a0 * m0 of the reference, exactly
                else:
                    acc.addcmul_(a[n], src)

    if workers == 1:
        yield lambda cur, nxt: run(cur, nxt, blocks)
        return
    size = len(blocks) // workers
    parts = [blocks[i * size : (i + 1) * size if i < workers - 1 else len(blocks)] for i in range(workers)]
    with ThreadPoolExecutor(workers) as pool:  # torch ops release the GIL: bands run in parallel
        yield lambda cur, nxt: list(pool.map(_in_callers_mode(lambda part: run(cur, nxt, part)), parts))


def _propagate_reference(m: torch.Tensor, alpha: torch.Tensor, dilations: tuple[int, ...],
                         iterations: int) -> torch.Tensor:
    """The straightforward Eq. 4 loop (before cache blocking): the equivalence and speed baseline.

    Per step: one replicate-padded copy of m, then 8D ``addcmul_`` passes over (K, H, W).
    """
    K, H, W = m.shape
    offsets = _offsets(dilations)
    pad = max(dilations)
    for _ in range(iterations):
        mp = _pad(m, pad)
        acc = torch.zeros_like(m)
        for n, (dy, dx) in enumerate(offsets):  # Eq. 4 as shifted multiply-adds
            acc.addcmul_(alpha[n], _shifted(mp, pad, dy, dx, H, W))
        m = acc
    return m


def _pamr_affinity_reference(image: torch.Tensor, dilations: tuple[int, ...] = (1, 2, 4, 8)) -> torch.Tensor:
    """``pamr_affinity`` in one whole-image pass (the code before blocking): the test reference.

    Neighbour weights alpha (8*len(dilations), H, W), softmax-normalised over dim 0 (Eq. 5-6).

    image (3, H, W) float (any number of channels works).
    """
    x = image.float()
    H, W = x.shape[-2:]
    pad = max(dilations)
    xp = _pad(x, pad)  # (C, H+2p, W+2p)
    offsets = _offsets(dilations)
    # std over the 3x3 windows at every dilation: 9 taps per dilation, centre counted once each
    window = [(0, 0)] * len(dilations) + offsets
    mean = sum(_shifted(xp, pad, dy, dx, H, W) for dy, dx in window) / len(window)
    var = sum((_shifted(xp, pad, dy, dx, H, W) - mean) ** 2 for dy, dx in window) / (len(window) - 1)
    scale = 1e-8 + 0.1 * var.sqrt()  # (C, H, W); Eq. 5 with lambda = 0.1 (unbiased std, as torch.std)
    logits = torch.stack(
        [-((_shifted(xp, pad, dy, dx, H, W) - x).abs() / scale).mean(0) for dy, dx in offsets]
    )  # (8D, H, W): Eq. 5, averaged over colour channels
    return torch.softmax(logits, dim=0)  # Eq. 6
