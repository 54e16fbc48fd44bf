"""Cost of the CLIP dense pass at the published input (the backbone's square, 1024 px) and at the
fast option (--clip-resolution 320), on this machine.

    python benchmarks/clip_cost.py --size tiny          # seconds, any machine
    python benchmarks/clip_cost.py --size full --repeat 2  # convnext_large_d_320, random weights (~1.4 GB)

Prints one line per setting: input size, grid, median seconds of `Labeler.pool_segments` (dense
features + pooling + head) over --repeat runs, with torch's thread count.
"""
from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    import torch

    from ovseg.labels.labeler import Labeler, LabelerConfig

    p = argparse.ArgumentParser()
    p.add_argument("--size", choices=["tiny", "full"], default="tiny")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--square", type=int, default=1024, help="the backbone's input side")
    p.add_argument("--segments", type=int, default=20)
    p.add_argument("--clip-resolution", type=int, action="append", default=None,
                   help="0 = the square as given; repeat for several [default: 0 and 320]")
    args = p.parse_args()
    import open_clip

    if args.size == "full":
        clip = open_clip.create_model("convnext_large_d_320", pretrained=None)
    else:
        from ovseg.testing._labels import TINY_CONFIGS

        clip = open_clip.CLIP(**TINY_CONFIGS["convnext"])
    clip.eval()
    tokenizer = open_clip.get_tokenizer("convnext_large_d_320")
    image = torch.rand(3, args.square, args.square, generator=torch.Generator().manual_seed(0))
    segments = (torch.arange(args.square)[:, None] * args.segments // args.square).expand(-1, args.square).contiguous()
    for resolution in [r or None for r in (args.clip_resolution or [0, 320])]:
        cfg = LabelerConfig(resolution=resolution, disk_cache=False)
        labeler = Labeler(clip, tokenizer, identity="bench", config=cfg, device=torch.device("cpu"),
                          dtype=torch.float32)
        times = []
        with torch.inference_mode():
            grid = tuple(labeler.dense_features(image).shape[-2:])
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                labeler.pool_segments(image, segments)
                times.append(time.perf_counter() - t0)
        side = args.square if resolution is None else resolution
        print(f"size={args.size} clip_resolution={resolution} input={side}x{side} grid={grid[0]}x{grid[1]} "
              f"median_s={statistics.median(times):.2f} runs={[round(t, 2) for t in times]} "
              f"threads={torch.get_num_threads()}", flush=True)


if __name__ == "__main__":
    main()
