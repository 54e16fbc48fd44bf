"""Cost of the random-walk method next to DiffCut's cut, on one image, random weights, CPU or GPU.

Stages timed (wall clock and process CPU time, which is steadier on a shared machine; after one
warm-up pass of the backbone) and the process's peak resident memory after each (``ru_maxrss``: a high-water mark, so it only grows):

* ``features``: the backbone pass alone (what DiffCut needs);
* ``capture``: the same pass recording every encoder self-attention map and combining them on the
  feature grid on the fly (``ovseg.masks.capture_transitions``: the default recipe);
* ``stationary``: pi of the combined P (exact float64 solve up to 4096 cells);
* ``P^k``: the k-step walk for each k in --steps (float64 repeated squaring);
* ``rw cut tau=0.5`` / ``rw cut auto``: affinity + recursive NCut of the walk (k = 1);
* ``diffcut tau=0.5`` / ``diffcut auto``: DiffCut's affinity + recursive NCut of the features.

    PYTHONPATH=. python benchmarks/random_walk_cost.py --size tiny --resolution 256   # seconds
    PYTHONPATH=. python benchmarks/random_walk_cost.py --size full --resolution 1024  # ~7+ GB, minutes
    PYTHONPATH=. python benchmarks/random_walk_cost.py --size full --resolution 2048 --device cuda
    PYTHONPATH=. python benchmarks/random_walk_cost.py --synthetic-grid 64   # the cut's share at 2048 px

``--size full`` builds the real SSD-1B encoder with random weights (``ovseg.testing``; pruned
after the hooked layer): the cost is that of real weights, the segments mean nothing.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import torch


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timer(rows: list[dict], device: str):
    """timed(stage, fn) -> fn(): wall and CPU seconds, peak RSS (and CUDA memory), as a JSON row."""
    def timed(stage, fn):
        _sync(device)
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        _sync(device)
        row = {"stage": stage, "seconds": round(time.perf_counter() - t0, 3),
               "cpu_seconds": round(time.process_time() - c0, 3), "peak_rss_mib": round(_peak_mib())}
        if device.startswith("cuda"):
            row["peak_cuda_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
        rows.append(row)
        print(json.dumps(row), flush=True)
        return out

    return timed


def _after_backbone(timed, rw_feats, dc_feats, P, steps: list[int]) -> None:
    """The stages after the backbone: stationary distribution, P^k, both cuts at tau 0.5 and auto."""
    from ovseg.masks import build_hierarchy
    from ovseg.masks.random_walk import stationary_distribution
    from ovseg.masks.segment import segment_image

    timed("stationary", lambda: stationary_distribution(P))
    for k in steps:
        if k > 1:
            timed(f"P^{k}", lambda: torch.linalg.matrix_power(P.double(), k))
    timed("rw cut tau=0.5", lambda: segment_image(rw_feats, P, method="random-walk", tau=0.5))
    timed("rw cut auto", lambda: segment_image(rw_feats, P, method="random-walk", tau="auto"))
    timed("diffcut tau=0.5", lambda: build_hierarchy(dc_feats, tau=0.5).cut())
    timed("diffcut auto", lambda: segment_image(dc_feats, method="diffcut", tau="auto"))


def run(size: str, resolution: int, steps: list[int], device: str, backbone: str) -> list[dict]:
    from ovseg.masks import capture_transitions
    from ovseg.testing import make_random_backbone

    rows: list[dict] = []
    timed = _timer(rows, device)

    model = timed("build backbone", lambda: make_random_backbone(backbone, size, device=device).eval())
    image = torch.rand(1, 3, resolution, resolution, generator=torch.Generator().manual_seed(0)).to(device)
    names = list(model.attention_layer_names)
    with torch.no_grad():
        model(image)  # warm-up
        feats = timed("features", lambda: model(image).float())
        feats2, P = timed(f"capture ({len(names)} layers)", lambda: capture_transitions(model, image))
    f, P = feats2[0], P[0]
    print(f"# grid {tuple(f.shape[1:])}, N = {P.shape[0]}; layers: {names}", flush=True)
    _after_backbone(timed, f, feats[0], P, steps)
    return rows


def run_synthetic(grid: int, steps: list[int], device: str) -> list[dict]:
    """The stages after the backbone at a (grid x grid) feature grid, on synthetic inputs: P =
    softmax of scaled cosines of random 1280-d features (attention-like, strictly positive), the
    same features for DiffCut. grid 64 = what a stride-32 backbone gives at 2048 px."""
    rows: list[dict] = []
    g = torch.Generator().manual_seed(0)
    low = torch.randn(8, grid // 8, grid // 8, generator=g)  # smooth structure: 8 random directions
    up = torch.nn.functional.interpolate(low[None], size=(grid, grid), mode="bilinear")[0]
    feats = (torch.randn(1280, 8, generator=g) @ up.reshape(8, -1)).reshape(1280, grid, grid)
    feats = (feats + 0.5 * torch.randn(feats.shape, generator=g)).to(device)
    x = torch.nn.functional.normalize(feats.reshape(1280, -1).T, dim=1)
    P = torch.softmax(8.0 * x @ x.T, dim=1)

    timed = _timer(rows, device)

    print(f"# synthetic grid {grid}x{grid}, N = {grid * grid}", flush=True)
    _after_backbone(timed, feats, feats, P, steps)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=["tiny", "full"], default="tiny")
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--steps", default="1,2,4")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--backbone", default="ssd-1b")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--synthetic-grid", type=int, default=None,
                    help="no backbone: time the stages after it on a synthetic grid (64 = 2048 px)")
    ap.add_argument("--json", default=None, help="also write the rows here")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = [int(k) for k in args.steps.split(",")]
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, {args.device}; "
          f"{' '.join(sys.argv)}", flush=True)
    if args.synthetic_grid:
        rows = run_synthetic(args.synthetic_grid, steps, args.device)
    else:
        print(f"# {args.backbone} ({args.size}, random weights) at {args.resolution} px", flush=True)
        rows = run(args.size, args.resolution, steps, args.device, args.backbone)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
