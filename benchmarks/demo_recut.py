"""How long a tau-slider move of `ovseg demo` takes: `DemoSession.result` on a kept NCut tree.

One image is prepared once (backbone pass + NCut tree built at --max-tau), then every distinct
cut of the tree is asked for twice: the first time runs the cheap steps (Hierarchy.cut, concept
assignment and PAMR at the working size, CLIP pooling on the cached dense map, the result), the
second finds the refined map memoised. No backbone pass happens after `prepare`: the script
counts them. Weights: tiny random checkpoints (`--size tiny`, the only mode: no download), which
make the segment maps meaningless but keep the real sizes of everything a move touches: the
feature grid (resolution / 32 per side), the working image (long side <= resolution), PAMR's
iterations and dilations. CLIP's dense map is the tiny model's (smaller than convnext_large's),
so the naming part is a lower bound.

    PYTHONPATH=. python benchmarks/demo_recut.py --size tiny --resolution 1024 --image examples/astronaut.jpg
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=["tiny"], default="tiny")
    ap.add_argument("--image", default="examples/astronaut.jpg")
    ap.add_argument("--resolution", type=int, default=1024)
    ap.add_argument("--alpha", type=float, default=10.0)
    ap.add_argument("--max-tau", type=float, default=1.0)
    ap.add_argument("--refine-iterations", type=int, default=20)
    ap.add_argument("--classes", default="person,rocket,flag,sky,wall")
    ap.add_argument("--moves", type=int, default=8, help="distinct cuts timed (a sample)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from ovseg import Segmenter
    from ovseg.demo import DemoSession
    from ovseg.testing import make_tiny_backbone_weights, make_tiny_clip_weights

    root = Path(tempfile.mkdtemp(prefix="ovseg-bench-demo-"))
    weights = dict(weights=make_tiny_backbone_weights("ssd-1b", root / "ssd-1b"),
                   clip_weights=make_tiny_clip_weights(root / "clip"))
    seg = Segmenter(resolution=args.resolution, alpha=args.alpha, refine_iterations=args.refine_iterations,
                    cache=False, device="cpu", **weights)
    calls = []
    features = seg._features
    seg._features = lambda arrays: (calls.append(1), features(arrays))[1]
    session = DemoSession(seg, max_tau=args.max_tau)
    vocab = seg.vocabulary(args.classes)
    seg.labeler  # noqa: B018 - load CLIP before timing

    print("models loaded", flush=True)
    t0 = time.perf_counter()
    state = session.prepare(args.image)
    prep = time.perf_counter() - t0
    ts = state.tree.thresholds()
    taus = [0.0] + [min(args.max_tau, t + 1e-6) for t in ts if t < args.max_tau]
    if len(taus) > args.moves:  # a sample of the distinct cuts, coarse to fine
        taus = [taus[round(i * (len(taus) - 1) / (args.moves - 1))] for i in range(args.moves)]
    print(f"prepared in {prep:.1f} s", flush=True)
    session.result(state, taus[-1], vocab)  # CLIP dense features once
    print(f"timing {len(taus)} of {len(ts) + 1} distinct cuts: segments "
          f"{[state.tree.num_segments(t) for t in taus]}", flush=True)
    first, again, plain = [], [], []
    for tau in taus:
        t = time.perf_counter()
        session.result(state, tau, vocab)
        first.append(time.perf_counter() - t)
    for tau in taus:
        t = time.perf_counter()
        session.result(state, tau, vocab)
        again.append(time.perf_counter() - t)
    for tau in taus:
        t = time.perf_counter()
        session.result(state, tau)
        plain.append(time.perf_counter() - t)
    h, w = state.array.shape[:2]
    print(f"image {args.image} {w}x{h}, backbone input {args.resolution} px, feature grid "
          f"{tuple(state.feats.shape[-2:])}, PAMR {args.refine_iterations} it., torch threads "
          f"{torch.get_num_threads()}")
    print(f"prepare (backbone pass + NCut tree to tau {args.max_tau}): {prep:.2f} s "
          f"(backbone {state.seconds['backbone']:.2f} s, tree {state.seconds['ncut_tree']:.2f} s, "
          f"{len(state.tree.nodes)} nodes, {len(taus)} distinct cuts); CLIP dense "
          f"{state.seconds.get('clip_dense', float('nan')):.2f} s")

    def row(name, xs):
        print(f"{name:44s} median {statistics.median(xs):.3f} s  max {max(xs):.3f} s  (n={len(xs)})")

    row("slider move, new cut, named", [x for x, t in zip(first, taus) if t != taus[-1]] or first)
    row("slider move, cut seen before, named", again)
    row("slider move, cut seen before, segments only", plain)
    print(f"backbone passes after prepare: {len(calls) - 1}")


if __name__ == "__main__":
    main()
