"""Automatic vs fixed NCut threshold for random-walk NCut, on planted transition matrices.

Two families of planted data on an h x w grid cut into K Voronoi regions:

* ``block``: a walk stays in its region with probability 1 - leak, else jumps uniformly to another
  region; every entry gets log-normal noise (sigma ``noise``) and rows are renormalised.
* ``attention``: self-attention of synthetic features. Each region has a random unit prototype in
  C = 32 dimensions, each position its prototype plus Gaussian noise of norm about ``noise``; P = softmax(beta * cos(x_i, x_j) - |p_i - p_j|^2 / (2 * ell^2)) with beta = 5 and a
  spatial locality term (ell = 3 cells), as real attention maps mix semantics and locality.

The last attention setting zeroes P's diagonal first (``drop_self=True``).

A third family, ``features``, asks whether the rule transfers to DiffCut's feature affinity
(METHOD.md section 2): planted features (each region a random unit prototype in C = 32
dimensions, each position its prototype plus Gaussian noise of norm about ``noise``; ``smooth``
> 0 blurs the noise spatially with a Gaussian of that many cells, as real features are
correlated in space) and W = (min-max normalised cosine) ** 10, the tree built by the same
``ncut_hierarchy``. DiffCut's NCut is the random-walk NCut of the chain D^-1 W (Meila & Shi
2001), so the null-model cost ~1 of ``AUTO_TAU_MAX`` applies to it as well.

For each instance one tree is built at tau = 1.0 (``AUTO_TAU_MAX``); every fixed tau <= 1 and the
automatic tau are cuts of that same tree. "auto" is ``auto_tau`` with its default
one_segment_weight = 1 (the plain widest-interval rule), "auto(w=.5)" with the one-segment
interval counted at half its width. Reported per family and setting: mean adjusted Rand
index (ARI) against the planted regions, and the fraction of instances with exactly K segments.

    PYTHONPATH=. /work/main/.venv/bin/python benchmarks/auto_tau.py     # from the repository root
    (options: --grid 16 --seeds 3 --taus 0.1,0.2,0.3,0.5,0.7,0.9 --families block,attention,features)
"""
from __future__ import annotations

import argparse
import time

import torch

from ovseg.masks.affinity import affinity
from ovseg.masks.ncut import ncut_hierarchy
from ovseg.masks.tree import AUTO_TAU_MAX, auto_tau
from ovseg.masks.random_walk import random_walk_affinity


def regions(h: int, w: int, K: int, g: torch.Generator) -> torch.Tensor:
    """(N,) labels 0..K'-1 of K random Voronoi cells on the grid (K' = K unless a cell is empty)."""
    seeds = torch.rand(K, 2, generator=g) * torch.tensor([h, w])
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    pos = torch.stack([yy, xx], -1).reshape(-1, 2).float() + 0.5
    return torch.unique(torch.cdist(pos, seeds).argmin(1), return_inverse=True)[1]


def block_chain(lab: torch.Tensor, leak: float, noise: float, g: torch.Generator) -> torch.Tensor:
    same = (lab[:, None] == lab[None]).float()
    P = (1 - leak) * same / same.sum(1, keepdim=True)
    if int(lab.max()) > 0:
        P = P + leak * (1 - same) / (1 - same).sum(1, keepdim=True).clamp_min(1)
    P = P * torch.exp(noise * torch.randn(P.shape, generator=g))
    return P / P.sum(1, keepdim=True)


def attention_chain(lab: torch.Tensor, h: int, w: int, noise: float, g: torch.Generator,
                    beta: float = 5.0, ell: float = 3.0, C: int = 32) -> torch.Tensor:
    protos = torch.nn.functional.normalize(torch.randn(int(lab.max()) + 1, C, generator=g), dim=1)
    eps = noise * torch.randn(lab.numel(), C, generator=g) / C**0.5  # noise of norm ~ sigma
    x = torch.nn.functional.normalize(protos[lab] + eps, dim=1)
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    pos = torch.stack([yy, xx], -1).reshape(-1, 2).float()
    logits = beta * x @ x.T - torch.cdist(pos, pos) ** 2 / (2 * ell**2)
    return torch.softmax(logits, dim=1)


def planted_features(lab: torch.Tensor, h: int, w: int, noise: float, g: torch.Generator,
                     smooth: float = 0.0, C: int = 32) -> torch.Tensor:
    """(C, h, w) features: a unit prototype per region plus noise of norm ~ noise (blurred by a
    Gaussian of ``smooth`` cells, then rescaled to the same norm, when smooth > 0)."""
    protos = torch.nn.functional.normalize(torch.randn(int(lab.max()) + 1, C, generator=g), dim=1)
    eps = torch.randn(C, h, w, generator=g)
    if smooth > 0:
        r = int(3 * smooth)
        k = torch.exp(-torch.arange(-r, r + 1).float() ** 2 / (2 * smooth**2))
        k = (k / k.sum())
        eps = torch.nn.functional.conv2d(eps[:, None], k.view(1, 1, 1, -1), padding=(0, r))
        eps = torch.nn.functional.conv2d(eps, k.view(1, 1, -1, 1), padding=(r, 0))[:, 0]
        eps = eps / eps.pow(2).mean().sqrt()
    return protos[lab].T.reshape(C, h, w) + noise * eps / C**0.5


def ari(a: torch.Tensor, b: torch.Tensor) -> float:
    """Adjusted Rand index (Hubert & Arabie 1985) of two labelings of the same positions."""
    a = torch.unique(a.reshape(-1), return_inverse=True)[1]
    b = torch.unique(b.reshape(-1), return_inverse=True)[1]
    n = a.numel()
    table = torch.bincount(a * (int(b.max()) + 1) + b, minlength=(int(a.max()) + 1) * (int(b.max()) + 1)).double()
    comb = lambda x: (x * (x - 1) / 2).sum()  # noqa: E731
    index, sa = comb(table), comb(table.reshape(int(a.max()) + 1, -1).sum(1))
    sb = comb(table.reshape(int(a.max()) + 1, -1).sum(0))
    expected = sa * sb / (n * (n - 1) / 2)
    top = (sa + sb) / 2
    if float(top - expected) == 0.0:
        return 1.0 if float(index - expected) == 0.0 else 0.0
    return float((index - expected) / (top - expected))


def run(grid: int, seeds: int, taus: list[float], names: list[str]) -> None:
    families = {
        "block": [dict(leak=l, noise=0.5) for l in (0.05, 0.2, 0.4)],
        "attention": [dict(noise=s) for s in (0.3, 0.6, 0.9)] + [dict(noise=0.9, drop_self=True)],
        "features": [dict(noise=s) for s in (0.5, 1.0, 1.5)] + [dict(noise=1.0, smooth=1.5),
                                                               dict(noise=1.5, smooth=1.5)],
    }
    families = {k: v for k, v in families.items() if k in names}
    Ks = (1, 2, 4, 6, 8, 12)
    methods = ["auto", "auto(w=.5)"] + [f"tau={t:g}" for t in taus]
    print(f"grid {grid}x{grid}, K in {Ks}, {seeds} seeds each; tree built at tau={AUTO_TAU_MAX}")
    for fam, settings in families.items():
        for setting in settings:
            scores = {m: [] for m in methods}
            exact = {m: [] for m in methods}
            t0 = time.perf_counter()
            for K in Ks:
                for seed in range(seeds):
                    g = torch.Generator().manual_seed(1000 * K + seed)
                    lab = regions(grid, grid, K, g)
                    opts = {k: v for k, v in setting.items() if k != "drop_self"}
                    if fam == "features":  # DiffCut's affinity, alpha = 10 (METHOD.md section 2)
                        W = affinity(planted_features(lab, grid, grid, g=g, **opts), alpha=10.0)
                    else:
                        P = (block_chain(lab, g=g, **opts) if fam == "block"
                             else attention_chain(lab, grid, grid, g=g, **opts))
                        W = random_walk_affinity(P, drop_self=setting.get("drop_self", False))
                    tree = ncut_hierarchy(W, tau=AUTO_TAU_MAX)
                    cuts = {"auto": tree.cut(auto_tau(tree)),  # default one_segment_weight 1
                            "auto(w=.5)": tree.cut(auto_tau(tree, one_segment_weight=0.5))}
                    cuts.update({f"tau={t:g}": tree.cut(t) for t in taus})
                    k_true = int(lab.max()) + 1
                    for m, seg in cuts.items():
                        scores[m].append(ari(seg, lab))
                        exact[m].append(float(int(seg.max()) + 1 == k_true))
            dt = time.perf_counter() - t0
            label = ", ".join(f"{k}={v}" for k, v in setting.items())
            print(f"\n{fam} ({label}); {dt:.0f} s")
            print("  method      mean ARI  exact K")
            for m in methods:
                n = len(scores[m])
                print(f"  {m:<10} {sum(scores[m]) / n:7.3f}   {sum(exact[m]) / n:6.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", type=int, default=16)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--taus", default="0.1,0.2,0.3,0.5,0.7,0.9")
    ap.add_argument("--families", default="block,attention,features")
    args = ap.parse_args()
    run(args.grid, args.seeds, [float(t) for t in args.taus.split(",")], args.families.split(","))


if __name__ == "__main__":
    main()
