"""What alpha="auto" adds to the cut's time at 64 x 64 (4,096 tokens), in one run.

Per feature map, repeated (``--repeats``), interleaved so that load drifts hit every variant:
  aff_fixed   DiffCut's affinity at alpha 10 (``affinity_checked``: gram, min-max, power by squaring)
  aff_auto    the calibrated affinity (gram, min-max, sample, bisection on log alpha, pow, W_ii = 0)
  search      the sample + bisection alone (inside aff_auto)
  cut_fixed   the whole diffcut at alpha 10, tau 0.5 (``segment_features``)
  cut_auto    the whole diffcut at alpha "auto", the calibrated rule's tau (no min_area)
The calibration's cost is aff_auto - aff_fixed (the search, a ``pow`` instead of four squarings,
zeroing the diagonal), reported against cut_auto. Features: planted (voronoi7, 64 channels) and
real efficientnet-lite0 features of examples/chelsea.png at 1024 px (a 64 x 64 grid, conditioned).

    flock /tmp/ovseg-heavy.lock python benchmarks/calibration_cost.py --repeats 7
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402


def features() -> dict[str, torch.Tensor]:
    from ovseg.testing import planted_case

    out = {"planted voronoi7 (64 ch)": planted_case("voronoi7", 0.5, 0.0, 64, c=64)[0]}
    try:
        import numpy as np
        from PIL import Image

        import ovseg
        from ovseg.pipeline import stages

        bb = ovseg.create_backbone("efficientnet-lite0", device="cpu")
        image = np.array(Image.open(ROOT / "examples" / "chelsea.png").convert("RGB"))
        inp, _ = stages.prepare(image, 1024)
        with torch.no_grad():
            out["efficientnet-lite0 chelsea (152 ch)"] = bb(inp[None])[0]
    except Exception as err:  # the lite extra not installed: planted only
        print(f"(no real features: {err})")
    return out


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from ovseg.masks import segment_features
    from ovseg.masks.affinity import affinity_checked, check_features
    from ovseg.masks.calibrate import SAMPLE, _sample, calibrated_affinity, degree_alpha
    from ovseg.settings.defaults import CALIBRATED

    print(f"torch threads {torch.get_num_threads()}")
    for name, feats in features().items():
        f = check_features(feats)
        C = affinity_checked(f, 1.0)[0]
        variants = {
            "aff_fixed": lambda: affinity_checked(f, 10.0),
            "aff_auto": lambda: calibrated_affinity(f),
            "search": lambda: degree_alpha(_sample(C, SAMPLE)),
            "cut_fixed": lambda: segment_features(feats, alpha=10.0, tau=0.5),
            "cut_auto": lambda: segment_features(feats, alpha="auto", tau=CALIBRATED["tau"]),
        }
        for fn in variants.values():  # warm-up, untimed
            fn()
        times = {k: [] for k in variants}
        for _ in range(args.repeats):
            for k, fn in variants.items():
                times[k].append(timed(fn))
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"{name}, grid {tuple(feats.shape[-2:])}:")
        for k, v in times.items():
            print(f"  {k:10s} median {med[k] * 1e3:7.1f} ms  min {min(v) * 1e3:7.1f}  max {max(v) * 1e3:7.1f}")
        added = [a - b for a, b in zip(times["aff_auto"], times["aff_fixed"])]
        share = [a / c for a, c in zip(added, times["cut_auto"])]
        print(f"  calibration adds {statistics.median(added) * 1e3:.1f} ms per cut (median; range "
              f"{min(added) * 1e3:.1f} to {max(added) * 1e3:.1f}): {100 * statistics.median(share):.1f} % of cut_auto "
              f"(range {100 * min(share):.1f} to {100 * max(share):.1f} %)")


if __name__ == "__main__":
    main()
