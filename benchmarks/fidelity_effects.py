"""Measured effect of each published-vs-previous default, on random weights (docs/fidelity.md).

    python benchmarks/fidelity_effects.py --size tiny   # tiny random SSD-1B + tiny ConvNeXt CLIP

Random weights: the numbers say how much a choice changes the outputs, not which is better.
Each row compares the published default with the option it replaced, everything else equal.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np


def ari(a: np.ndarray, b: np.ndarray) -> float:
    """Adjusted Rand index of two labelings (Hubert & Arabie 1985)."""
    _, a = np.unique(a.ravel(), return_inverse=True)
    _, b = np.unique(b.ravel(), return_inverse=True)
    table = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(table, (a, b), 1)

    def c2(x):
        return (x * (x - 1) / 2).sum()

    n = a.size
    index, rows, cols = c2(table), c2(table.sum(1)), c2(table.sum(0))
    expected = rows * cols / (n * (n - 1) / 2)
    top = (rows + cols) / 2 - expected
    return float((index - expected) / top) if top else 1.0


def main() -> None:
    import torch
    import torch.nn.functional as F
    from PIL import Image

    from ovseg.features import create_backbone
    from ovseg.labels import create_labeler
    from ovseg.masks import PAMRConfig, refine_segments, segment_features
    from ovseg.pipeline.stages import resize_bilinear as _resize, to_tensor as _to_tensor, work_size as _work_size
    from ovseg.testing import make_tiny_backbone_weights, make_tiny_clip_weights

    p = argparse.ArgumentParser()
    p.add_argument("--size", choices=["tiny"], default="tiny")
    p.add_argument("--resolution", type=int, default=256)
    p.add_argument("--tau", type=float, default=0.9)
    p.add_argument("--images", nargs="+", default=["chelsea.png", "astronaut.jpg", "coffee.jpg"])
    args = p.parse_args()
    res = args.resolution
    root = Path(tempfile.mkdtemp())
    weights = make_tiny_backbone_weights("ssd-1b", root / "ssd")
    clip_weights = make_tiny_clip_weights(root / "clip")
    images = [np.array(Image.open(f"examples/{n}").convert("RGB")) for n in args.images]
    class _Rows(list):  # print each row as it comes: a long run that is stopped keeps its rows
        def append(self, row):
            print(f"{row[0]} | image {row[1]} | {row[2]}", flush=True)
            super().append(row)

    rows = _Rows()

    def cut(f):
        return segment_features(f, alpha=10.0, tau=args.tau).cpu().numpy()

    with torch.inference_mode():
        bb = {s: create_backbone("ssd-1b", weights=weights, device="cpu", dtype=torch.float32, seed=s) for s in (42, 0)}
        for k, a in enumerate(images):
            sq = _resize(_to_tensor(a), (res, res))
            f42, f0 = bb[42](sq[None])[0], bb[0](sq[None])[0]
            cos = F.cosine_similarity(f42, f0, dim=0).mean().item()
            rows.append(("noise seed 42 vs 0", k, f"feature cosine {cos:.4f}; cut ARI {ari(cut(f42), cut(f0)):.3f}"))
            pil = _to_tensor(np.array(Image.fromarray(a).resize((res, res), Image.Resampling.BICUBIC)))
            fp = bb[42](pil[None])[0]
            cos = F.cosine_similarity(f42, fp, dim=0).mean().item()
            rows.append(("float bilinear vs PIL bicubic", k, f"feature cosine {cos:.4f}; cut ARI {ari(cut(f42), cut(fp)):.3f}"))
            low = segment_features(f42, alpha=10.0, tau=args.tau)
            pamr = PAMRConfig.open_vocabulary()
            square = refine_segments(f42, low, sq, refine=pamr).cpu().numpy()
            H, W = a.shape[:2]
            size = _work_size((H, W), res)
            own = refine_segments(f42, low, _resize(_to_tensor(a), size), refine=pamr).cpu().numpy()
            from ovseg.io import resize_nearest

            sq_full, own_full = resize_nearest(square, (H, W)), resize_nearest(own, (H, W))
            rows.append(("PAMR on the square vs at the image's aspect", k,
                         f"{(sq_full == own_full).mean() * 100:.1f} % pixels agree, ARI {ari(sq_full, own_full):.3f}"))
            mode = refine_segments(f42, low, sq, refine=PAMRConfig(15, pamr.dilations, "mode")).cpu().numpy()
            rows.append(("median vs mode filter", k, f"{(square == mode).mean() * 100:.2f} % pixels agree"))
            # CLIP: the square raw input with binary masks vs the former 320 px normalised area path
            segs = torch.from_numpy(np.unique(square, return_inverse=True)[1].reshape(square.shape))
            lab = {name: create_labeler(weights=clip_weights, disk_cache=False, **opt) for name, opt in {
                "published": {}, "former": dict(resolution=320, normalize=True, pooling="area"),
                "normalize": dict(normalize=True), "area": dict(pooling="area"), "r320": dict(resolution=320)}.items()}
            emb = {n: l.pool_segments(sq, segs)[1] for n, l in lab.items()}
            for other in ("former", "normalize", "area", "r320"):
                c = (emb["published"] * emb[other]).sum(1)
                rows.append((f"CLIP published vs {other}", k, f"pooled cosine min {c.min():.3f} mean {c.mean():.3f} "
                             f"({len(c)} segments)"))


if __name__ == "__main__":
    main()
