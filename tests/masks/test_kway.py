"""Discrete K-way normalized cut (METHOD.md 9): planted maps, monotonicity, degenerate graphs."""
from __future__ import annotations

import functools

import pytest
import torch

from ovseg.masks import KWayConfig, affinity, kway_segments, segment_features
from ovseg.masks.kway import kway_affinity_cut, kway_tree
from ovseg.masks.kway_solver import SolverConfig, ncut_value
from ovseg.masks.kway_solver import solve
from ovseg.testing import PLANTED_SET, planted_case, planted_miou


def _check_ids(seg: torch.Tensor) -> None:
    flat = seg.reshape(-1)
    assert seg.dtype == torch.int64
    k = int(flat.max()) + 1
    assert torch.equal(torch.unique(flat), torch.arange(k))
    firsts = torch.stack([(flat == i).nonzero()[0, 0] for i in range(k)])
    assert torch.all(firsts[1:] > firsts[:-1])  # numbered by first position


def _recovery(side: int, cases) -> list[tuple[float, str, float]]:
    """(Hungarian mIoU, name, noise) of the default rule on planted maps, batched by 8 images
    (a batch gives exactly the per-image results: test_deterministic_under_seed_and_batch_equals_single)."""
    out = []
    for i in range(0, len(cases), 8):
        chunk = [(name, noise, *planted_case(name, noise, common, side)) for name, noise, common in cases[i:i + 8]]
        segs = segment_features(torch.stack([f for *_, f, _ in chunk]), method="kway")
        for (name, noise, _, lab), seg in zip(chunk, segs):
            _check_ids(seg)
            out.append((planted_miou(seg, lab), name, noise))
    return out


def test_default_k_rule_recovers_the_planted_set_32():
    worst = _recovery(32, PLANTED_SET)
    assert len(worst) == len(PLANTED_SET) and min(worst)[0] >= 0.99, min(worst)


@pytest.mark.slow
def test_default_k_rule_recovers_the_planted_set_64():
    worst = _recovery(64, PLANTED_SET)  # 24 maps, W 64 MiB each (batches of 8: 512 MiB)
    assert len(worst) == len(PLANTED_SET) and min(worst)[0] >= 0.99, min(worst)


@pytest.mark.parametrize("name,noise,common", [("voronoi7", 0.5, 0.0), ("bench8", 0.45, 1.5), ("tiny3", 0.4, 0.0)])
def test_default_k_rule_recovers_planted_maps_64(name, noise, common):
    feats, lab = planted_case(name, noise, common, 64)
    assert planted_miou(segment_features(feats, method="kway"), lab) >= 0.99


@pytest.mark.parametrize("name,noise", [("blocks8", 0.9), ("blobs5", 0.8), ("voronoi7", 0.8)])
@pytest.mark.parametrize("score", ["exact", "lin", "quad"])
def test_from_the_recursive_partition_never_a_higher_ncut(name, noise, score):
    W, rec = _recursive_start(name, noise)
    st = solve(W, 1, config=SolverConfig(score=score), init=rec)
    assert float(st.ncut) <= float(ncut_value(W, rec)) + 1e-9
    assert float(ncut_value(W, st.labels)) == pytest.approx(float(st.ncut), abs=1e-5)


@functools.cache
def _recursive_start(name: str, noise: float):
    """(W (1, N, N), the recursive cut's partition (1, N)) of a 24 x 24 planted map (once per map:
    the three score forms start from the same partition)."""
    feats, _ = planted_case(name, noise, 0.0, 24)
    return affinity(feats)[None], segment_features(feats, tau=0.6).reshape(1, -1)


@functools.cache
def _degenerate(n: int = 40) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    r = torch.rand(n, n, generator=g)
    iso = affinity(torch.randn(n, 8, generator=g))
    iso[5], iso[:, 5] = 0.0, 0.0
    iso[5, 5] = 1.0  # one isolated node (its self-loop only)
    zero = iso.clone()
    zero[7], zero[:, 7] = 0.0, 0.0  # and one of zero degree
    dup = affinity(torch.randn(3, 8, generator=g)[torch.arange(n) % 3])  # 3 distinct features
    return {"random": (r + r.T) / 2, "identity": torch.eye(n), "near-identity": torch.eye(n) + 1e-9,
            "all-equal": torch.ones(n, n), "all-zero": torch.zeros(n, n), "isolated": iso, "zero-degree": zero,
            "three-distinct": dup}


@pytest.mark.parametrize("kind", list(_degenerate()))
@pytest.mark.parametrize("score", ["exact", "lin", "quad"])
@pytest.mark.parametrize("init", ["kmeans++", "random"])
def test_monotone_and_defined_on_random_and_degenerate_graphs(kind, score, init):
    W = _degenerate()[kind][None].clone()
    st = solve(W, 6, config=SolverConfig(score=score, init=init, restarts=3), generator=torch.Generator().manual_seed(1))
    assert torch.isfinite(st.history).all() and torch.isfinite(st.ncut).all()
    assert bool((st.history.diff(dim=1) >= 0).all())  # the objective never decreases
    assert 1 <= int(st.k) <= 6 and st.labels.shape == (1, 40)


@pytest.mark.parametrize("kind", list(_degenerate()))
def test_every_k_rule_defined_on_degenerate_graphs(kind):
    W = _degenerate()[kind][None].clone()
    for k in ("auto", 6, 50):  # K > number of distinct features, K > N
        seg, info = kway_affinity_cut(W, KWayConfig(k=k))
        _check_ids(seg)
        assert torch.isfinite(info["ncut"]).all() and int(info["k"]) == int(seg.max()) + 1


def test_identity_and_all_equal_answers():
    seg, _ = kway_affinity_cut(torch.ones(1, 30, 30), KWayConfig())
    assert int(seg.max()) == 0  # no structure: one segment
    seg, info = kway_affinity_cut(torch.eye(30)[None], KWayConfig(k=30))
    assert float(info["ncut"]) == pytest.approx(0.0, abs=1e-9)  # every partition of W = I has NCut 0


def test_deterministic_under_seed_and_batch_equals_single():
    cases = [planted_case(n, 0.8, 0.0, 20) for n in ("blocks6", "voronoi7", "blobs5")]
    feats = torch.stack([f for f, _ in cases])
    for cfg in (KWayConfig(), KWayConfig(k=5), KWayConfig(k=5, solver=SolverConfig(init="random", score="quad"))):
        batch, info = kway_segments(feats, cfg)
        again, _ = kway_segments(feats.clone(), cfg)
        assert torch.equal(batch, again)
        for i in range(len(cases)):
            single, one = kway_segments(feats[i], cfg)
            assert torch.equal(batch[i], single)
            assert float(one["ncut"][0]) == pytest.approx(float(info["ncut"][i]), abs=1e-6)
    gen = torch.Generator().manual_seed(7)
    a, _ = kway_segments(feats, KWayConfig(k=5), generator=gen)
    b, _ = kway_segments(feats, KWayConfig(k=5), generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_fixed_k_and_info():
    feats, lab = planted_case("blocks6", 0.3, 0.0, 16)
    seg, info = kway_segments(feats, KWayConfig(k=6))
    assert seg.shape == (16, 16) and planted_miou(seg, lab) == 1.0
    assert set(info) >= {"k", "ncut", "f", "iterations", "converged"} and bool(info["converged"][0])
    seg = segment_features(feats, method="kway", k=16 * 16)  # k = N: defined, no error
    _check_ids(seg)


def test_tree_recuts_every_k_and_matches_segments():
    feats, lab = planted_case("mixed5", 0.5, 0.0, 24)
    tree = kway_tree(feats)
    assert torch.equal(tree.cut(), kway_segments(feats)[0])
    assert [int(tree.cut(k).max()) + 1 for k in tree.ks()] == tree.ks()
    assert tree.num_segments() == 5 and planted_miou(tree.cut(5), lab) == 1.0
    ts = tree.thresholds()
    assert ts == sorted(ts) and tree.num_segments(0.0) == 1


@pytest.mark.parametrize("bad", [dict(k=0), dict(k="many"), dict(k=2.5), dict(tau=-1.0)])
def test_bad_settings_raise(bad):
    with pytest.raises(ValueError):
        KWayConfig(**bad)
    with pytest.raises(ValueError):
        segment_features(torch.randn(4, 6, 6), method="nope")


def test_registered_method_cuts_like_kway_segments():
    from ovseg.masks import get_method, list_methods

    assert "kway" in list_methods()
    cases = [planted_case(n, 0.5, 0.0, 20) for n in ("blocks6", "mixed5")]
    feats = torch.stack([f for f, _ in cases])
    cuts = get_method("kway").build(feats, None)
    for cut, (f, lab) in zip(cuts, cases):
        seg, info = cut.cut("auto")
        assert torch.equal(seg, kway_segments(f)[0]) and info == {"k_chosen": int(lab.max()) + 1}
        assert cut.num_segments(0.5) == info["k_chosen"] and cut.num_segments(0.0) == 1
        assert cut.cut(0.0)[1] == {"k_chosen": 1} and cut.num_cuts() >= info["k_chosen"]


def test_sparse_step_update_matches_the_full_product(monkeypatch):
    import ovseg.masks.kway_solver as kw

    f, _ = planted_case("voronoi7", 0.9, 0.0, 20)
    W = affinity(f)[None]
    runs = []
    for share in (1, 10**9):  # every step from the moved rows of W / every step a full W X
        monkeypatch.setattr(kw, "_SPARSE_SHARE", share)
        runs.append(solve(W, 6, config=SolverConfig(restarts=2), generator=torch.Generator().manual_seed(0)))
    sparse, full = runs
    assert int(sparse.iterations) > 1 and torch.equal(sparse.labels, full.labels)
    assert float(sparse.f) == pytest.approx(float(full.f), abs=1e-5)
    assert float(ncut_value(W, sparse.labels)) == pytest.approx(float(sparse.ncut), abs=1e-5)
    assert bool((sparse.history.diff(dim=1) >= 0).all())
