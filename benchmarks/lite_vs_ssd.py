"""`Segmenter.segment` time per image: efficientnet-lite0 (real weights, 448 px, its defaults)
against SSD-1B (full-size random weights from ovseg.testing, 1024 px, DiffCut's defaults), one
run, the same photo, CPU float32. Random SSD-1B features give unrealistic segment counts, so the
segment count K of each run is printed beside its time (PAMR's cost grows with K).

    flock /tmp/ovseg-heavy.lock python benchmarks/lite_vs_ssd.py --repeats 2
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402


def _time(segmenter, image, repeats: int) -> list[tuple[float, int]]:
    segmenter.segment(image)  # warm-up: PAMR kernel, allocator
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = segmenter.segment(image)
        out.append((time.perf_counter() - t0, len(result.segments)))
    return out


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--image", default=str(ROOT / "examples" / "chelsea.png"))
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--skip-ssd", action="store_true")
    args = ap.parse_args(argv)
    from ovseg.pipeline import Segmenter
    from ovseg.testing._features import make_random_backbone

    image = np.array(Image.open(args.image).convert("RGB"))
    rows = []
    lite = Segmenter(backbone="efficientnet-lite0", device="cpu", cache=False)
    for seconds, k in _time(lite, image, args.repeats):
        rows.append(dict(backbone="efficientnet-lite0", weights="real", resolution=448, seconds=round(seconds, 2), k=k))
        print(rows[-1], flush=True)
    if not args.skip_ssd:
        from ovseg.pipeline._models import Models

        random_ssd = make_random_backbone("ssd-1b", "full", device="cpu").eval()
        ssd = Segmenter(backbone="ssd-1b", device="cpu", cache=False, models=Models(backbone=random_ssd))
        for seconds, k in _time(ssd, image, args.repeats):
            rows.append(dict(backbone="ssd-1b", weights="random (full size)", resolution=1024,
                             seconds=round(seconds, 2), k=k))
            print(rows[-1], flush=True)
    print(json.dumps(rows))
    return rows


if __name__ == "__main__":
    main()
