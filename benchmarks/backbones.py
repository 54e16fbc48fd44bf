"""Time and peak memory of each backbone's feature pass, against the whole UNet.

Full-size architectures with random weights (ovseg.testing.make_random_backbone): no download.
Every case runs in a fresh subprocess, one at a time, so its peak RSS is its own.

    python benchmarks/backbones.py                       # every case, table on stdout
    python benchmarks/backbones.py --only ssd-1b sd15    # some backbones
    python benchmarks/backbones.py --case ssd-1b --mode features   # one case (what the driver runs)

Modes: "features" = VAE encoder + UNet down path up to the hooked attn1, where the pass stops
(the decoder is never allocated); "whole-unet" = VAE encoder + the complete UNet forward, what a
pipeline without the early stop would run. ViT backbones only have "features".
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

CASES = [  # (backbone, mode), most informative first; whole-unet of SDXL (2.6B, 10 GB fp32) left out on CPU
    ("sd15", "features"), ("sd15", "whole-unet"),
    ("ssd-1b", "features"), ("ssd-1b", "whole-unet"),
    ("vega", "features"), ("vega", "whole-unet"),
    ("sdxl", "features"),
    ("clip-b16", "features"), ("siglip-b16", "features"),
    ("dinov2-s", "features"), ("dinov2-b", "features"), ("dinov2-l", "features"), ("dinov2-g", "features"),
]


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_case(name: str, mode: str, repeats: int, device: str, resolution: int | None, threads: int = 0) -> dict:
    import torch

    if threads:
        torch.set_num_threads(threads)
    from ovseg.features import backbone_info
    from ovseg.testing._features import make_random_backbone

    res = resolution or backbone_info(name).resolution
    t0 = time.perf_counter()
    kwargs = {"prune": mode == "features"} if backbone_info(name).feature_dim == 1280 and backbone_info(name).stride == 32 else {}
    backbone = make_random_backbone(name, "full", device=device, **kwargs)
    build_s = time.perf_counter() - t0
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # give freed build memory back, so RSS shows what is held
    params = sum(p.numel() for p in backbone.parameters())
    images = torch.rand(1, 3, res, res, generator=torch.Generator().manual_seed(0))
    rss_before = _rss_mb()
    peak, stop = [rss_before], threading.Event()

    def sample():
        while not stop.is_set():
            peak.append(_rss_mb())
            time.sleep(0.01)

    if mode == "features":
        step = lambda: backbone(images)  # noqa: E731
    else:
        step = lambda: backbone.unet(**backbone._unet_inputs(images))  # noqa: E731
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    times, cpu = [], []
    with torch.no_grad():
        for _ in range(repeats):
            t, c = time.perf_counter(), time.process_time()
            out = step()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)  # CPU seconds: far less sensitive to a loaded machine
        vae_cpu = None
        if hasattr(backbone, "encode_latents") and device == "cpu":
            c = time.process_time()
            backbone.encode_latents(images)
            vae_cpu = round(time.process_time() - c, 1)
    stop.set()
    sampler.join()
    shape = tuple(out.shape if isinstance(out, torch.Tensor) else out[0].shape)
    return {"backbone": name, "mode": mode, "resolution": res, "device": device, "params_M": round(params / 1e6, 1),
            "threads": torch.get_num_threads(), "build_s": round(build_s, 1), "times_s": [round(t, 2) for t in times],
            "cpu_s": [round(c, 1) for c in cpu], "vae_cpu_s": vae_cpu,
            "rss_before_pass_MB": round(rss_before), "peak_rss_during_pass_MB": round(max(peak)),
            "peak_rss_process_MB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "output_shape": shape}


def markdown_table(lines: list[dict]) -> str:
    """The JSON lines written with --out as a markdown table."""
    rows = ["| backbone | mode | px | params (M) | CPU s per pass | of which VAE encoder | wall s per pass "
            "| RSS before pass (MB) | peak RSS in pass (MB) | output |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in lines:
        if "error" in r:
            rows.append(f"| {r['backbone']} | {r['mode']} | | | error: {r['error']} | | | | | |")
            continue
        rows.append(f"| {r['backbone']} | {r['mode']} | {r['resolution']} | {r['params_M']} | "
                    f"{', '.join(map(str, r.get('cpu_s', ['not measured'])))} | {r.get('vae_cpu_s') or '-'} | "
                    f"{', '.join(map(str, r['times_s']))} | {r['rss_before_pass_MB']} | "
                    f"{r['peak_rss_during_pass_MB']} | {'x'.join(map(str, r['output_shape']))} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", help="run one backbone in this process")
    ap.add_argument("--mode", default="features", choices=["features", "whole-unet"])
    ap.add_argument("--only", nargs="*", help="backbones to run (default: all cases)")
    ap.add_argument("--repeats", type=int, default=2, help="timed passes per case (the first includes warm-up)")
    ap.add_argument("--whole-repeats", type=int, default=1, help="timed passes of the whole UNet (slow on CPU)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--resolution", type=int, help="default: each backbone's own resolution")
    ap.add_argument("--out", help="append each result as one JSON line to this file")
    ap.add_argument("--table", nargs="+", help="print the JSON-lines files as a markdown table and exit")
    args = ap.parse_args()
    if args.table:
        print(markdown_table([json.loads(l) for f in args.table for l in open(f) if l.strip()]))
        return
    if args.case:
        print(json.dumps(run_case(args.case, args.mode, args.repeats, args.device, args.resolution, args.threads)))
        return
    for name, mode in CASES:
        if args.only and name not in args.only:
            continue
        cmd = [sys.executable, __file__, "--case", name, "--mode", mode,
               "--repeats", str(args.whole_repeats if mode == "whole-unet" else args.repeats),
               "--device", args.device, "--threads", str(args.threads)] + (["--resolution", str(args.resolution)] if args.resolution else [])
        proc = subprocess.run(cmd, capture_output=True, text=True)  # one case at a time, never two
        if proc.returncode != 0:
            result = {"backbone": name, "mode": mode, "error": proc.stderr.strip().splitlines()[-1:]}
        else:
            result = json.loads(proc.stdout.strip().splitlines()[-1])
        print(json.dumps(result), flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
