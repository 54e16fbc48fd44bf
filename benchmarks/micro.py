"""Two micro-measurements: NumPy `take` against `np.ix_` for the small-node block copy (quoted in
docs/benchmarks-ncut.md) and `assign_concepts` at 2048x2048 (docs/benchmarks-upsample.md).

    PYTHONPATH=$PWD python benchmarks/micro.py take
    PYTHONPATH=$PWD python benchmarks/micro.py upsample     # OMP_NUM_THREADS=1 for one thread
"""
import resource
import sys
import time

import numpy as np
import torch


def best(fn, reps: int) -> float:
    """The fastest of `reps` calls of fn, in seconds."""
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def take() -> None:
    rng = np.random.default_rng(0)
    for n in (64, 128, 255):  # the small nodes (< 256 positions) that `best_split_small` solves
        w, order = rng.random((n, n)), rng.permutation(n)
        assert np.array_equal(w.take(order, 0).take(order, 1), w[np.ix_(order, order)])
        a = best(lambda: w.take(order, 0).take(order, 1), 2000)
        b = best(lambda: w[np.ix_(order, order)], 2000)
        print(f"n={n}: take {a * 1e6:.1f} us, np.ix_ {b * 1e6:.1f} us, ratio {b / a:.2f}")


def upsample() -> None:
    from ovseg.masks import assign_concepts

    torch.manual_seed(0)
    feats, seg = torch.randn(1280, 32, 32), torch.randint(0, 20, (32, 32))
    assign_concepts(feats, seg, (64, 64))  # warm-up
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    out = assign_concepts(feats, seg, (2048, 2048))
    t = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"threads={torch.get_num_threads()} 32x32x1280, K=20 -> {tuple(out.shape)}: {t:.2f} s, "
          f"peak RSS +{(peak - base) / 1024:.0f} MB over the process after setup")


if __name__ == "__main__":
    {"take": take, "upsample": upsample}[sys.argv[1]]()
