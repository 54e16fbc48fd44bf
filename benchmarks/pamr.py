"""Benchmark: PAMR's propagation (Numba kernel, and the cache-blocked torch path) against the
straightforward loop it replaced.

Usage (from the repository root):
    python benchmarks/pamr.py              # 1024x768 (demo setting) and 128x128 (benchmark setting)
    python benchmarks/pamr.py --quick      # 256x192 demo setting and 128x128: seconds, not minutes
    python benchmarks/pamr.py --cases demo:768x1024 --iterations 2   # a shorter custom run

Input: a synthetic image of 20 Voronoi colour cells plus noise, and a segment map of K = 20
Voronoi cells from *other* seeds (so PAMR has boundaries to move). "demo" is
``PAMRConfig.demo(20)`` (20 iterations, dilations 1..64), "benchmark" is ``PAMRConfig.benchmark()``
(10 iterations, dilations 1..8).
"old" is the code before this change: ``_pamr_affinity_reference`` (whole-image passes) and
``_propagate_reference`` (8D addcmul_ passes over (K, H, W) per step); "new" is what ``pamr`` runs
on CPU: ``pamr_affinity`` and ``propagate`` with the fused Numba kernel (ovseg/masks/pamr_kernel.py);
"torch" is ``propagate(kernel="torch")``, the cache-blocked torch path used without Numba and on
GPUs. Then the same argmax and label filter.

The Numba kernel's compile time is reported separately ("compile_s"): the "new" child starts with
an empty Numba cache (NUMBA_CACHE_DIR in a temporary directory), compiles the kernel on a tiny
input, and only then starts the timed call. Later processes load the cached kernel instead
("cache_load_s", measured in a second child with the same cache directory).

Each variant runs in a fresh subprocess that reports its wall time and its peak resident set
(VmHWM from /proc/self/status, before and after the call) and saves its labels; the parent
compares the labels (pixel agreement, and whether the raw float masks are bit-identical).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ovseg.masks.pamr import (  # noqa: E402
    _FILTERS, PAMRConfig, _pamr_affinity_reference, _propagate_reference, pamr_affinity, propagate,
)

SETTINGS = {"demo": PAMRConfig.demo(20), "benchmark": PAMRConfig.benchmark()}


def voronoi(H: int, W: int, k: int, seed: int) -> torch.Tensor:
    """(H, W) int64 ids of the nearest of k random seed points."""
    g = torch.Generator().manual_seed(seed)
    pts = torch.rand(k, 2, generator=g) * torch.tensor([H, W], dtype=torch.float32)
    yy, xx = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32),
                            indexing="ij")
    best = torch.full((H, W), float("inf"))
    ids = torch.zeros(H, W, dtype=torch.int64)
    for i in range(k):  # one cell at a time: O(H W) memory
        d = (yy - pts[i, 0]) ** 2 + (xx - pts[i, 1]) ** 2
        closer = d < best
        best = torch.where(closer, d, best)
        ids[closer] = i
    return ids


def inputs(H: int, W: int, k: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    """(3, H, W) image of k colour cells + noise, (H, W) segments of k cells from other seeds."""
    g = torch.Generator().manual_seed(1)
    colours = torch.rand(k, 3, generator=g)
    image = colours[voronoi(H, W, k, seed=2)].permute(2, 0, 1)
    image = (image + 0.03 * torch.randn(3, H, W, generator=g)).clamp(0, 1)
    return image.contiguous(), voronoi(H, W, k, seed=3)


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def warm_kernel() -> float:
    """Compile (or load from the cache) the Numba kernel on a tiny input; returns the seconds."""
    t = time.perf_counter()
    m = torch.zeros(2, 8, 8)
    m[0] = 1
    propagate(m, torch.full((8, 8, 8), 1 / 8), (1,), 1, kernel="numba")
    return time.perf_counter() - t


def run_variant(variant: str, setting: str, H: int, W: int, k: int, iterations: int | None,
                out: str) -> None:
    """Child process: one variant on one case; prints a JSON line, saves masks and labels."""
    cfg = SETTINGS[setting]
    its = cfg.iterations if iterations is None else iterations
    if variant == "load":  # the kernel from the cache the "new" child wrote
        print(json.dumps({"variant": variant, "cache_load_s": warm_kernel()}))
        return
    compile_s = warm_kernel() if variant == "new" else None
    image, seg = inputs(H, W, k)
    ids, inverse = torch.unique(seg.reshape(-1), return_inverse=True)
    before = peak_rss_mib()
    t0 = time.perf_counter()
    alpha = (_pamr_affinity_reference if variant == "old" else pamr_affinity)(image, cfg.dilations)
    t_alpha = time.perf_counter() - t0
    m = F.one_hot(inverse.reshape(H, W), ids.numel()).permute(2, 0, 1).float()
    t1 = time.perf_counter()
    if variant == "old":
        m = _propagate_reference(m, alpha, cfg.dilations, its)
    else:
        m = propagate(m, alpha, cfg.dilations, its, kernel="numba" if variant == "new" else "torch")
    t_prop = time.perf_counter() - t1
    labels = ids[_FILTERS[cfg.label_filter](m.argmax(0))]
    total = time.perf_counter() - t0
    torch.save({"m": m, "labels": labels}, out)
    print(json.dumps({"variant": variant, "total_s": total, "affinity_s": t_alpha, "propagate_s": t_prop,
                      "rss_before_mib": before, "rss_peak_mib": peak_rss_mib(), "iterations": its,
                      "compile_s": compile_s}))


def case(setting: str, H: int, W: int, k: int, iterations: int | None) -> dict:
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, NUMBA_CACHE_DIR=str(Path(tmp) / "numba-cache"))  # empty: a cold compile
        for variant in ("new", "load", "torch", "old"):  # ours first: the load tends to grow during a run
            path = str(Path(tmp) / f"{variant}.pt")
            cmd = [sys.executable, __file__, "--_child", variant, setting, str(H), str(W), str(k),
                   str(-1 if iterations is None else iterations), path]
            line = subprocess.run(cmd, capture_output=True, text=True, check=True,
                                  env=env).stdout.strip().splitlines()[-1]
            res[variant] = json.loads(line)
            print(f"  {setting} {W}x{H} {variant}: {line}", flush=True)  # as soon as it is known
            if variant != "load":
                res[variant]["out"] = torch.load(path)
    new, old, blocked = res["new"], res["old"], res["torch"]
    agree = float((new["out"]["labels"] == old["out"]["labels"]).float().mean())
    identical = torch.equal(new["out"]["m"], old["out"]["m"])
    identical_torch = torch.equal(blocked["out"]["m"], old["out"]["m"])
    print(f"{setting} {W}x{H} (WxH), K={k}, {new['iterations']} iterations, "
          f"dilations {SETTINGS[setting].dilations}:\n"
          f"  old {old['total_s']:.2f} s (propagation {old['propagate_s']:.2f} s) | "
          f"new {new['total_s']:.2f} s (propagation {new['propagate_s']:.2f} s) | "
          f"torch path {blocked['total_s']:.2f} s (propagation {blocked['propagate_s']:.2f} s) | "
          f"affinities {new['affinity_s']:.2f} s\n"
          f"  Numba kernel, not in the times above: cold compile {new['compile_s']:.1f} s, "
          f"load from cache {res['load']['cache_load_s']:.1f} s\n"
          f"  speed-up: whole call {old['total_s'] / new['total_s']:.1f}x (torch path "
          f"{old['total_s'] / blocked['total_s']:.1f}x), propagation {old['propagate_s'] / new['propagate_s']:.1f}x\n"
          f"  labels agree on {100 * agree:.4f} % of pixels; float masks bit-identical: {identical} "
          f"(torch path: {identical_torch})\n"
          f"  peak RSS: old {old['rss_peak_mib']:.0f} MiB (+{old['rss_peak_mib'] - old['rss_before_mib']:.0f}), "
          f"new {new['rss_peak_mib']:.0f} MiB (+{new['rss_peak_mib'] - new['rss_before_mib']:.0f}) "
          f"over the process after imports and inputs", flush=True)
    return {"agree": agree, "identical": identical}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="256x192 demo and 128x128 benchmark setting")
    p.add_argument("--cases", nargs="*", help="SETTING:HxW, e.g. demo:768x1024 benchmark:128x128")
    p.add_argument("--segments", type=int, default=20, help="K, Voronoi segments")
    p.add_argument("--iterations", type=int, help="override the setting's iteration count")
    p.add_argument("--_child", nargs=7, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._child:
        v, s, H, W, k, its, out = args._child
        return run_variant(v, s, int(H), int(W), int(k), None if int(its) < 0 else int(its), out)
    cases = args.cases or (["demo:192x256", "benchmark:128x128"] if args.quick
                           else ["demo:768x1024", "benchmark:128x128"])
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}", flush=True)
    for spec in cases:
        setting, size = spec.split(":")
        H, W = (int(v) for v in size.split("x"))
        case(setting, H, W, args.segments, args.iterations)


if __name__ == "__main__":
    main()
