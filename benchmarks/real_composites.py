"""A known-answer benchmark on real photos: composites with exact ground truth, real vs random weights.

The photos: the sample photos that ship inside scikit-image's wheel (BSD licence; no download),
the colour ones and the grey ones as RGB (``PHOTOS``), or with ``--photos examples`` only
ovseg's examples/ (astronaut, chelsea, coffee: the same photos as scikit-image's, so they add
nothing to the scikit-image set). The generator (``make_composite``), per composite i, with
``numpy.random.default_rng([seed, i])``:

1. a background photo and 1-4 other photos (``--max-regions``), all distinct;
2. from each photo a random square crop (side 60-100 % of its short side) resized to S x S;
3. for each pasted photo a smooth random blob: white noise smoothed by a Gaussian (sigma 6-12 %
   of S), plus a Gaussian bump (sigma 20 % of S) at a random centre so that the region gathers
   around one place, thresholded at the quantile that leaves 10-30 % of the pixels;
4. the blobs pasted in turn (a later one covers an earlier one); ground truth: 0 for the
   background photo, j for the j-th pasted photo. A region left with < 3 % of the pixels is
   redrawn (at most 20 times).

Scored: `segment`'s masks as the eval harness makes them (the maps equal
``ovseg.evaluation._adapter.sweep_predictor``'s, tested): one backbone pass per composite
(``stages.extract``), shared by every cut of the run; per cut setting the method's tree through
the cut-method registry (``stages.build_tree`` + ``stages.cut``, built for that setting alone, as
``Segmenter`` does), concept assignment + PAMR at 128 px, 10 iterations, dilations 1-8, median
filter (``stages.refine``, ``PAMRConfig.benchmark()``), then the harness's Hungarian matching
(``unsupervised_counts``) against the ground truth at 128 px (nearest). mIoU: per-region-slot
TP/FP/FN summed over the composites (the harness's dataset rule); "img mIoU": the mean over
composites of each composite's own mIoU. K: segments in the refined 128 px map (and of the cut
on the feature grid, "cut K"). Time: seconds per image of the cut (affinity + tree or solve +
cut) and of the refinement, after one untimed warm-up call per setting. Weights: the packaged
ImageNet weights ("real") and the same architecture with torch's default random
initialisation, seed 0 ("random", ``ovseg.testing``).

Cut methods (``--methods``): any registered method that needs features only: diffcut (the
recursive two-way cut) and kway (the K-way cut, docs/kway.md); random-walk needs self-attention
maps, which a CNN does not have, and is refused. kway's K rules (``--k-rules``): "auto" (its
default: solve at k_max 16, merge while a pair's two-way NCut is >= tau, at every tau of
``--kway-taus``, through the registry as the pipeline runs it), "eigengap", an int (fixed K) and
"oracle" (each composite's true number of regions: an upper reference, not a rule a user has);
those other than "auto" go through ``ovseg.masks.kway_segments`` (same affinity and solver).

    flock /tmp/ovseg-heavy.lock python benchmarks/real_composites.py --jsonl docs/benchmarks-real.jsonl
    python benchmarks/real_composites.py --images 4 --alphas 4 --taus 0.5    # seconds
    python benchmarks/real_composites.py --methods diffcut,kway --k-rules auto,eigengap,oracle \
        --alphas 4,5,6 --taus 0.3,0.5,auto --kway-taus 0.3,0.5
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

# scikit-image's real photographs (skimage/data/*), no synthetic images, no microscopy
PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
          "hubble_deep_field.jpg", "camera.png", "coins.png", "moon.png", "brick.png", "grass.png",
          "gravel.png")
EXAMPLES = ("astronaut.jpg", "chelsea.png", "coffee.jpg")
SCORE = 128  # the eval harness's scoring size


def load_photos(which: str = "skimage") -> dict[str, np.ndarray]:
    """name -> (H, W, 3) uint8. which: "skimage" (its wheel's photos) or "examples" (ovseg's)."""
    if which == "examples":
        folder, names = ROOT / "examples", EXAMPLES
    else:
        try:
            import skimage
        except ImportError:
            raise SystemExit("scikit-image is needed for its sample photos: pip install scikit-image "
                             "(or --photos examples)") from None
        folder, names = Path(skimage.__file__).parent / "data", PHOTOS
    return {n: np.array(Image.open(folder / n).convert("RGB")) for n in names}


def _crop(photo: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    h, w = photo.shape[:2]
    side = int(min(h, w) * rng.uniform(0.6, 1.0))
    top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    crop = Image.fromarray(photo[top:top + side, left:left + side])
    return np.array(crop.resize((size, size), Image.BILINEAR))


def _blob(size: int, rng: np.random.Generator) -> np.ndarray:
    """(size, size) bool: thresholded smoothed noise gathered around a random centre."""
    from scipy.ndimage import gaussian_filter

    noise = gaussian_filter(rng.standard_normal((size, size)), sigma=size * rng.uniform(0.06, 0.12))
    noise /= noise.std() + 1e-12
    cy, cx = rng.uniform(0.2, 0.8, size=2) * size
    yy, xx = np.mgrid[:size, :size]
    bump = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (0.2 * size) ** 2))
    field = noise + 3.0 * bump
    return field > np.quantile(field, 1 - rng.uniform(0.10, 0.30))


def make_composite(photos: dict[str, np.ndarray], index: int, *, seed: int = 0, size: int = 448,
                   max_regions: int = 4) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One composite: (image (size, size, 3) uint8, ground truth (size, size) int64 0..k, photo
    names [background, pasted...]). Deterministic in (seed, index)."""
    rng = np.random.default_rng([seed, index])
    names = sorted(photos)
    k = int(rng.integers(1, min(max_regions, len(names) - 1) + 1))
    chosen = [names[i] for i in rng.permutation(len(names))[: k + 1]]
    image = _crop(photos[chosen[0]], size, rng)
    for _attempt in range(20):
        gt = np.zeros((size, size), np.int64)
        for j in range(1, k + 1):
            gt[_blob(size, rng)] = j
        if min(np.mean(gt == j) for j in range(k + 1)) >= 0.03:
            break
    for j, name in enumerate(chosen[1:], start=1):
        paste = _crop(photos[name], size, rng)
        image[gt == j] = paste[gt == j]
    return image, gt, chosen


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255


def _score_gt(gt: np.ndarray) -> np.ndarray:
    from ovseg.io import resize_nearest

    return resize_nearest(gt, (SCORE, SCORE), mode="torch")


def random_weights_folder(backbone: str) -> str:
    """A folder holding the architecture's random-init state_dict (seed 0), made once per run."""
    from ovseg.testing import make_tiny_backbone_weights

    return make_tiny_backbone_weights(backbone, Path(tempfile.mkdtemp(prefix="ovseg-random-")) / backbone)


def cut_settings(methods=("diffcut",), *, alphas, taus, k_rules=("auto",), kway_taus=None) -> list[dict]:
    """The cuts one run scores: per method (a name of ``ovseg.masks.list_methods()``) and alpha,
    every tau of ``taus``; for "kway" one setting per K rule: "auto" at every tau of ``kway_taus``
    (default ``taus``), "eigengap", an int (fixed K), or "oracle" (each composite's true K)."""
    from ovseg.masks import get_method

    out = []
    for method in methods:
        get_method(method)  # an unknown name lists the registered ones
        for alpha in alphas:
            if method != "kway":
                out += [dict(method=method, k_rule=None, alpha=alpha, tau=t) for t in taus]
                continue
            for rule in k_rules:
                if rule == "auto":
                    out += [dict(method=method, k_rule="auto", alpha=alpha, tau=t) for t in (kway_taus or taus)]
                else:
                    out.append(dict(method=method, k_rule=rule, alpha=alpha, tau=None))
    return out


def extract_all(composites, *, backbone: str, weights: str | None, device: str = "cpu",
                conditioning: str | None = None) -> list:
    """One backbone pass per composite (``stages.extract``): [features (1, C, h, w) float32]; every
    cut of a run reads these same features. conditioning: the Lite backbones' (None: the
    registry's; "raw": the one stage, as the sections before the calibrated rule measured)."""
    import ovseg
    from ovseg.pipeline import stages

    extra = {} if conditioning is None else {"conditioning": conditioning}
    model = ovseg.create_backbone(backbone, weights=weights, device=device, **extra)
    model = model.eval() if hasattr(model, "eval") else model
    with torch.no_grad():
        return [stages.extract(model, _to_tensor(image)[None].to(device))[0] for image, _, _ in composites]


@torch.no_grad()
def low_res_cut(feats: torch.Tensor, setting: dict, true_k: int) -> torch.Tensor:
    """feats (1, C, h, w) -> segments (h, w) int64 at one setting of ``cut_settings``.

    A tau setting goes through the cut-method registry as ``Segmenter`` does (``stages.build_tree``
    with the method's options, then ``stages.cut``: the tree built for that tau alone, so the time
    is the pipeline's). The K-way cut's other K rules are not a tau: they go through
    ``ovseg.masks.kway_segments`` with ``KWayConfig(k=...)`` (same affinity, same solver)."""
    from ovseg.masks import KWayConfig, get_method, kway_segments
    from ovseg.pipeline import stages

    method, rule = setting["method"], setting["k_rule"]
    if rule in (None, "auto"):
        given = {"alpha": setting["alpha"]}
        options = {k: given[k] for k in get_method(method).options if k in given}
        tree = stages.build_tree(feats, None, method=method, **options)[0]
        return stages.cut(tree, setting["tau"])[0]
    k = true_k if rule == "oracle" else rule
    return kway_segments(feats[0], KWayConfig(alpha=setting["alpha"], k=k))[0]


def evaluate(composites, *, backbone: str, weights: str | None, alphas, taus, device: str = "cpu",
             methods=("diffcut",), k_rules=("auto",), kway_taus=None, conditioning: str | None = None) -> list[dict]:
    """composites: [(image, gt, names)] -> one row per setting of ``cut_settings``: mIoU (dataset
    rule), img mIoU (+ its std and the per-composite values), K of the refined map and of the cut
    (mean / median / max), seconds per image of the cut (affinity + tree or solve + cut) and of
    the refinement (concept assignment + PAMR at 128 px). The features are extracted once."""
    import torch.nn.functional as F

    from ovseg.evaluation._matching import unsupervised_counts
    from ovseg.evaluation._metrics import mean_iou
    from ovseg.masks import PAMRConfig
    from ovseg.pipeline import stages

    classes = 1 + max(int(gt.max()) for _, gt, _ in composites)
    gts = [_score_gt(gt) for _, gt, _ in composites]
    feats_all = extract_all(composites, backbone=backbone, weights=weights, device=device, conditioning=conditioning)
    smalls = [F.interpolate(_to_tensor(image)[None], size=(SCORE, SCORE), mode="bilinear",
                            align_corners=False)[0].to(device) for image, _, _ in composites]
    pamr = PAMRConfig.benchmark()  # as sweep_predictor: 10 iterations, dilations 1-8, median filter
    settings = cut_settings(methods, alphas=alphas, taus=taus, k_rules=k_rules, kway_taus=kway_taus)
    for setting in settings:  # warm-up, untimed: first calls of each code path pay one-off costs
        stages.refine(feats_all[0][0], low_res_cut(feats_all[0], setting, int(gts[0].max()) + 1), smalls[0], pamr)
    rows = []
    for setting in settings:
        counts, ks, k_cuts, t_cut, t_refine = [], [], [], [], []
        for feats, small, gt in zip(feats_all, smalls, gts):
            t0 = time.perf_counter()
            low = low_res_cut(feats, setting, int(gt.max()) + 1)
            t1 = time.perf_counter()
            seg = stages.refine(feats[0], low, small, pamr, compact=False)
            t_cut.append(t1 - t0), t_refine.append(time.perf_counter() - t1)
            counts.append(unsupervised_counts(gt, seg, classes))
            ks.append(len(np.unique(seg))), k_cuts.append(int(low.max()) + 1)
        per_image = [mean_iou(c) for c in counts]
        tau = setting["tau"]
        rows.append(dict(method=setting["method"], k_rule=setting["k_rule"], alpha=setting["alpha"],
                         tau=None if tau is None else (tau if isinstance(tau, str) else f"{tau:g}"),
                         miou=mean_iou(sum(counts)), img_miou=float(np.mean(per_image)),
                         img_miou_std=float(np.std(per_image)), per_image=[round(float(v), 4) for v in per_image],
                         k_mean=float(np.mean(ks)), k_median=float(np.median(ks)), k_max=int(max(ks)),
                         k_cut_mean=float(np.mean(k_cuts)), k_cut_median=float(np.median(k_cuts)),
                         cut_s=float(np.mean(t_cut)), cut_s_median=float(np.median(t_cut)),
                         refine_s=float(np.mean(t_refine))))
    return rows


def photo_counts(photos: dict[str, np.ndarray], *, backbone: str, weights: str | None, alpha: float,
                 taus, size: int = 448, device: str = "cpu") -> dict[str, dict[str, int]]:
    """K (segments of the refined 128 px map) per whole photo (square-resized) and tau."""
    from ovseg.evaluation._adapter import sweep_predictor

    predict = sweep_predictor(taus=taus, backbone=backbone, weights=weights, device=device, alpha=alpha)
    out = {}
    for name, photo in photos.items():
        square = np.array(Image.fromarray(photo).resize((size, size), Image.BILINEAR))
        out[name] = {k.split("=")[1]: int(len(np.unique(v.numpy()))) for k, v in predict(_to_tensor(square)).items()}
    return out


def _check_methods(methods: list[str], backbone: str) -> list[str]:
    """The cut methods, checked against the registry and the backbone: a method that needs
    self-attention maps (random-walk) does not apply to a backbone without them (a CNN)."""
    from ovseg.features import backbone_info
    from ovseg.masks import get_method

    for m in methods:
        try:
            get_method(m)
        except ValueError as e:
            raise SystemExit(f"--methods: {e}") from None
        if get_method(m).needs == "attention" and backbone_info(backbone).attention_layers is None:
            raise SystemExit(f"--methods {m}: {m!r} needs self-attention maps and {backbone} has none "
                             "(a CNN); use diffcut or kway")
    return methods


def _parse_taus(text: str) -> list:
    return [t if t == "auto" else float(t) for t in text.split(",")]


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backbone", default="efficientnet-lite0")
    ap.add_argument("--photos", choices=("skimage", "examples"), default="skimage")
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=448, help="composite side = backbone input (448: 28 x 28 cells)")
    ap.add_argument("--max-regions", type=int, default=4)
    ap.add_argument("--alphas", default="1,2,3,4,6,10")
    ap.add_argument("--taus", default="0.1,0.2,0.3,0.4,0.5,0.7,auto")
    ap.add_argument("--weights", default="real,random", help="real, random or both")
    ap.add_argument("--methods", default="diffcut",
                    help="cut methods (ovseg.masks.list_methods()) that need features only: diffcut, kway")
    ap.add_argument("--k-rules", default="auto",
                    help="kway's K rules: auto (merge at each --kway-taus), eigengap, an int, oracle (true K)")
    ap.add_argument("--kway-taus", default=None, help="kway auto's merge thresholds (default: --taus)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--example-photos", action="store_true",
                    help="also K per examples/ photo at the backbone's default alpha (default tau, 0.5, auto)")
    ap.add_argument("--jsonl", default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    photos = load_photos(args.photos)
    composites = [make_composite(photos, i, seed=args.seed, size=args.size, max_regions=args.max_regions)
                  for i in range(args.images)]
    alphas = [float(a) for a in args.alphas.split(",")]
    taus = _parse_taus(args.taus)
    methods = _check_methods(args.methods.split(","), args.backbone)
    k_rules = [int(r) if r.isdigit() else r for r in args.k_rules.split(",")]
    kway_taus = _parse_taus(args.kway_taus) if args.kway_taus else None
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    meta = dict(backbone=args.backbone, photos=args.photos, images=args.images, seed=args.seed, size=args.size,
                commit=commit, machine=platform.processor() or platform.machine(), threads=torch.get_num_threads())
    rows = []
    for kind in args.weights.split(","):
        weights = None if kind == "real" else random_weights_folder(args.backbone)
        t0 = time.perf_counter()
        for row in evaluate(composites, backbone=args.backbone, weights=weights, alphas=alphas, taus=taus,
                            methods=methods, k_rules=k_rules, kway_taus=kway_taus):
            rows.append({**meta, "weights": kind, **row})
            r = rows[-1]
            rule = "" if r["k_rule"] is None else f" K {r['k_rule']}"
            print(f"{kind:6s} {r['method']}{rule} alpha {r['alpha']:g} tau {r['tau'] or '-':>4s}: "
                  f"mIoU {r['miou']:.3f} img {r['img_miou']:.3f} (std {r['img_miou_std']:.3f}) "
                  f"K mean {r['k_mean']:.1f} median {r['k_median']:g} max {r['k_max']} "
                  f"cut K {r['k_cut_mean']:.1f} cut {r['cut_s']:.3f} s/img refine {r['refine_s']:.3f} s/img",
                  flush=True)
        print(f"{kind}: {time.perf_counter() - t0:.0f} s", flush=True)
    if args.example_photos:  # item: what K the real features give on whole photos
        from ovseg.features import backbone_info

        info = backbone_info(args.backbone)
        taus_k = sorted({float(info.tau), 0.5}) + ["auto"]
        counts = photo_counts(load_photos("examples"), backbone=args.backbone, weights=None,
                              alpha=float(info.alpha), taus=taus_k, size=args.size)
        for name, ks in counts.items():
            rows.append({**meta, "weights": "real", "kind": "photo_k", "photo": name, "alpha": info.alpha, "k": ks})
            print(f"photo {name}: alpha {info.alpha:g}, K per tau {ks}", flush=True)
    if args.jsonl:
        with open(args.jsonl, "a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    return rows


if __name__ == "__main__":
    main()
