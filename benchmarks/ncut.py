"""Benchmark: ovseg's recursive normalized cut against a straightforward version of the paper's.

Usage (from the repository root):
    python benchmarks/ncut.py                 # full run: 32x32 and 64x64 comparison, growth, memory
    python benchmarks/ncut.py --sizes 32      # comparison at 32x32 only
    python benchmarks/ncut.py --quick         # growth and memory only (no slow baseline)

Synthetic input: C = 1280 features (SSD-1B's width) on a side x side grid, eight planted regions
(stripes, blocks, a disc) whose centroids share a common direction (cross-region cosine about
0.6) plus Gaussian noise (within-region cosine about 0.9). The same W (ovseg.masks.affinity) feeds
both cuts; "cut" times exclude the affinity, "total" times include it. "end to end" times the public
``segment_features(feats)`` (input validation, affinity and cut, the labels checked equal to the
cut's) against the baseline cut plus the same affinity.

The baseline ("paper") is written here, not imported: per tree node one dense eigendecomposition
(torch.linalg.eigh, float32, of D^-1/2 (D - W) D^-1/2), y = D^-1/2 v2, 100 thresholds evenly
spaced in [0.99 min y, 0.99 max y] evaluated one by one, split accepted iff NCut < tau.

Peak memory: each case runs in a fresh subprocess that reads its peak resident set (VmHWM in
/proc/self/status) after imports and features, and again after affinity + cut; tracemalloc
cannot see torch's allocations, VmHWM can. (ru_maxrss would inherit the parent's peak through
fork+exec on Linux, so it is not used.)
"""
from __future__ import annotations

import argparse
import math
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ovseg.masks import affinity, segment_features  # noqa: E402
from ovseg.masks.ncut import ncut_hierarchy  # noqa: E402

C = 1280


def planted(side: int, *, seed: int = 0, noise: float = 0.45) -> tuple[torch.Tensor, torch.Tensor]:
    """(C, side, side) features and (side, side) planted labels (8 regions, same layout at any size)."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, side), torch.linspace(0, 1, side), indexing="ij")
    lab = (xx * 4).clamp(max=3.999).long()  # four vertical stripes
    lab[(yy < 0.4) & (xx < 0.5)] = 4
    lab[(yy > 0.7) & (xx > 0.25) & (xx < 0.75)] = 5
    lab[(yy - 0.3) ** 2 + (xx - 0.75) ** 2 < 0.15 ** 2] = 6
    lab[(yy > 0.45) & (yy < 0.6) & (xx < 0.3)] = 7
    g = torch.Generator().manual_seed(seed)
    common = 1.5 * torch.randn(C, generator=g)
    centroids = common + torch.randn(8, C, generator=g)  # cross-region cosine ~ 0.6
    feats = centroids[lab] + noise * math.sqrt(2) * torch.randn(side, side, C, generator=g)
    return feats.permute(2, 0, 1).contiguous(), lab


EIGH_SECONDS = [0.0]  # time the baseline spends in eigh (the rest: threshold loop, indexing)


def paper_ncut(w: torch.Tensor, tau: float = 0.5, num_thresholds: int = 100) -> torch.Tensor:
    """Straightforward recursive two-way NCut: one dense eigh per node, 100 thresholds."""
    n_all = w.shape[0]
    labels = torch.zeros(n_all, dtype=torch.int64)
    next_id = 1
    stack = [(torch.arange(n_all), 0)]
    while stack:
        idx, seg_id = stack.pop()
        if idx.numel() < 2:
            continue
        sub = w[idx][:, idx]
        d = sub.sum(1)
        dis = d.rsqrt()
        lap = torch.eye(len(idx)) - dis[:, None] * sub * dis[None, :]
        t0 = time.perf_counter()
        _, vecs = torch.linalg.eigh(lap)
        EIGH_SECONDS[0] += time.perf_counter() - t0
        y = dis * vecs[:, 1]
        best, best_mask = float("inf"), None
        for t in torch.linspace(0.99 * float(y.min()), 0.99 * float(y.max()), num_thresholds):
            a = y > t
            if a.all() or not a.any():
                continue
            cut = sub[a][:, ~a].sum()
            ncut = float(cut / d[a].sum() + cut / d[~a].sum())
            if ncut < best:
                best, best_mask = ncut, a
        if best_mask is not None and best < tau:
            labels[idx[~best_mask]] = next_id
            stack.append((idx[best_mask], seg_id))
            stack.append((idx[~best_mask], next_id))
            next_id += 1
    return labels


def ari(a: torch.Tensor, b: torch.Tensor) -> float:
    """Adjusted Rand index of two labelings (Hubert & Arabie 1985)."""
    a, b = torch.unique(a.reshape(-1), return_inverse=True)[1], torch.unique(b.reshape(-1), return_inverse=True)[1]
    n = a.numel()
    table = torch.zeros(int(a.max()) + 1, int(b.max()) + 1, dtype=torch.float64)
    table.index_put_((a, b), torch.ones(n, dtype=torch.float64), accumulate=True)

    def comb2(x: torch.Tensor) -> float:
        return float((x * (x - 1) / 2).sum())

    s_ij, s_a, s_b, total = comb2(table), comb2(table.sum(1)), comb2(table.sum(0)), n * (n - 1) / 2
    expected = s_a * s_b / total
    top = (s_a + s_b) / 2 - expected
    return 1.0 if top == 0 else (s_ij - expected) / top


def timed(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def compare(side: int, repeat: int, baseline_repeat: int) -> None:
    feats, lab = planted(side)
    t_aff, w = timed(lambda: affinity(feats, alpha=10.0), repeat)
    t_ours, ours = timed(lambda: ncut_hierarchy(w, tau=0.5).cut(), repeat)
    t_e2e, e2e = timed(lambda: segment_features(feats, tau=0.5), repeat)  # public entry, all included
    if not torch.equal(e2e.reshape(-1), ours):
        raise AssertionError("segment_features differs from ncut_hierarchy(affinity(feats))")
    EIGH_SECONDS[0] = 0.0
    t_paper, paper = timed(lambda: paper_ncut(w, tau=0.5), baseline_repeat)
    eigh_share = EIGH_SECONDS[0] / baseline_repeat
    k_o, k_p = int(ours.max()) + 1, int(paper.max()) + 1
    print(f"{side}x{side}: affinity {t_aff:.3f} s | cut ours {t_ours:.3f} s, paper {t_paper:.3f} s, "
          f"(of which eigh {eigh_share:.3f} s), ratio {t_paper / t_ours:.1f}x | total ratio {(t_paper + t_aff) / (t_ours + t_aff):.1f}x | "
          f"end to end: segment_features {t_e2e:.3f} s vs paper + affinity {t_paper + t_aff:.3f} s, "
          f"ratio {(t_paper + t_aff) / t_e2e:.1f}x | "
          f"segments ours {k_o}, paper {k_p}, planted {int(lab.max()) + 1} | "
          f"ARI(ours, paper) {ari(ours, paper):.4f}, ARI(ours, planted) {ari(ours, lab):.4f}", flush=True)


def peak_rss_kib() -> int:
    """Peak resident set of this process's address space (VmHWM, KiB). Unlike ru_maxrss, which
    Linux carries over from the parent through fork+exec, VmHWM starts afresh at exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # non-Linux fallback


def child(side: int) -> None:
    feats, _ = planted(side)
    before = peak_rss_kib()
    seg = ncut_hierarchy(affinity(feats), tau=0.5).cut()
    after = peak_rss_kib()
    print(f"{before} {after} {int(seg.max()) + 1}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="*", default=[32, 64], help="sides for the comparison")
    p.add_argument("--growth", type=int, nargs="*", default=[16, 32, 48, 64])
    p.add_argument("--repeat", type=int, default=3, help="timed runs of ours (median)")
    p.add_argument("--baseline-repeat", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="skip the baseline comparison")
    p.add_argument("--_child", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._child:
        return child(args._child)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, C={C}", flush=True)
    if not args.quick:
        for side in args.sizes:
            compare(side, args.repeat, args.baseline_repeat)
    print("growth (ours, affinity + cut, median of repeats):")
    for side in args.growth:
        feats, _ = planted(side)
        t, seg = timed(lambda: ncut_hierarchy(affinity(feats), tau=0.5).cut(), args.repeat)
        print(f"  {side}x{side} (N={side * side}): {t:.3f} s, {int(seg.max()) + 1} segments", flush=True)
    print("peak memory (fresh subprocess per case, VmHWM):")
    for side in args.growth:
        out = subprocess.run([sys.executable, __file__, "--_child", str(side)], capture_output=True,
                             text=True, check=True).stdout.split()
        before, after = int(out[0]) / 1024, int(out[1]) / 1024
        print(f"  {side}x{side}: peak {after:.0f} MiB (after imports and features {before:.0f} MiB, "
              f"cut adds {after - before:.0f} MiB)", flush=True)


if __name__ == "__main__":
    main()
