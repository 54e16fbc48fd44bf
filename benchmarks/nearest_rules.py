"""How many size pairs each nearest rule moves (docs/fidelity.md, "One nearest-exact rule").

    python benchmarks/nearest_rules.py            # pairs 1..2048 -> 1..256, about a minute

Counts size pairs (n_in, n_out) on which two rules pick a different source index for at least one
output index: ovseg's one rule (`ovseg.io.nearest.nearest_exact_index`, exact integers), the float64
rule `labels/_dense.py` and `evaluation/_published.py` used before, and torch's own nearest-exact
kernels (1-D on (1, 1, L), 2-D on (1, 1, H, 1)) as this machine's torch build computes them.
"""
from __future__ import annotations

import argparse

import numpy as np


def old_float64(n_in: int, n_out: int) -> np.ndarray:
    """The former `_dense` / `_published` rule: floor((i + 0.5) * (n_in / n_out)) in float64."""
    return np.minimum(np.floor((np.arange(n_out) + 0.5) * (n_in / n_out)).astype(np.int64), n_in - 1)


def old_plain_float64(n_in: int, n_out: int) -> np.ndarray:
    """The former `_published.nearest`: floor(i * (n_in / n_out)) in float64."""
    return np.minimum(np.floor(np.arange(n_out) * (n_in / n_out)).astype(np.int64), n_in - 1)


def main() -> None:
    import torch
    import torch.nn.functional as F

    from ovseg.io.nearest import nearest_exact_index, torch_nearest_index

    p = argparse.ArgumentParser()
    p.add_argument("--max-in", type=int, default=2048)
    p.add_argument("--max-out", type=int, default=256)
    a = p.parse_args()
    torch.set_num_threads(1)
    counts = dict.fromkeys(["helper vs old float64 (_dense, _published nearest_exact)", "helper vs torch 1-D",
                            "helper vs torch 2-D", "torch 1-D vs torch 2-D", "old float64 vs torch 2-D",
                            "torch plain nearest vs old plain float64 (_published nearest)"], 0)
    keys = list(counts)
    examples = {k: [] for k in keys}
    total = 0
    with torch.inference_mode():
        for n_in in range(1, a.max_in + 1):
            x1 = torch.arange(n_in, dtype=torch.float32)[None, None]
            x2 = x1[..., None]
            for n_out in range(1, a.max_out + 1):
                total += 1
                new, old = nearest_exact_index(n_in, n_out), old_float64(n_in, n_out)
                t1 = F.interpolate(x1, size=n_out, mode="nearest-exact")[0, 0].long().numpy()
                t2 = F.interpolate(x2, size=(n_out, 1), mode="nearest-exact")[0, 0, :, 0].long().numpy()
                pairs = [(new, old), (new, t1), (new, t2), (t1, t2), (old, t2),
                         (torch_nearest_index(n_in, n_out), old_plain_float64(n_in, n_out))]
                for k, (u, v) in zip(keys, pairs):
                    if not np.array_equal(u, v):
                        counts[k] += 1
                        if len(examples[k]) < 4:
                            i = int(np.nonzero(u != v)[0][0])
                            examples[k].append(f"{n_in}->{n_out} i={i}: {u[i]} vs {v[i]}")
    print(f"size pairs 1..{a.max_in} -> 1..{a.max_out}: {total}  (torch {torch.__version__})")
    for k in keys:
        print(f"  {k}: {counts[k]} pairs ({100 * counts[k] / total:.2f} %)  e.g. {'; '.join(examples[k])}")

    # the published recipe's sizes: labels (crop side n) -> 1024 / 2048 nearest-exact, then -> 128 nearest
    for n_out in (1024, 2048):
        moved = sum(not np.array_equal(nearest_exact_index(n, n_out), old_float64(n, n_out)) for n in range(1, 4097))
        print(f"published label resize side 1..4096 -> {n_out}: helper vs old float64 differ on {moved} sides")
    for n_in in (1024, 2048):
        same = np.array_equal(torch_nearest_index(n_in, 128), old_plain_float64(n_in, 128))
        print(f"published score resize {n_in} -> 128: torch nearest == old float64: {same}")
    # the labeler's grid for the default square (1024 -> 32) and common CLIP resolutions
    for n_in in (512, 768, 1024, 2048):
        moved = [g for g in range(1, 129) if not np.array_equal(nearest_exact_index(n_in, g), old_float64(n_in, g))]
        print(f"labeler masks {n_in} -> grid 1..128: moved grids {moved}")


if __name__ == "__main__":
    main()
