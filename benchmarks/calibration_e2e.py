"""End to end on the real-photo composites: `Segmenter` with each backbone's defaults (PAMR on,
the pipeline's 448 px square, 15 iterations) against hand-set cells, six Lite feature sets.

The composites are ``benchmarks/real_composites.py``'s (scikit-image's photos, seed 0, 448 px,
exact ground truth). A feature set is a backbone and its feature_stride (16: 28 x 28 cells, 8:
56 x 56), its features conditioned as the registry says. Each cell runs ``Segmenter.segment`` on
every composite (one backbone per set, shared by the cells: ``Models``), scored at 448 px by the
evaluation's Hungarian matching (``unsupervised_counts``): "img" is the mean of per-composite
mIoU, "mIoU" the dataset rule (counts summed), K the segments of the output map. Halves: even and
odd composite indices (constants were chosen on the even half; docs/benchmarks-real.md).

Cells: "default" (no setting given: the backbone's own, the calibrated rule for Lite), and
"alpha:tau[:min_area]" for a hand-set DiffCut affinity (a number alpha; min_area default: the
backbone's), or with "auto" as alpha; a "raw:" prefix runs the backbone unconditioned (its one
stage, as before the calibrated rule: "raw:5:0.5:0" is the old default).

    PYTHONPATH=$PWD:<scikit-image> python benchmarks/calibration_e2e.py --sets lite0-16,lite0-8 \\
        --cells default,5:0.5,10:0.4 --jsonl /tmp/e2e.jsonl
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402


def _bench():
    spec = importlib.util.spec_from_file_location("real_composites", ROOT / "benchmarks" / "real_composites.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RC = _bench()
SETS = {f"lite{v}-{s}": (f"efficientnet-lite{v}", s) for v in (0, 1, 2) for s in (16, 8)}


def parse_cell(cell: str) -> dict:
    if cell == "default":
        return {}
    parts = cell.removeprefix("raw:").split(":")
    out = {"alpha": parts[0] if parts[0] == "auto" else float(parts[0]), "tau": float(parts[1])}
    if len(parts) > 2:
        out["min_area"] = float(parts[2])
    return out


def run_set(set_name: str, cells: list[str], composites, *, method: str = "diffcut") -> list[dict]:
    import ovseg
    from ovseg.evaluation._matching import unsupervised_counts
    from ovseg.pipeline import Models, Segmenter

    backbone, stride = SETS[set_name]
    models = Models(backbone=ovseg.create_backbone(backbone, device="cpu", feature_stride=stride))
    raw = Models(backbone=ovseg.create_backbone(backbone, device="cpu", feature_stride=stride, conditioning="raw"))
    classes = 1 + max(int(gt.max()) for _, gt, _ in composites)
    rows = []
    for cell in cells:
        seg = Segmenter(backbone=backbone, device="cpu", cache=False, method=method, **parse_cell(cell),
                        models=raw if cell.startswith("raw:") else models)
        counts, ks, alphas, secs = [], [], [], []
        for image, gt, _ in composites:
            t0 = time.perf_counter()
            result = seg.segment(image)
            secs.append(time.perf_counter() - t0)
            counts.append(unsupervised_counts(gt, result.segment_map.astype(np.int64), classes).tolist())
            ks.append(int(len(np.unique(result.segment_map))))
            alphas.append(result.settings.get("alpha_chosen", result.settings["alpha"]))
        rows.append(dict(set=set_name, cell=cell, method=method, settings={k: v for k, v in seg.config.segment_settings().items()
                                                                             if k in ("alpha", "tau", "min_area")},
                         counts=counts, k=ks, true_k=[int(gt.max()) + 1 for _, gt, _ in composites],
                         alpha=alphas, seconds=secs, index=list(range(len(composites)))))
        s = score(rows[-1])
        print(f"{set_name} {method} {cell:14s}: img {s['img']:.3f} mIoU {s['miou']:.3f} K {s['k']:.1f} "
              f"({s['ratio']:.2f}x true, max {s['kmax_ratio']:.2f}x) | even {score(rows[-1], 'even')['img']:.3f} "
              f"odd {score(rows[-1], 'odd')['img']:.3f} | {np.mean(secs):.2f} s/image", flush=True)
    return rows


def score(row: dict, half: str = "all") -> dict:
    from ovseg.evaluation._metrics import mean_iou

    idx = [n for n, i in enumerate(row["index"]) if half == "all" or i % 2 == (half == "odd")]
    counts = [np.array(row["counts"][n]) for n in idx]
    k = [row["k"][n] for n in idx]
    tk = [row["true_k"][n] for n in idx]
    return dict(img=float(np.mean([mean_iou(c) for c in counts])), miou=float(mean_iou(sum(counts))),
                k=float(np.mean(k)), ratio=float(np.mean(k) / np.mean(tk)),
                kmax_ratio=float(max(a / b for a, b in zip(k, tk))))


def table(paths: list[str]) -> None:
    """The markdown table of rows written by earlier runs (``--table a.jsonl,b.jsonl``)."""
    rows = [json.loads(line) for p in paths for line in open(p)]
    print("| set | cell | method | alpha (chosen: median) | tau | min_area | img mIoU all | even | odd | mIoU (sum) "
          "| K mean (x true) | K max (x true) | s / image |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        a, e, o = score(r), score(r, "even"), score(r, "odd")
        st = r["settings"]
        alpha = st["alpha"] if st["alpha"] != "auto" else f"auto ({np.median(r['alpha']):.3g})"
        print(f"| {r['set']} | {r['cell']} | {r['method']} | {alpha} | {st['tau']:g} | {st.get('min_area', 0):g} "
              f"| {a['img']:.3f} | {e['img']:.3f} | {o['img']:.3f} | {a['miou']:.3f} | {a['k']:.1f} ({a['ratio']:.2f}x) "
              f"| {a['kmax_ratio']:.1f}x | {np.mean(r['seconds']):.2f} |")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--table", default=None, help="print the table of these jsonl files and stop")
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--cells", default="default")
    ap.add_argument("--method", default="diffcut")
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--jsonl", default=None)
    args = ap.parse_args(argv)
    if args.table:
        return table(args.table.split(","))
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    photos = RC.load_photos("skimage")
    composites = [RC.make_composite(photos, i, seed=0, size=448) for i in range(args.images)]
    for set_name in args.sets.split(","):
        rows = run_set(set_name, args.cells.split(","), composites, method=args.method)
        if args.jsonl:
            with open(args.jsonl, "a") as f:
                for r in rows:
                    f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
