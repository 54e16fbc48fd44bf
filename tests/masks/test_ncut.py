"""Recursive normalized cut (ovseg.masks): known answers on planted partitions, CPU, offline."""
from __future__ import annotations

import math

import numpy as np

import pytest
import scipy.linalg
import torch

from ovseg.masks import NCutConfig, affinity, build_hierarchy, segment_features
from ovseg.masks.ncut import ncut_hierarchy
from ovseg.masks.tree import Hierarchy
from ovseg.masks import eigen as _eigen
from ovseg.masks.split import best_split, best_split_small


# ---------------------------------------------------------------- planted partitions
def _layout(name: str, h: int, w: int) -> torch.Tensor:
    """(h, w) int64 ground-truth regions."""
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    if name == "halves":
        return (xx >= w // 2).long()
    if name == "stripes4":
        return (yy * 4 // h).long()
    if name == "blocks6":
        return (yy * 2 // h) * 3 + (xx * 3 // w)
    if name == "blocks8":
        return (yy * 2 // h) * 4 + (xx * 4 // w)
    if name == "lshape":  # an L-shaped region around a square, plus a strip
        lab = torch.zeros(h, w, dtype=torch.long)
        lab[: h // 2, : w // 2] = 1
        lab[:, -3:] = 2
        return lab
    if name == "disc":
        r2 = (yy - h / 2 + 0.5) ** 2 + (xx - w / 2 + 0.5) ** 2
        return (r2 < (min(h, w) / 3) ** 2).long()
    if name == "mixed5":  # stripes, a block and a disc
        lab = (xx * 3 // w).long()
        lab[: h // 3, : w // 3] = 3
        r2 = (yy - 3 * h / 4) ** 2 + (xx - 3 * w / 4) ** 2
        lab[r2 < (h / 8) ** 2] = 4
        return lab
    raise KeyError(name)


def _planted(lab: torch.Tensor, *, c: int = 32, noise: float = 0.3, seed: int = 0) -> torch.Tensor:
    """(c, h, w) features: one random centroid per region plus Gaussian noise (relative std)."""
    g = torch.Generator().manual_seed(seed)
    k = int(lab.max()) + 1
    centroids = torch.randn(k, c, generator=g)
    feats = centroids[lab] + noise * torch.randn(*lab.shape, c, generator=g)
    return feats.permute(2, 0, 1).contiguous()


def _same_partition(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to a relabelling (a bijection between ids)."""
    a, b = a.reshape(-1), b.reshape(-1)
    pairs = torch.unique(torch.stack([a, b]), dim=1)
    return pairs.shape[1] == torch.unique(a).numel() == torch.unique(b).numel()


def _check_ids(seg: torch.Tensor) -> None:
    """ids are 0..K-1, int64, numbered by first position in raster order."""
    assert seg.dtype == torch.int64
    flat = seg.reshape(-1)
    k = int(flat.max()) + 1
    assert torch.equal(torch.unique(flat), torch.arange(k))
    firsts = torch.tensor([int((flat == i).nonzero()[0]) for i in range(k)])
    assert torch.all(firsts[1:] > firsts[:-1])


LAYOUTS = ["halves", "stripes4", "blocks6", "blocks8", "lshape", "disc", "mixed5"]


@pytest.mark.parametrize("name", LAYOUTS)
@pytest.mark.parametrize("noise", [0.1, 0.5])
def test_planted_partitions_recovered_exactly(name, noise):
    lab = _layout(name, 24, 24)
    seg = segment_features(_planted(lab, noise=noise, seed=len(name)))
    assert seg.shape == (24, 24)
    _check_ids(seg)
    assert _same_partition(seg, lab), f"{name}: {seg.unique().numel()} segments for {lab.unique().numel()}"


@pytest.mark.parametrize("split", ["grid", "exact"])
@pytest.mark.parametrize("dense_below", [0, 10**9])  # Lanczos everywhere / dense eigh everywhere
def test_recovered_with_every_solver_and_split(split, dense_below):
    lab = _layout("mixed5", 16, 16)
    seg = segment_features(_planted(lab, noise=0.4), split=split, dense_below=dense_below)
    assert _same_partition(seg, lab)


def test_lower_tau_never_gives_more_segments():
    feats = _planted(_layout("blocks8", 12, 12), noise=0.9, seed=3)
    taus = (0.05, 0.2, 0.5, 0.7, 0.8, 0.9)
    counts = [int(segment_features(feats, tau=t).max()) + 1 for t in taus]
    assert counts == sorted(counts), counts
    assert counts[-1] > counts[0]
    h = build_hierarchy(feats, tau=0.9)  # and on the tree, over a fine sweep of tau
    fine = [h.num_segments(t / 100) for t in range(0, 91)]
    assert fine == sorted(fine) and [h.num_segments(t) for t in taus] == counts


def test_deterministic():
    feats = _planted(_layout("blocks6", 20, 20), noise=0.8, seed=5)
    a, b = segment_features(feats, tau=0.6), segment_features(feats.clone(), tau=0.6)
    assert int(a.max()) + 1 >= 6
    assert torch.equal(a, b)


# ---------------------------------------------------------------- hierarchy
@pytest.fixture(scope="module")
def nested():
    """Two coarse groups, each of two or three sub-regions: costs at several scales."""
    lab = _layout("blocks6", 18, 18)
    g = torch.Generator().manual_seed(11)
    coarse = torch.randn(2, 32, generator=g)
    fine = coarse[torch.tensor([0, 0, 0, 1, 1, 1])] + 0.6 * torch.randn(6, 32, generator=g)
    feats = (fine[lab] + 0.4 * torch.randn(18, 18, 32, generator=g)).permute(2, 0, 1).contiguous()
    return feats, build_hierarchy(feats, tau=0.9)


def test_hierarchy_cut_equals_fresh_segmentation(nested):
    feats, h = nested
    ts = h.thresholds()
    assert len(ts) >= 3
    taus = [0.0, 0.9, 0.5, 0.2, 0.05] + [t * 1.0001 for t in ts] + [t for t in ts]
    for t in taus:
        if t <= h.tau:
            assert torch.equal(h.cut(t), segment_features(feats, tau=t)), t


def test_hierarchy_structure(nested):
    _, h = nested
    assert isinstance(h, Hierarchy) and h.nodes[0].parent is None and h.nodes[0].size == 18 * 18
    for node in h.nodes:
        if node.children:
            a, b = (h.nodes[i] for i in node.children)
            assert node.cost < h.tau and node.reason == "split"
            assert a.parent == b.parent == node.index
            assert torch.equal(torch.sort(torch.cat([a.members, b.members])).values,
                               torch.sort(node.members).values)
        else:  # a leaf knows why it stopped
            assert node.reason in ("cost>=tau", "single", "uniform")
            assert node.cost >= h.tau
    segs = h.segmentations()
    counts = [int(s.max()) + 1 for s in segs]
    assert counts[0] == 1 and counts == sorted(counts) and len(set(counts)) == len(counts)
    assert torch.equal(segs[-1], h.cut())
    with pytest.raises(ValueError, match="exceeds"):
        h.cut(1.5)


def test_ncut_hierarchy_on_own_affinity():
    lab = _layout("stripes4", 12, 12)
    w = affinity(_planted(lab, noise=0.2), alpha=10.0)
    h = ncut_hierarchy(w, tau=0.5, shape=(12, 12))
    assert _same_partition(h.cut(), lab) and h.cut().shape == (12, 12)
    assert h.cut().dim() == 2 and ncut_hierarchy(w).cut().shape == (144,)
    with pytest.raises(ValueError, match="symmetric"):
        ncut_hierarchy(torch.rand(5, 5) + torch.eye(5) * torch.arange(5))
    with pytest.raises(ValueError, match="non-negative"):
        ncut_hierarchy(-torch.ones(3, 3))
    with pytest.raises(ValueError, match="shape"):
        ncut_hierarchy(w, shape=(5, 5))


# ---------------------------------------------------------------- defects of the published code
def test_every_position_takes_part_at_every_level():
    """Defect 1: the min-max normalisation makes the least similar pair exactly 0; those rows
    must stay in every later split."""
    lab = _layout("blocks8", 16, 16)
    feats = _planted(lab, noise=0.2)
    w = affinity(feats)
    assert float(w.min()) == 0.0
    h = build_hierarchy(feats)
    for node in h.nodes:
        if node.children:
            assert sum(h.nodes[i].size for i in node.children) == node.size
    assert sum(h.nodes[i].size for i in h.leaves()) == 256


def test_ids_never_collide_with_many_segments():
    """Defect 2: 300 planted clusters must give 300 distinct int64 ids."""
    g = torch.Generator().manual_seed(0)
    k, per = 300, 2
    centroids = torch.randn(k, 256, generator=g)
    rows = centroids.repeat_interleave(per, 0) + 0.01 * torch.randn(k * per, 256, generator=g)
    h = build_hierarchy(rows, tau=0.9)
    seg = h.cut()
    assert seg.shape == (k * per,) and seg.dtype == torch.int64
    assert int(seg.max()) + 1 == k
    assert _same_partition(seg, torch.arange(k).repeat_interleave(per))
    _check_ids(seg)


def test_solver_failure_falls_back_to_dense(monkeypatch):
    """Defect 3: a failing iterative solver must not crash; dense float64 eigh takes over."""
    lab = _layout("mixed5", 16, 16)
    feats = _planted(lab, noise=0.3)
    reference = segment_features(feats, dense_below=0)

    def broken(*args, **kwargs):
        raise _eigen.SolverError("simulated breakdown")

    monkeypatch.setattr(_eigen, "_lanczos_top", broken)
    h = build_hierarchy(feats, dense_below=0)
    assert {n.solver for n in h.nodes if n.size > 1} == {"dense-fallback"}
    assert _same_partition(h.cut(), reference) and _same_partition(h.cut(), lab)


def test_total_solver_failure_gives_leaves_not_crash(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("simulated LAPACK failure")

    monkeypatch.setattr(_eigen, "_lanczos_top", broken)
    monkeypatch.setattr(_eigen, "_top_dense", broken)
    with pytest.warns(RuntimeWarning, match="eigensolvers failed"):
        h = build_hierarchy(_planted(_layout("halves", 8, 8)))
    assert h.nodes[0].reason == "solver-failed" and int(h.cut().max()) == 0


@pytest.mark.parametrize("dense_below", [0, 10**9])
def test_nearly_disconnected_graph_is_cut(dense_below):
    """Defect 5: well separated regions -> degenerate second eigenvalue; the cut must be at its
    best there (five regions, five segments), for both solvers."""
    lab = _layout("mixed5", 16, 16)
    centroids = torch.eye(64)[:5]  # orthogonal: cosine 0 -> affinity exactly 0 between regions
    feats = (centroids[lab] + 1e-4 * torch.randn(16, 16, 64, generator=torch.Generator().manual_seed(0)))
    feats = feats.permute(2, 0, 1)
    h = build_hierarchy(feats, dense_below=dense_below)
    assert _same_partition(h.cut(), lab)
    assert all(h.nodes[i].cost < 1e-6 for i in range(len(h.nodes)) if h.nodes[i].children)


def test_exactly_disconnected_components():
    blocks = torch.block_diag(torch.ones(7, 7), torch.ones(5, 5), torch.ones(9, 9), torch.ones(1, 1))
    seg = ncut_hierarchy(blocks, tau=0.5).cut()
    assert _same_partition(seg, torch.repeat_interleave(torch.arange(4), torch.tensor([7, 5, 9, 1])))


def test_split_search_with_one_signed_vector():
    """The paper's grid [0.99 min y, 0.99 max y] is empty-sided when y has one sign; our search
    must still find the perfect cut (NCut 0), never 0/0."""
    w = torch.block_diag(torch.ones(3, 3), torch.ones(2, 2))
    y = torch.tensor([1.0, 1.0, 1.0, 1.001, 1.001])
    for split in ("grid", "exact"):
        cost, low = best_split(w, y, split=split)
        assert cost == 0.0 and low.tolist() == [True, True, True, False, False]
    cost, low = best_split(w, torch.ones(5))
    assert math.isinf(cost) and low is None


def test_exact_search_never_worse_than_grid():
    feats = _planted(_layout("disc", 16, 16), noise=1.5, seed=2)
    w = affinity(feats)
    d = w.sum(1)
    y, _ = _eigen.fiedler_vector(w, d)
    assert best_split(w, y, split="exact")[0] <= best_split(w, y, split="grid")[0] * (1 + 1e-5)


@pytest.mark.parametrize("split", ["grid", "exact"])
def test_torch_and_numpy_split_searches_agree(split):
    """Large nodes use the binned torch search, small CPU nodes the sorted NumPy one: same cut,
    and both equal a brute-force evaluation of every candidate threshold."""
    g = torch.Generator().manual_seed(7)
    for n in (5, 40, 120):
        x = torch.randn(n, 6, generator=g, dtype=torch.float64)
        w = torch.exp(-torch.cdist(x, x))
        y = torch.randn(n, generator=g, dtype=torch.float64)
        cost_t, low_t = best_split(w, y, split=split)
        cost_n, low_n = best_split_small(w.numpy(), y.numpy(), split=split)
        assert torch.equal(low_t, torch.from_numpy(low_n)) and cost_t == pytest.approx(cost_n, rel=1e-9)
        if split == "exact":
            ys = torch.sort(y).values
            best = min(_ncut_value(w, y <= t) for t in ys[:-1])
            assert cost_t == pytest.approx(best, rel=1e-9)


def _ncut_value(w: torch.Tensor, low: torch.Tensor) -> float:
    cut = w[low][:, ~low].sum()
    return float(cut / w[low].sum() + cut / w[~low].sum())


# ---------------------------------------------------------------- degenerate input
@pytest.mark.parametrize("case", ["one_position", "constant", "zeros", "one_row", "tiny_constant"])
def test_degenerate_input_gives_one_segment(case):
    g = torch.Generator().manual_seed(0)
    feats = {
        "one_position": torch.randn(16, 1, 1, generator=g),
        "constant": torch.ones(16, 6, 7) * 3.0,
        "zeros": torch.zeros(16, 5, 5),
        "one_row": torch.randn(16, 1, 9, generator=g)[:, :, :1].expand(16, 1, 9),
        "tiny_constant": torch.full((8, 4, 4), 1e-30),
    }[case]
    seg = segment_features(feats, tau=1.9)
    assert seg.shape == feats.shape[1:] and torch.equal(seg, torch.zeros_like(seg))


def test_all_equal_affinities_give_one_segment():
    assert torch.equal(ncut_hierarchy(torch.full((30, 30), 0.7), tau=1.9).cut(), torch.zeros(30, dtype=torch.long))


def test_some_zero_vectors_no_nan():
    feats = _planted(_layout("halves", 10, 10), noise=0.2)
    feats[:, 0, :3] = 0.0
    seg = segment_features(feats)
    _check_ids(seg)
    assert torch.equal(seg[5:, 5:].unique(), seg[9:, 9:].unique())


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_features_raise(bad):
    feats = torch.randn(8, 4, 4)
    feats[3, 1, 2] = bad
    with pytest.raises(ValueError, match="non-finite"):
        segment_features(feats)
    with pytest.raises(ValueError, match="non-finite"):
        build_hierarchy(feats)


def test_bad_arguments_raise():
    with pytest.raises(TypeError):
        segment_features([[1.0]])
    with pytest.raises(ValueError, match="shape"):
        segment_features(torch.randn(4, 4))
    with pytest.raises(ValueError, match="empty"):
        segment_features(torch.randn(4, 0, 3))
    with pytest.raises(ValueError, match="split"):
        segment_features(torch.randn(4, 3, 3), split="fancy")
    with pytest.raises(ValueError, match="tau"):
        NCutConfig(tau=float("nan"))


# ---------------------------------------------------------------- solver and batching
def test_iterative_solver_agrees_with_dense_eigh():
    feats = _planted(_layout("mixed5", 16, 16), noise=0.8, seed=4)
    w = affinity(feats)
    d = w.sum(1)
    y_it, m_it = _eigen.fiedler_vector(w, d, dense_below=0)
    y_de, m_de = _eigen.fiedler_vector(w, d, dense_below=10**9)
    assert (m_it, m_de) == ("lanczos", "dense")
    # compare against the generalised eigenproblem solved directly: (D - W) y = lambda D y
    dm = torch.diag(d.double())
    lap = dm - w.double()
    dinv = torch.diag(d.double().rsqrt())
    vals, vecs = (torch.from_numpy(a) for a in scipy.linalg.eigh((dinv @ lap @ dinv).numpy()))
    assert vals[2] - vals[1] > 1e-3  # a gap, so the eigenvector is unique
    y_ref = dinv @ vecs[:, 1]
    for y in (y_it, y_de):
        cos = torch.nn.functional.cosine_similarity(y.double(), y_ref, dim=0)
        assert abs(float(cos)) > 0.9999
    assert torch.equal(segment_features(feats, dense_below=0), segment_features(feats, dense_below=10**9))


def test_batched_equals_per_image():
    feats = torch.stack([_planted(_layout(n, 12, 12), noise=0.6, seed=i)
                         for i, n in enumerate(["blocks6", "disc", "lshape"])])
    batched = segment_features(feats, tau=0.6)
    assert batched.shape == (3, 12, 12)
    for i in range(3):
        assert torch.equal(batched[i], segment_features(feats[i], tau=0.6))


def test_half_precision_and_config():
    lab = _layout("stripes4", 12, 12)
    feats = _planted(lab, noise=0.2).half()
    cfg = NCutConfig(tau=0.4, split="exact")
    seg = segment_features(feats, config=cfg)
    assert _same_partition(seg, lab)
    assert cfg.alpha == 10.0 and NCutConfig().tau == 0.5 and NCutConfig().split == "grid"
    with pytest.raises(TypeError, match="either config"):
        segment_features(feats, config=cfg, tau=0.3)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    feats = _planted(_layout("mixed5", 24, 24), noise=0.3)
    seg = segment_features(feats.cuda())
    assert seg.device.type == "cuda" and _same_partition(seg.cpu(), segment_features(feats))


def test_huge_affinities_are_cut_like_the_unscaled_ones():
    # NCut is invariant to scaling W; float32 degree sums of 1e36-sized entries would overflow.
    g = torch.Generator().manual_seed(4)
    w = affinity(torch.randn(400, 8, generator=g))
    assert torch.equal(ncut_hierarchy(w * 1e36).cut(), ncut_hierarchy(w).cut())


def test_lanczos_errors_fall_back_to_the_dense_solver(monkeypatch):
    # LAPACK reports NaN Krylov runs and non-convergence as ValueError / LinAlgError.
    from ovseg.masks import eigen as _eigen

    def broken(*args, **kwargs):
        raise ValueError("array must not contain infs or NaNs")

    monkeypatch.setattr(_eigen, "_lanczos_top", broken)
    g = torch.Generator().manual_seed(5)
    tree = ncut_hierarchy(affinity(torch.randn(300, 8, generator=g)), dense_below=0)
    assert tree.nodes[0].solver == "dense-fallback" and tree.num_segments() > 1


# ---------------------------------------------------------------- repeated / degenerate spectra
@pytest.mark.parametrize("n", [2, 19, 20, 300])
@pytest.mark.parametrize("dense_below", [0, 10**9])
def test_identity_gives_singletons(n, dense_below):
    """W = I: every position is isolated; each becomes its own segment (IndexError before)."""
    h = ncut_hierarchy(torch.eye(n), dense_below=dense_below)
    assert torch.equal(h.cut(), torch.arange(n))
    assert all(node.cost == 0.0 for node in h.nodes if node.children)


@pytest.mark.parametrize("dense_below", [0, 10**9])
def test_isolated_positions_are_own_segments(dense_below):
    """Two connected blocks and 5 isolated positions (self-affinity only) interleaved with them:
    exactly the blocks plus 5 singletons."""
    g = torch.Generator().manual_seed(0)
    lab = torch.tensor([0, 0, 2, 1, 0, 3, 1, 1, 4, 0, 5, 6, 1, 0, 7])  # 2..7 isolated (one each)
    lab = torch.cat([lab, torch.zeros(4, dtype=torch.long), torch.ones(3, dtype=torch.long)])
    same = (lab[:, None] == lab[None, :]).float()
    noise = torch.rand(lab.numel(), lab.numel(), generator=g)
    w = same * (0.5 + 0.5 * (noise + noise.T) / 2)
    h = ncut_hierarchy(w, dense_below=dense_below)
    assert _same_partition(h.cut(), lab)
    assert int(h.cut().max()) + 1 == 8


def test_zero_rows_are_split_off_and_kept_together():
    """Positions with no affinity at all (zero row, zero self-affinity) are split off the rest;
    together they form an all-zero node, which the documented rule keeps whole."""
    w = torch.zeros(10, 10)
    w[:6, :6] = 1.0
    seg = ncut_hierarchy(w).cut()
    assert torch.equal(seg, torch.tensor([0] * 6 + [1] * 4))


def test_huge_alpha_on_planted_features():
    """alpha = 1000: with tight clusters the cross-region affinities underflow to exactly 0 and
    the within-region ones stay ~1 (repeated top eigenvalue, one per region): the planted
    partition. With noisy clusters every off-diagonal affinity is ~0 (< 1e-6:
    near-isolated positions, a nearly repeated spectrum), so every split has NCut < tau:
    singletons."""
    lab = _layout("blocks6", 12, 12)
    tight = _planted(lab, noise=0.002, seed=1)
    assert _same_partition(segment_features(tight, alpha=1000), lab)
    noisy = _planted(lab, noise=0.3)
    w = affinity(noisy, alpha=1000)
    off = w - torch.diag(w.diagonal())
    assert float(off.max()) < 1e-6 and float(w.diagonal().min()) > 0.99  # the answer's premise
    seg = segment_features(noisy, alpha=1000)
    assert torch.equal(seg, torch.arange(144).reshape(12, 12))


@pytest.mark.parametrize("dense_below", [0, 10**9])
def test_ring_with_repeated_second_eigenvalue(dense_below):
    """A 20-ring: its Fiedler eigenvalue is double, any vector of the eigenspace is a rotation of
    a cosine; the answer is 4 contiguous arcs of 5 (NCut 4/20 halves, then 2/9 per path of 10;
    paths of 5 have no split under 0.5)."""
    n = 20
    i = torch.arange(n)
    w = torch.zeros(n, n)
    w[i, (i + 1) % n] = w[(i + 1) % n, i] = 1.0
    seg = ncut_hierarchy(w, dense_below=dense_below).cut()
    assert torch.bincount(seg).tolist() == [5] * 4
    changes = int((seg != seg.roll(1)).sum())
    assert changes == 4  # contiguous arcs around the ring


@pytest.mark.parametrize("n", range(2, 41))
def test_dense_top_eigenvector_with_repeated_top_eigenvalue(n):
    """LAPACK's subset driver returns no vector for some repeated top eigenvalues (n = 19 here);
    the solver must still return a unit top eigenvector."""
    u = np.ones(n) / np.sqrt(n)
    a = np.eye(n) - 3.0 * np.outer(u, u)  # deflated identity: eigenvalue 1 repeated n - 1 times
    v = _eigen._top_dense(a)
    assert v.shape == (n,) and np.linalg.norm(v) == pytest.approx(1.0)
    assert v @ a @ v == pytest.approx(1.0) and abs(u @ v) < 1e-8


def test_validation_runs_once_at_the_public_entry(monkeypatch):
    """segment_features validates the features in one pass and never re-checks the W it built;
    the result equals the public two-step path (affinity, then ncut_hierarchy with its checks)."""
    import ovseg.masks.diffcut as diffcut_module
    import ovseg.masks.ncut as ncut_module
    import ovseg.masks.segment as segment_module
    from ovseg.masks.affinity import check_features

    feats = torch.stack([_planted(_layout("stripes4", 8, 8), noise=0.2, seed=s) for s in range(2)])
    expected = torch.stack([ncut_hierarchy(affinity(f), shape=(8, 8)).cut() for f in feats])
    calls = {"features": 0, "affinity": 0}

    def counting_features(x, **kw):
        calls["features"] += 1
        return check_features(x, **kw)

    original = ncut_module.check_affinity

    def counting_affinity(w):
        calls["affinity"] += 1
        return original(w)

    monkeypatch.setattr(segment_module, "check_features", counting_features)
    monkeypatch.setattr(diffcut_module, "check_features", counting_features)
    monkeypatch.setattr(ncut_module, "check_affinity", counting_affinity)
    assert torch.equal(segment_features(feats), expected)
    # per batch, not per image: the entry point and the method's builder check the batch once each
    # (a check without the NaN pass reads no feature value); none over W
    assert calls == {"features": 2, "affinity": 0}
    build_hierarchy(feats[0])
    assert calls == {"features": 3, "affinity": 0}
    ncut_hierarchy(affinity(feats[0]))  # the public cut on a user's W still checks it
    assert calls["affinity"] == 1


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_public_entries_still_reject_bad_input(bad):
    feats = torch.randn(2, 8, 4, 4)
    feats[1, 3, 1, 2] = bad  # only the second image of a batch is bad
    with pytest.raises(ValueError, match="non-finite"):
        segment_features(feats)
    with pytest.raises(ValueError, match="non-finite"):
        affinity(feats[1])
    w = affinity(feats[0])
    w[2, 3] = w[3, 2] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        ncut_hierarchy(w)
    asym = affinity(feats[0]).clone()
    asym[0, 5] += 0.5
    with pytest.raises(ValueError, match="symmetric"):
        ncut_hierarchy(asym)


@pytest.mark.parametrize("rank", [None, 5])
def test_lanczos_reading_betas_every_8_steps_gives_the_same_vector(rank):
    """On accelerators the breakdown test reads the betas every 8 steps (one host sync instead of
    8); the steps after a breakdown are dropped, so the vector is the one of the per-step test.
    rank 5: an exactly low-rank operator, where Lanczos breaks down after 5 steps."""
    gen = torch.Generator().manual_seed(0)
    n = 300
    if rank is None:
        a = torch.rand(n, n, generator=gen, dtype=torch.float64)
    else:
        f = torch.rand(n, rank, generator=gen, dtype=torch.float64)
        a = f @ f.T
    a = (a + a.T) / 2
    u = torch.ones(n, dtype=torch.float64) / n ** 0.5
    start = torch.randn(n, generator=gen, dtype=torch.float64)
    calls = []

    def matvec(x):
        calls.append(1)
        return a @ x

    kw = dict(krylov_dim=48, max_restarts=1, tol=1e-12)
    v1, c1 = _eigen._lanczos_top(matvec, u, start, check_every=1, **kw)
    steps_1 = len(calls)
    v8, c8 = _eigen._lanczos_top(matvec, u, start, check_every=8, **kw)
    assert c1 == c8 and torch.equal(v1, v8)
    if rank is not None:  # the breakdown was found, late: up to 7 wasted steps per restart
        assert steps_1 <= 2 * (rank + 1) and len(calls) - steps_1 <= 2 * 8


def test_accelerator_code_path_of_the_tree_gives_the_cpu_partition(monkeypatch):
    """The branches a CUDA tensor takes (index_select blocks, small nodes copied to the host and
    their results moved back), run here on CPU tensors: the same tree as the CPU path's."""
    from ovseg.masks import ncut as _ncut

    feats = _planted(_layout("mixed5", 24, 24), noise=0.3)
    want = build_hierarchy(feats)
    monkeypatch.setattr(_ncut, "_is_host", lambda t: False)
    got = build_hierarchy(feats)
    assert torch.equal(got.cut(), want.cut())
    assert [(n.cost, n.solver, n.reason) for n in got.nodes] == [(n.cost, n.solver, n.reason) for n in want.nodes]
    assert {n.solver for n in got.nodes} >= {"lanczos", "dense"}  # both kinds of node were cut
    # a small node cut from a small parent: the subtree kept on the host
    assert any(n.parent is not None and got.nodes[n.parent].solver == "dense" for n in got.nodes if n.solver == "dense")
