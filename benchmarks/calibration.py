"""Calibrated affinity on real Lite features: which alpha rule, which stopping rule, which features.

The composites of ``benchmarks/real_composites.py`` (scikit-image's photos, seed 0, exact ground
truth), the real EfficientNet-Lite0/1/2 weights, six feature sets (each model at feature_stride
16 and 8). Every composite's stage outputs are computed once per model (one backbone pass; cached
in ``--cache``), so a sweep costs cuts only. Measured per setting, at token level (the cut's
segments against the ground truth's majority label per cell; fast) or end to end (``--e2e``:
concept assignment + PAMR on the 448 px image with the Segmenter's default PAMR settings, scored
at 448 px):

* conditioning (``COND``): "raw" (the stage the backbone returns today), "center" (each token
  L2-normalised, the image's mean token subtracted), "multi" (the finer stage average-pooled to
  the grid, each part L2-normalised, concatenated), "multi-center" (both), and for stride 8
  "coarse-center" (stage 5 upsampled bilinearly to the 56 x 56 grid instead of a finer stage);
* the affinity (``graph``): a fixed alpha (DiffCut's W = C**alpha, the hand-tuned cells),
  "degree:d" (alpha per image with mean off-diagonal W = d, ``ovseg.masks.calibrate``),
  "perp:k" (alpha_i per node so that row i of C**alpha_i has perplexity k, symmetrised by the
  mean; t-SNE / entropic affinities), "autosc" (DiffCut's relative-eigengap scan over alpha in
  {1, 5, 10, 15}, keeping the best alpha's graph, not the last one's);
* the stopping rule (``cut``): diffcut at tau, diffcut "auto" (the widest stable tau), kway
  "auto" at a merge tau, kway "eigengap", kway at a fixed K, kway at autosc's K;
* ``min_area``: segments under that fraction of the grid merged into the most similar adjacent
  one (``ovseg.masks.min_area``) before scoring / PAMR.

Rows are written as JSON lines with each composite's counts, so the halves (even / odd
composite indices: constants chosen on the even half, reported on the odd one) are computed
afterwards (``summarise``).

    PYTHONPATH=$PWD:/tmp/ovseg-skimage python benchmarks/calibration.py --sets lite0-16 --out /tmp/cal.jsonl
    python benchmarks/calibration.py --summarise /tmp/cal.jsonl --top 30
"""
from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def _bench():
    spec = importlib.util.spec_from_file_location("real_composites", ROOT / "benchmarks" / "real_composites.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RC = _bench()
SETS = {f"lite{v}-{s}": (f"efficientnet-lite{v}", s) for v in (0, 1, 2) for s in (16, 8)}
STAGE_OF = {16: 5, 8: 3}
FINER = {16: 3, 8: 2}


# ---------------------------------------------------------------- features, once per composite
def stage_outputs(backbone: str, images: list[np.ndarray], stages=(2, 3, 5)) -> list[dict[int, torch.Tensor]]:
    """One pass per image -> {stage: (C, h, w) float32} for the stages asked (raw, not normalised)."""
    import ovseg
    from ovseg.features._lite import normalize

    bb = ovseg.create_backbone(backbone, device="cpu")
    model = bb.model
    last = model.stage_ends[max(stages) - 1]
    out = []
    with torch.no_grad():
        for image in images:
            x = normalize(RC._to_tensor(image)[None])
            x = F.relu6(model._bn0(model._conv_stem(x)))
            got = {}
            for i, block in enumerate(model._blocks[: last + 1]):
                x = block(x)
                for s in stages:
                    if i == model.stage_ends[s - 1]:
                        got[s] = x[0].float().clone()
            out.append(got)
    return out


def cached_stages(backbone: str, composites, cache: Path) -> list[dict[int, torch.Tensor]]:
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{backbone}-{len(composites)}.pt"
    if path.exists():
        return torch.load(path)
    t0 = time.perf_counter()
    feats = stage_outputs(backbone, [c[0] for c in composites])
    torch.save(feats, path)
    print(f"{backbone}: stage outputs of {len(composites)} composites in {time.perf_counter() - t0:.1f} s", flush=True)
    return feats


def _l2(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=0, keepdim=True).clamp_min(1e-12)


def condition(stages: dict[int, torch.Tensor], stride: int, mode: str) -> torch.Tensor:
    """(C, h, w) features of one composite under conditioning ``mode`` (see the module docstring)."""
    base = stages[STAGE_OF[stride]]
    if mode == "raw":
        return base
    h, w = base.shape[-2:]
    parts = [_l2(base)]
    if mode.startswith("multi"):
        parts.append(_l2(F.adaptive_avg_pool2d(stages[FINER[stride]][None], (h, w))[0]))
    if mode.startswith("coarse"):
        parts.append(_l2(F.interpolate(stages[5][None], size=(h, w), mode="bilinear", align_corners=False)[0]))
    x = torch.cat(parts)
    if mode.endswith("center"):
        x = x - x.flatten(1).mean(1)[:, None, None]
    return x


COND = {16: ("raw", "center", "multi", "multi-center"), 8: ("raw", "center", "multi-center", "coarse-center")}


# ---------------------------------------------------------------- graphs
def normalised_cosine(feats: torch.Tensor) -> torch.Tensor:
    from ovseg.masks.affinity import affinity_checked

    return affinity_checked(feats, 1.0)[0]


def perplexity_graph(C: torch.Tensor, k: float, iters: int = 40) -> tuple[torch.Tensor, float]:
    """Per-node alpha_i with perplexity 2**H(p_i) = k, p_ij = C_ij**a_i / sum_j (j != i); W =
    (P + P^T) / 2 with P_ij = C_ij**a_i (row max <= 1). Returns (W, median alpha_i)."""
    N = C.shape[0]
    L = C.double().clamp_min(1e-300).log()
    L.fill_diagonal_(-math.inf)
    lo = torch.full((N, 1), math.log(0.05), dtype=torch.float64)
    hi = torch.full((N, 1), math.log(2000.0), dtype=torch.float64)
    target = math.log(k)
    for _ in range(iters):
        mid = (lo + hi) / 2
        logits = L * mid.exp()
        p = torch.softmax(logits, 1)
        H = -(p * torch.where(p > 0, p.log(), torch.zeros_like(p))).sum(1, keepdim=True)  # nats
        too_flat = H > target  # perplexity above k: raise alpha_i
        lo = torch.where(too_flat, mid, lo)
        hi = torch.where(too_flat, hi, mid)
    a = ((lo + hi) / 2).exp()
    P = (L * a).exp()
    P.fill_diagonal_(1.0)
    W = ((P + P.T) / 2).float()
    return W, float(a.median())


def _laplacian_spectrum(W: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Smallest m eigenvalues (ascending) and eigenvectors of I - D^-1/2 W D^-1/2 (float64)."""
    d = W.double().sum(1).clamp_min(1e-30).rsqrt()
    A = d[:, None] * W.double() * d[None, :]
    lam, vec = torch.linalg.eigh(A)
    return (1 - lam.flip(0)[:m]), vec.flip(1)[:, :m]


def autosc(C: torch.Tensor, alphas=(1, 5, 10, 15), k_max: int = 16):
    """DiffCut's relative eigengap scan: per alpha the eigenvalues l_1 <= l_2 <= ... of the
    normalised Laplacian, r_i = (l_i - mean_{j<=i} l_j) / mean_{j<=i} l_j (i >= 2); keep the alpha
    (and K = i - 1... the count before the gap) of the largest r. Returns (W of the best alpha,
    alpha, K). Unlike its code, the best alpha's graph is kept, not the last one's."""
    best = None
    for a in alphas:
        W = C.pow(float(a))
        lam, _ = _laplacian_spectrum(W, k_max + 1)
        lam = lam.clamp_min(0)
        csum = torch.cumsum(lam, 0) / torch.arange(1, lam.numel() + 1, dtype=lam.dtype)
        r = torch.where(csum[:-1] > 0, (lam[1:] - csum[:-1]) / csum[:-1].clamp_min(1e-30), torch.zeros_like(lam[1:]))
        r[0] = 0.0 if csum[0] <= 0 else r[0]
        i = int(r.argmax())
        score = float(r[i])
        if best is None or score > best[0]:
            best = (score, a, i + 1)  # gap after i + 1 eigenvalues: K = i + 1
    _, a, K = best
    return C.pow(float(a)), float(a), int(K)


def graphs(feats: torch.Tensor, rules: list[str]):
    """-> [(rule, W (N, N), alpha (float), extra dict)] for the affinity rules asked."""
    from ovseg.masks.calibrate import _sample, degree_alpha

    C = normalised_cosine(feats)
    sample = _sample(C, 1 << 16)
    out = []
    for rule in rules:
        if rule.endswith("z"):  # the same rule, then the self-loops removed (W_ii = 0)
            (name, W, a, extra), = graphs(feats, [rule[:-1]])
            out.append((rule, W.clone().fill_diagonal_(0.0), a, extra))
            continue
        if rule.startswith("degree:"):
            a = degree_alpha(sample, float(rule.split(":")[1]))
            out.append((rule, C.pow(a), a, {}))
        elif rule.startswith("perp:"):
            W, a = perplexity_graph(C, float(rule.split(":")[1]))
            out.append((rule, W, a, {}))
        elif rule == "autosc":
            W, a, K = autosc(C)
            out.append((rule, W, a, {"autosc_k": K}))
        else:
            a = float(rule)
            out.append((rule, C.pow(a), a, {}))
    return out


# ---------------------------------------------------------------- cuts
def cuts(W: torch.Tensor, shape, *, taus, kway_taus, ks, extra: dict, auto: bool):
    """-> {cut name: (h, w) int64 segments} on one graph."""
    from ovseg.masks.kway_solver import solve
    from ovseg.masks.kway import KWayConfig, KWayTree
    from ovseg.masks.kway_rules import eigengap_k, merge_sequence, relabel
    from ovseg.masks.ncut import NCutConfig, ncut_tree
    from ovseg.masks.tree import auto_tau

    out = {}
    lo, hi = (float(v) for v in torch.aminmax(W))
    if taus:
        top = max(taus + ([1.0] if auto else []))
        tree = ncut_tree(W, lo, hi, NCutConfig(tau=top), shape)
        for t in taus:
            out[f"diffcut:{t:g}"] = tree.cut(t)
        if auto:
            t = auto_tau(tree)
            out["diffcut:auto"] = tree.cut(min(t, tree.tau))
    if kway_taus or ks:
        Wb = W[None]
        cfg = KWayConfig(alpha=1.0)
        gen = torch.Generator().manual_seed(0)
        from dataclasses import replace

        st = solve(Wb, cfg.k_max, config=replace(cfg.solver, max_iter=cfg.presolve_iter), generator=gen)
        kk = min(cfg.k_max, Wb.shape[1])
        kt = KWayTree(Wb, st.labels, merge_sequence(Wb, st.labels, kk, product=st.product), cfg, shape,
                      product=st.product)
        for t in kway_taus:
            out[f"kway:{t:g}"] = kt.cut(tau=t)
        for k in ks:
            if k == "eigengap":
                k = int(eigengap_k(Wb, cfg.k_max)[0])
                name = "kway:eigengap"
            elif k == "autosc":
                if "autosc_k" not in extra:
                    continue
                k, name = extra["autosc_k"], "kway:autosc"
            else:
                name = f"kway:K{k}"
            s = solve(Wb, int(k), config=cfg.solver, generator=torch.Generator().manual_seed(0))
            out[name] = relabel(s.labels)[0].view(shape)
    return out


# ---------------------------------------------------------------- scoring
def token_gt(gt: np.ndarray, shape) -> np.ndarray:
    """(h, w) majority ground-truth label per feature cell."""
    h, w = shape
    H, W = gt.shape
    blocks = gt.reshape(h, H // h, w, W // w).transpose(0, 2, 1, 3).reshape(h, w, -1)
    k = int(gt.max()) + 1
    counts = np.stack([(blocks == j).sum(-1) for j in range(k)], -1)
    return counts.argmax(-1)


def counts_of(gt: np.ndarray, seg: np.ndarray, classes: int) -> np.ndarray:
    from ovseg.evaluation._matching import unsupervised_counts

    return unsupervised_counts(gt, seg, classes)


def miou(counts) -> float:
    from ovseg.evaluation._metrics import mean_iou

    return mean_iou(counts)


# ---------------------------------------------------------------- the sweep
def run(args) -> None:
    from ovseg.masks.min_area import merge_small

    photos = RC.load_photos("skimage")
    composites = [RC.make_composite(photos, i, seed=0, size=448) for i in range(args.images)]
    index = [i for i in range(args.images) if args.subset == "all" or i % 2 == (args.subset == "odd")]
    classes = 1 + max(int(gt.max()) for _, gt, _ in composites)
    taus = [float(t) for t in args.taus.split(",")] if args.taus else []
    kway_taus = [float(t) for t in args.kway_taus.split(",")] if args.kway_taus else []
    ks = [k if not k.isdigit() else int(k) for k in args.ks.split(",")] if args.ks else []
    min_areas = [float(m) for m in args.min_areas.split(",")]
    pamr = None
    if args.e2e:
        from ovseg.masks import PAMRConfig

        pamr = PAMRConfig.open_vocabulary()
    out = open(args.out, "a")
    for set_name in args.sets.split(","):
        backbone, stride = SETS[set_name]
        stages = cached_stages(backbone, composites, Path(args.cache))
        conds = args.conds.split(",") if args.conds else COND[stride]
        rules = args.graphs.split(",")
        t_set = time.perf_counter()
        for cond in conds:
            rows: dict[tuple, dict] = {}
            for i in index:
                (image, gt, _), st = composites[i], stages[i]
                feats = condition(st, stride, cond)
                shape = tuple(feats.shape[-2:])
                gt_tok = token_gt(gt, shape)
                work = RC._to_tensor(image)
                for rule, W, alpha, extra in graphs(feats, rules):
                    auto = not rule.rstrip("z").replace(".", "").isdigit()
                    segs = cuts(W, shape, taus=taus, kway_taus=kway_taus, ks=ks, extra=extra,
                                auto=auto and args.auto_tau)
                    for (cut_name, seg), ma in itertools.product(segs.items(), min_areas):
                        seg = merge_small(seg, feats, ma) if ma > 0 else seg
                        if pamr is not None:
                            from ovseg.pipeline import stages as stg

                            full = stg.refine(feats, seg, work, pamr, compact=False)
                            c = counts_of(gt, full, classes)
                            k = len(np.unique(full))
                        else:
                            c = counts_of(gt_tok, seg.numpy(), classes)
                            k = int(seg.max()) + 1
                        key = (set_name, cond, rule, cut_name, ma)
                        row = rows.setdefault(key, dict(set=set_name, cond=cond, graph=rule, cut=cut_name,
                                                        min_area=ma, e2e=bool(args.e2e), counts=[], k=[],
                                                        true_k=[], alpha=[], index=[]))
                        row["counts"].append(c.tolist())
                        row["k"].append(k)
                        row["true_k"].append(int(gt.max()) + 1)
                        row["alpha"].append(alpha)
                        row["index"].append(i)
            for row in rows.values():
                out.write(json.dumps(row) + "\n")
            out.flush()
            best = max(rows.values(), key=lambda r: _score(r)["img"])
            print(f"{set_name} {cond}: {len(rows)} settings, best {best['graph']} {best['cut']} "
                  f"min_area {best['min_area']}: {_score(best)}  ({time.perf_counter() - t_set:.0f} s)", flush=True)


def _score(row, half: str | None = None) -> dict:
    index = row.get("index", list(range(len(row["counts"]))))
    idx = [n for n, i in enumerate(index) if half in (None, "all") or i % 2 == (half == "odd")]
    if not idx:
        return dict(miou=math.nan, img=math.nan, k=math.nan, ratio=math.nan, kmax_ratio=math.nan)
    counts = [np.array(row["counts"][i]) for i in idx]
    per = [miou(c) for c in counts]
    k = [row["k"][i] for i in idx]
    tk = [row["true_k"][i] for i in idx]
    return dict(miou=round(miou(sum(counts)), 4), img=round(float(np.mean(per)), 4), k=round(float(np.mean(k)), 2),
                ratio=round(float(np.mean(k)) / float(np.mean(tk)), 2), kmax_ratio=round(max(a / b for a, b in zip(k, tk)), 2))


def summarise(path: str, top: int, filt: str | None, half: str) -> None:
    rows = [json.loads(line) for line in open(path)]
    if filt:
        for f in filt.split(","):
            key, _, val = f.partition("=")
            rows = [r for r in rows if str(r[key]) == val]
    scored = [(r, _score(r, half), _score(r, "odd" if half == "even" else "even")) for r in rows]
    scored.sort(key=lambda x: -x[1]["img"])
    for r, s, o in scored[:top]:
        print(f"{r['set']:9s} {r['cond']:13s} {r['graph']:12s} {r['cut']:14s} ma {r['min_area']:<5g} "
              f"| {half}: img {s['img']:.3f} mIoU {s['miou']:.3f} K {s['k']:.1f} ({s['ratio']:.2f}x) "
              f"| other: img {o['img']:.3f} mIoU {o['miou']:.3f} K {o['k']:.1f} | alpha med {np.median(r['alpha']):.2f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", default="lite0-16")
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--conds", default=None)
    ap.add_argument("--subset", choices=("all", "even", "odd"), default="all", help="composites by index parity")
    ap.add_argument("--graphs", default="4,5,6,8,10,degree:0.01,degree:0.02,degree:0.04,perp:30,autosc")
    ap.add_argument("--taus", default="0.3,0.4,0.5,0.6,0.7")
    ap.add_argument("--kway-taus", default="0.3,0.4,0.5,0.6,0.7")
    ap.add_argument("--ks", default="eigengap,autosc,3,4,6")
    ap.add_argument("--min-areas", default="0,0.01,0.02,0.04")
    ap.add_argument("--auto-tau", action="store_true")
    ap.add_argument("--e2e", action="store_true")
    ap.add_argument("--cache", default="/tmp/ovseg-calib-cache")
    ap.add_argument("--out", default="/tmp/ovseg-calib.jsonl")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--summarise", default=None)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--filter", default=None)
    ap.add_argument("--half", default="even")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.summarise:
        return summarise(args.summarise, args.top, args.filter, args.half)
    run(args)


if __name__ == "__main__":
    main()
