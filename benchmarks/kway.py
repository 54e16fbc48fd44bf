"""Benchmark: the K-way cut (method "kway") against ovseg's recursive cut and the paper's algorithm.

Usage (from the repository root; heavy: run under the shared lock):
    flock /tmp/ovseg-heavy.lock python benchmarks/kway.py profile --sizes 64
    flock /tmp/ovseg-heavy.lock python benchmarks/kway.py speed --sizes 32 64 --batches 1 8
    flock /tmp/ovseg-heavy.lock python benchmarks/kway.py speed --sizes 128 --batches 1 --repeat 1 --paper-max-side 0
    flock /tmp/ovseg-heavy.lock python benchmarks/kway.py quality --sizes 32
    python benchmarks/kway.py cheaper --sizes 32      # fewer restarts / presolve steps vs the default
    python benchmarks/kway.py memory --sizes 32 64 --batches 1 8   # peak RSS, one fresh subprocess per case

speed: benchmarks/ncut.py's planted maps (C = 1280, SSD-1B's width; eight regions, cross-region
cosine ~0.6), B images. Each method end to end from features (affinity included): kway
(``segment_features(method="kway")`` on the (B, C, h, w) batch, one call), ovseg's recursive
``segment_features``, and the paper baseline of benchmarks/ncut.py (affinity + one dense eigh
per node; B = 1 only, --paper-max-side). Also the shared affinity alone and each cut alone from
the precomputed W (kway: ``kway_affinity_cut``; recursive: ``ncut_tree`` as ``segment_features``
calls it, no re-validation of W), and the bound recursive / affinity: no cut using the same
affinity can be faster end to end than that. Median of --repeat runs, ratios within the run;
NCut on the same W and Hungarian mIoU against the planted truth.
profile: where one call's time goes (affinity passes, the solver's seeding, presolve, merges,
refine), median of --repeat.
quality: ovseg.testing.PLANTED_SET (C = 32) + 8 noisier maps: K rules (auto, eigengap, tree, true
K), score forms and starts at the true K, and how often kway's NCut is <= the recursive cut's.
memory: peak resident set (VmHWM of a fresh subprocess: features, affinity and cut), not
tracemalloc (it cannot see torch's allocations).
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

from ovseg.masks import KWayConfig, NCutConfig, affinity, segment_features  # noqa: E402
from ovseg.masks.kway import kway_affinity_cut  # noqa: E402
from ovseg.masks.kway_solver import SolverConfig, ncut_value  # noqa: E402
from ovseg.masks.affinity import batch_affinity  # noqa: E402
from ovseg.masks.ncut import ncut_tree  # noqa: E402
from ovseg.testing import PLANTED_SET, planted_case, planted_miou  # noqa: E402


def timed(fn, repeat, warmup=True):
    """(median, min, max, result) of ``repeat`` timed calls after one untimed warm-up call (it
    absorbs the other thread pools' spin-down after switching methods, and first-touch costs)."""
    out = fn() if warmup else None
    times = []
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
            ta, ta_lo, _, W = timed(lambda: batch_affinity(feats, 10.0), args.repeat)  # the shared affinity
            tk, tk_lo, tk_hi, kw = timed(lambda: segment_features(feats, method="kway"), args.repeat)
            tr, tr_lo, tr_hi, rec = timed(lambda: segment_features(feats), args.repeat)
            tkc, tkc_lo, *_ = timed(lambda: kway_affinity_cut(W, KWayConfig()), args.repeat)
            trc, trc_lo, *_ = timed(lambda: [ncut_tree(w, 0.0, 1.0, NCutConfig(), None).cut() for w in W], args.repeat)
            row = {}
            for name, seg in (("kway", kw), ("recursive", rec)):
                ncut = ncut_value(W, seg.reshape(B, -1))
                row[name] = (float(ncut.mean()), min(planted_miou(s, l) for s, l in zip(seg, lab)),
                             [int(s.max()) + 1 for s in seg])
            line = (f"{side}x{side} B={B}: affinity {ta:.3f} s | end to end: kway {tk:.3f} s [{tk_lo:.3f}-{tk_hi:.3f}], "
                    f"recursive {tr:.3f} s [{tr_lo:.3f}-{tr_hi:.3f}], ratio recursive/kway {tr / tk:.2f}x, "
                    f"bound recursive/affinity {tr / ta:.2f}x | cut alone from W: kway {tkc:.3f} s, recursive "
                    f"{trc:.3f} s, ratio {trc / tkc:.2f}x | minima: affinity {ta_lo:.3f}, kway {tk_lo:.3f}, "
                    f"recursive {tr_lo:.3f}, ratio {tr_lo / tk_lo:.2f}x, bound {tr_lo / ta_lo:.2f}x, cuts {tkc_lo:.3f} "
                    f"vs {trc_lo:.3f} ({trc_lo / tkc_lo:.2f}x)")
            if B == 1 and side <= args.paper_max_side:
                tp, *_, pap = timed(lambda: paper_ncut(affinity(feats[0]), tau=0.5), 1, warmup=False)
                row["paper"] = (float(ncut_value(W, pap[None])), planted_miou(pap.view(side, side), lab[0]),
                                [int(pap.max()) + 1])
                line += f" | paper {tp:.3f} s, ratio paper/kway {tp / tk:.1f}x"
            if B > 1:
                t1, t1_lo, *_ = timed(lambda: [segment_features(f, method="kway") for f in feats], args.repeat)
                line += (f" | kway {B} single calls {t1:.3f} s [min {t1_lo:.3f}] (batch/singles {tk / t1:.2f}, "
                         f"minima {tk_lo / t1_lo:.2f})")
            print(line, flush=True)
            for name, (ncut, miou, ks) in row.items():
                print(f"    {name:9s} mean NCut {ncut:.3e}  min mIoU {miou:.4f}  K {ks}", flush=True)


def profile(args) -> None:
    from dataclasses import replace

    from ovseg.masks.affinity import _CHUNK, _power, gram
    from ovseg.masks.kway_solver import kmeans_pp, solve
    from ovseg.masks.kway_rules import merge_sequence, merged_start, merges_at

    for side in args.sizes:
        feats, _ = planted(side)
        print(f"{side}x{side}, C = {feats.shape[0]}, B = 1, median of {args.repeat} (min):")

        def show(name, fn):
            med, lo, _, out = timed(fn, args.repeat)
            print(f"  {name:46s} {med * 1e3:8.1f} ms ({lo * 1e3:.1f})", flush=True)
            return med, out

        cols = feats.flatten(1)
        _, x = show("affinity: L2-normalise the columns", lambda: (cols / (cols * cols).sum(0).sqrt_().clamp_min_(1e-12)).T)
        _, cos = show("affinity: Gram (upper blocks + mirror)", lambda: gram(x))
        lo, hi = (float(v) for v in torch.aminmax(cos))
        show("affinity: aminmax", lambda: torch.aminmax(cos))
        tcl, _ = show("  (a clone of W, to time the next in place)", lambda: cos.clone())

        def minmax_power():
            flat = cos.clone().view(-1)
            for a in range(0, flat.numel(), _CHUNK):
                _power(flat[a:a + _CHUNK].sub_(lo).div_(hi - lo).clamp_(0.0, 1.0), 10.0)
        tmp, _ = show("affinity: min-max + power (+ the clone)", minmax_power)
        ta, W = show("affinity: batch_affinity, all of it", lambda: batch_affinity(feats[None], 10.0))
        cfg = KWayConfig()

        def gen():
            return torch.Generator().manual_seed(cfg.seed)
        show("kway: degrees d = W 1", lambda: W.sum(2))
        show("kway: seeding (k-means++ on sketched profiles)", lambda: kmeans_pp(W, cfg.k_max, cfg.solver.restarts, gen()))
        show("kway: presolve set-up (seeding + first W X)",
             lambda: solve(W, cfg.k_max, config=replace(cfg.solver, max_iter=0), generator=gen()))
        _, st = show(f"kway: presolve at k_max, {cfg.presolve_iter} steps (set-up incl.)",
                     lambda: solve(W, cfg.k_max, config=replace(cfg.solver, max_iter=cfg.presolve_iter), generator=gen()))
        _, (a, b, v) = show("kway: merge order (from the solver's W X)",
                            lambda: merge_sequence(W, st.labels, cfg.k_max, product=st.product))
        count = merges_at(v, cfg.tau)
        _, (merged, G) = show("kway: merged start and its W X", lambda: merged_start(st.labels, st.product, a, b, count, cfg.k_max))
        _, st2 = show("kway: refine from the merged start",
                      lambda: solve(W, 1, config=replace(cfg.solver, restarts=1), init=merged, product=G))
        print(f"    (refine: {int(st2.iterations[0])} steps, K {int(st2.k[0])})")
        tc, _ = show("kway: the whole cut from W (kway_affinity_cut)", lambda: kway_affinity_cut(W, cfg))
        tk, _ = show("kway: segment_features end to end", lambda: segment_features(feats, method="kway"))
        trc, _ = show("recursive: the cut from W (ncut_tree)", lambda: ncut_tree(W[0], 0.0, 1.0, NCutConfig(), None).cut())
        tr, _ = show("recursive: segment_features end to end", lambda: segment_features(feats))
        print(f"  affinity = {ta / tr:.0%} of the recursive call; ratio recursive/kway end to end {tr / tk:.2f}x, "
              f"bound recursive/affinity {tr / ta:.2f}x; cut alone ratio {trc / tc:.2f}x", flush=True)


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
        if args.no_eigengap:  # dense eigvalsh, O(N^3): minutes per map at 64x64 on the 2-core CPU
            configs = [c for c in configs if c[0] != "eigengap"]
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


def cheaper(args) -> None:
    """The "auto" rule with fewer restarts / presolve steps against the default, on quality's maps."""
    for side in args.sizes:
        cases = [planted_case(n, no, co, side) for n, no, co in PLANTED_SET]
        cases += [planted_case(n, 0.8, 0.0, side, seed=s) for s in (1, 2) for n in ("blocks8", "voronoi7", "blobs5", "mixed5")]
        Ws = [affinity(f)[None] for f, _ in cases]
        base = None
        print(f"{side}x{side}: {len(cases)} maps")
        for r, steps in ((2, 4), (1, 4), (2, 2), (2, 0), (1, 0)):
            cfg = KWayConfig(presolve_iter=steps, solver=SolverConfig(restarts=r))
            mious, ncuts = [], []
            for (_, lab), W in zip(cases, Ws):
                seg, info = kway_affinity_cut(W, cfg)
                mious.append(planted_miou(seg.view(side, side), lab))
                ncuts.append(float(info["ncut"]))
            base = ncuts if base is None else base
            le = sum(a <= b + 1e-9 for a, b in zip(ncuts, base))
            print(f"  restarts {r}, presolve steps {steps}: min mIoU {min(mious):.4f} mean {sum(mious) / len(mious):.4f}"
                  f"  NCut <= the default's on {le}/{len(ncuts)}", flush=True)


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
    p.add_argument("mode", choices=["speed", "profile", "quality", "cheaper", "memory"])
    p.add_argument("--sizes", type=int, nargs="*", default=[32, 64])
    p.add_argument("--batches", type=int, nargs="*", default=[1, 8])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--paper-max-side", type=int, default=64)
    p.add_argument("--no-eigengap", action="store_true", help="quality: leave out the eigengap rule")
    args = p.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}", flush=True)
    {"speed": speed, "profile": profile, "quality": quality, "cheaper": cheaper, "memory": memory}[args.mode](args)


if __name__ == "__main__":
    main()
