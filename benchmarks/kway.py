"""Benchmark: the K-way cut (method "kway") against ovseg's recursive cut and the paper's algorithm.

Usage (from the repository root; heavy: run under the shared lock):
    flock /tmp/ovseg-heavy.lock python benchmarks/kway.py speed --sizes 32 64 --batches 1 8
    flock /tmp/ovseg-heavy.lock python benchmarks/kway.py quality --sizes 32 64
    python benchmarks/kway.py memory --sizes 64        # peak RSS, one fresh subprocess per case

speed: benchmarks/ncut.py's planted maps (C = 1280, SSD-1B's width; eight regions, cross-region
cosine ~0.6), B images. Each method end to end from features (affinity included): kway
(``segment_features(method="kway")`` on the (B, C, h, w) batch, one call), ovseg's recursive
``segment_features``, and the paper baseline of benchmarks/ncut.py (affinity + one dense eigh
per node; B = 1 only, --paper-max-side). Median of --repeat runs, ratios within the run; NCut on
the same W and Hungarian mIoU against the planted truth.
quality: ovseg.testing.PLANTED_SET (C = 32): K rules (auto, eigengap, tree, true K), score forms
and starts at the true K, and how often kway's NCut at the true K is <= the recursive cut's.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ncut import paper_ncut, peak_rss_kib, planted  # noqa: E402

from ovseg.masks import KWayConfig, SolverConfig, affinity, kway_affinity_cut, ncut_value, segment_features  # noqa: E402
from ovseg.testing import PLANTED_SET, planted_case, planted_miou  # noqa: E402


def timed(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times), max(times), out


def speed(args) -> None:
    for side in args.sizes:
        for B in args.batches:
            feats, lab = zip(*(planted(side, seed=s) for s in range(B)))
            feats = torch.stack(feats)
            W = torch.stack([affinity(f) for f in feats])
            tk, tk_lo, tk_hi, kw = timed(lambda: segment_features(feats, method="kway"), args.repeat)
            tr, tr_lo, tr_hi, rec = timed(lambda: segment_features(feats), args.repeat)
            row = {}
            for name, seg in (("kway", kw), ("recursive", rec)):
                ncut = ncut_value(W, seg.reshape(B, -1))
                row[name] = (float(ncut.mean()), min(planted_miou(s, l) for s, l in zip(seg, lab)),
                             [int(s.max()) + 1 for s in seg])
            line = (f"{side}x{side} B={B}: kway {tk:.3f} s [{tk_lo:.3f}-{tk_hi:.3f}], recursive {tr:.3f} s "
                    f"[{tr_lo:.3f}-{tr_hi:.3f}], ratio recursive/kway {tr / tk:.2f}x")
            if B == 1 and side <= args.paper_max_side:
                tp, *_ , pap = timed(lambda: paper_ncut(affinity(feats[0]), tau=0.5), 1)
                row["paper"] = (float(ncut_value(W, pap[None])), planted_miou(pap.view(side, side), lab[0]),
                                [int(pap.max()) + 1])
                line += f", paper {tp:.3f} s, ratio paper/kway {tp / tk:.1f}x"
            if B > 1:
                t1, *_ = timed(lambda: [segment_features(f, method="kway") for f in feats], args.repeat)
                line += f" | kway {B} single calls {t1:.3f} s (batch/singles {tk / t1:.2f})"
            print(line, flush=True)
            for name, (ncut, miou, ks) in row.items():
                print(f"    {name:9s} mean NCut {ncut:.3e}  min mIoU {miou:.4f}  K {ks}", flush=True)


def quality(args) -> None:
    for side in args.sizes:
        cases = [(n, no, co, *planted_case(n, no, co, side)) for n, no, co in PLANTED_SET]
        cases += [(n, 0.8, 0.0, *planted_case(n, 0.8, 0.0, side, seed=s)) for s in (1, 2)
                  for n in ("blocks8", "voronoi7", "blobs5", "mixed5")]  # noisier extras
        Ws = [affinity(f)[None] for *_, f, _ in cases]
        recs = [segment_features(f).reshape(1, -1) for *_, f, _ in cases]
        print(f"{side}x{side}: {len(cases)} planted maps ({len(PLANTED_SET)} of PLANTED_SET + 8 noisier)")
        configs = [("auto (default)", lambda K: KWayConfig()), ("eigengap", lambda K: KWayConfig(k="eigengap")),
                   ("tree K + its start", lambda K: KWayConfig(k="tree")), ("true K", lambda K: KWayConfig(k=K)),
                   ("true K, lin", lambda K: KWayConfig(k=K, solver=SolverConfig(score="lin"))),
                   ("true K, quad", lambda K: KWayConfig(k=K, solver=SolverConfig(score="quad"))),
                   ("true K, random starts", lambda K: KWayConfig(k=K, solver=SolverConfig(init="random"))),
                   ("true K, random, quad", lambda K: KWayConfig(k=K, solver=SolverConfig(init="random", score="quad"))),
                   ("true K, random, lin", lambda K: KWayConfig(k=K, solver=SolverConfig(init="random", score="lin")))]
        rec_m = [planted_miou(r.view(side, side), c[4]) for r, c in zip(recs, cases)]
        print(f"  {'recursive (tau 0.5)':24s} min mIoU {min(rec_m):.3f} mean {sum(rec_m) / len(rec_m):.4f}")
        for label, make in configs:
            mious, its, le, t0, ks = [], [], 0, time.perf_counter(), 0
            for (name, no, co, f, lab), W, rec in zip(cases, Ws, recs):
                K = int(lab.max()) + 1
                seg, info = kway_affinity_cut(W, make(K))
                mious.append(planted_miou(seg.view(side, side), lab))
                its.append(int(info["iterations"]))
                le += float(info["ncut"]) <= float(ncut_value(W, rec)) + 1e-9
                ks += int(info["k"]) == K
            n = len(cases)
            print(f"  {label:24s} min mIoU {min(mious):.3f} mean {sum(mious) / n:.4f}  K right {ks}/{n}  "
                  f"NCut <= recursive {le}/{n}  iterations mean {sum(its) / n:.1f} max {max(its)}  "
                  f"{time.perf_counter() - t0:.1f} s", flush=True)


def child(side: int, B: int, method: str) -> None:
    feats = torch.stack([planted(side, seed=s)[0] for s in range(B)])
    before = peak_rss_kib()
    segment_features(feats, method=method)
    print(before, peak_rss_kib())


def memory(args) -> None:
    for side in args.sizes:
        for B in args.batches:
            for method in ("kway", "diffcut"):
                out = subprocess.run([sys.executable, __file__, "child", str(side), str(B), method],
                                     capture_output=True, text=True, check=True).stdout.split()
                a, b = int(out[0]) / 1024, int(out[1]) / 1024
                print(f"{side}x{side} B={B} {method}: peak {b:.0f} MiB, the cut adds {b - a:.0f} MiB", flush=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        return child(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["speed", "quality", "memory"])
    p.add_argument("--sizes", type=int, nargs="*", default=[32, 64])
    p.add_argument("--batches", type=int, nargs="*", default=[1, 8])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--paper-max-side", type=int, default=64)
    args = p.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}", flush=True)
    {"speed": speed, "quality": quality, "memory": memory}[args.mode](args)


if __name__ == "__main__":
    main()
