"""Nearest-neighbour index rules, in one place: which source row (or column) each output row takes.

`nearest_exact_index` is ovseg's one "nearest-exact" rule (pixel centres aligned), used by every
caller that means nearest-exact: label maps back to the image (`ovseg.io.resize_nearest`), the
labeler's binary segment masks on the CLIP grid (`ovseg.labels._dense`) and the published
evaluation recipe's label resize (`ovseg.evaluation._published`). It is the definition written in
exact integers: the centre of output cell i, (i + 0.5) * n_in / n_out in source coordinates, falls
in source pixel

    src(i) = min(floor((2i + 1) * n_in / (2 * n_out)), n_in - 1).

Why not call torch: `F.interpolate(mode="nearest-exact")` computes the same thing in float32
(scale = float32(n_in / n_out), then (i + 0.5) * scale - 0.5 + 0.5, floored), so where the centre
falls exactly on a boundary between two source pixels (a tie, e.g. 1024 -> 41, i = 20: 512.0)
rounding can land just below it and pick the pixel before. Which ties move depends on the kernel:
on torch 2.14.1 (this dev VM's CPU build) the 1-D and the 2-D CPU kernels disagree with each other
(one uses a fused multiply-add where the other does not), so "equal to torch" has no single
meaning. Away from ties both kernels equal this rule (tests/io/test_nearest.py checks every pair
1..2048 -> 1..256); docs/fidelity.md lists what the choice moves.

The two plain "nearest" rules (top-left alignment, floor(i * n_in / n_out)) are different
resizes, kept for the callers that need them: `torch_nearest_index` is bit for bit torch's
`F.interpolate(mode="nearest")` (float32 arithmetic; the evaluation protocols copy the published
code, which scores labels resized that way), `floor_index` the same rule in exact integers
(coherence's patch grid).
"""
from __future__ import annotations

import numpy as np


def _check(n_in: int, n_out: int) -> None:
    if n_in < 1 or n_out < 1:
        raise ValueError(f"sizes must be positive, got {n_in} -> {n_out}")


def nearest_exact_index(n_in: int, n_out: int) -> np.ndarray:
    """(n_out,) int64 source index of each output row of a nearest-exact resize n_in -> n_out.

    src(i) = min(floor((2i + 1) n_in / (2 n_out)), n_in - 1): the source pixel that holds the
    centre of output pixel i, in exact integers (ties go to the later pixel). 2 -> 3: [0, 1, 1].
    Torch tensors: `torch.from_numpy(nearest_exact_index(n_in, n_out)).to(device)`.
    """
    _check(n_in, n_out)
    i = np.arange(n_out, dtype=np.int64)
    return np.minimum((2 * i + 1) * n_in // (2 * n_out), n_in - 1)


def torch_nearest_index(n_in: int, n_out: int) -> np.ndarray:
    """(n_out,) int64 source index of torch's `F.interpolate(mode="nearest")` n_in -> n_out.

    ATen's nearest_idx, its cases in its float32 arithmetic: i if the sizes are equal, i // 2 when
    doubling, else floor(i * float32(n_in / n_out)). 2 -> 3: [0, 0, 1].
    """
    _check(n_in, n_out)
    i = np.arange(n_out, dtype=np.int64)
    if n_out == n_in:
        src = i
    elif n_out == 2 * n_in:
        src = i >> 1
    else:
        scale = np.float32(n_in) / np.float32(n_out)
        src = np.floor(i.astype(np.float32) * scale).astype(np.int64)
    return np.minimum(src, n_in - 1)


def floor_index(n_in: int, n_out: int) -> np.ndarray:
    """(n_out,) int64: floor(i n_in / n_out) in exact integers (the "nearest" rule without
    torch's float32 rounding, which moves a row on some sizes, e.g. 2 -> 82). 2 -> 3: [0, 0, 1]."""
    _check(n_in, n_out)
    i = np.arange(n_out, dtype=np.int64)
    return np.minimum(i * n_in // n_out, n_in - 1)


NEAREST_MODES = ("center", "torch", "floor")


def nearest_indices(n_in: int, n_out: int, mode: str = "center") -> np.ndarray:
    """Source index (n_out,) int64 of each output row (or column) of a nearest resize n_in -> n_out.

    mode: "center": nearest-exact, pixel centres aligned (`nearest_exact_index`; the pipeline's
    label maps); "torch": torch's plain "nearest" bit for bit (`torch_nearest_index`; the
    evaluation protocols); "floor": plain nearest in exact integers (`floor_index`; coherence's
    patch grid). 2 -> 3 rows: "center" [0, 1, 1], the other two [0, 0, 1].
    """
    if mode == "center":
        return nearest_exact_index(n_in, n_out)
    if mode == "torch":
        return torch_nearest_index(n_in, n_out)
    if mode == "floor":
        return floor_index(n_in, n_out)
    raise ValueError(f"mode must be one of {NEAREST_MODES}, got {mode!r}")


def resize_nearest(labels: np.ndarray, size: tuple[int, int], *, mode: str = "center") -> np.ndarray:
    """Nearest-neighbour resize of a label map (h, w) -> size (H, W); mode as `nearest_indices`
    (default: nearest-exact, pixel centres aligned)."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"expected a (H, W) map, got shape {labels.shape}")
    rows = nearest_indices(labels.shape[0], int(size[0]), mode)
    cols = nearest_indices(labels.shape[1], int(size[1]), mode)
    return labels[np.ix_(rows, cols)]
