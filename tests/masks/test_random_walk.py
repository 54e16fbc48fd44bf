"""Random-walk normalized cut on planted transition matrices with known answers."""
import pytest
import torch

from ovseg.masks.ncut import ncut_hierarchy
from ovseg.masks.tree import auto_tau
from ovseg.masks.random_walk import check_transition, combine_attention, random_walk_affinity, random_walk_hierarchy, random_walk_segments, stationary_distribution


def planted(h=12, w=12, K=4, leak=0.1, noise=0.5, seed=0):
    """Row-stochastic P on an h x w grid with K Voronoi regions: a walk stays in its region with
    probability 1 - leak (up to log-normal noise on every entry). Returns P (N, N), labels (N,)."""
    g = torch.Generator().manual_seed(seed)
    seeds = torch.rand(K, 2, generator=g) * torch.tensor([h, w])
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    pos = torch.stack([yy, xx], -1).reshape(-1, 2).float() + 0.5
    lab = torch.cdist(pos, seeds).argmin(1)
    lab = torch.unique(lab, return_inverse=True)[1]
    same = (lab[:, None] == lab[None]).float()
    other = 1 - same
    P = (1 - leak) * same / same.sum(1, keepdim=True)
    if K > 1:
        P = P + leak * other / other.sum(1, keepdim=True).clamp_min(1)
    P = P * torch.exp(noise * torch.randn(P.shape, generator=g))
    return P / P.sum(1, keepdim=True), lab


def canonical(labels):
    """Relabel by first occurrence, so equal partitions compare equal."""
    flat = labels.reshape(-1)
    out = torch.empty_like(flat)
    mapping = {}
    for i, v in enumerate(flat.tolist()):
        out[i] = mapping.setdefault(v, len(mapping))
    return out


@pytest.mark.parametrize("K,leak", [(2, 0.1), (3, 0.2), (5, 0.1), (8, 0.05)])
def test_recovers_planted_blocks_exactly(K, leak):
    P, lab = planted(K=K, leak=leak, seed=K)
    seg = random_walk_segments(P, shape=(12, 12), tau=0.5)
    assert seg.shape == (12, 12) and seg.dtype == torch.int64
    assert torch.equal(canonical(seg), canonical(lab))
    assert int(seg.max()) == K - 1  # ids 0..K-1


def _planted_ncut(W, lab):
    d = W.sum(1)
    total = 0.0
    for k in lab.unique():
        a = lab == k
        total += float(W[a][:, ~a].sum() / d[a].sum())
    return total


def test_more_steps_never_more_segments_on_block_chains():
    for K, seed in [(3, 1), (5, 2), (8, 3)]:
        P, lab = planted(K=K, leak=0.1, seed=seed)
        counts = [int(random_walk_segments(P, shape=(12, 12), steps=k, tau=0.5).max()) + 1
                  for k in (1, 2, 4, 8)]
        assert counts == sorted(counts, reverse=True), counts
        assert counts[-1] < K  # by 8 steps the walk leaks across blocks: merged
        costs = [_planted_ncut(random_walk_affinity(P, steps=k).double(), lab) for k in (1, 2, 4, 8)]
        assert costs == sorted(costs), costs  # the planted partition only gets more expensive


def test_more_steps_can_give_more_segments_on_a_periodic_chain():
    """Not guaranteed in general (documented): a 2-cycle always leaves (NCut 2, one segment) but
    its 2-step walk never does (P^2 = I: two segments)."""
    P = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    assert int(random_walk_segments(P, shape=(1, 2), steps=1, tau=0.5).max()) == 0
    assert int(random_walk_segments(P, shape=(1, 2), steps=2, tau=0.5).max()) == 1


def test_stationary_distribution_known_chains():
    # birth-death chain: detailed balance pi_i p_(i,i+1) = pi_(i+1) p_(i+1,i) gives pi ~ (1, 2, 4)
    P = torch.tensor([[0.6, 0.4, 0.0], [0.2, 0.4, 0.4], [0.0, 0.2, 0.8]], dtype=torch.float64)
    expect = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64) / 7
    for solve_below in (4096, 0):  # exact solve, and lazy power iteration
        pi = stationary_distribution(P, solve_below=solve_below)
        torch.testing.assert_close(pi, expect, atol=1e-9, rtol=0)
    periodic = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    torch.testing.assert_close(stationary_distribution(periodic, solve_below=0),
                               torch.tensor([0.5, 0.5], dtype=torch.float64))
    reducible = torch.block_diag(torch.tensor([[0.5, 0.5], [0.5, 0.5]]),
                                 torch.tensor([[0.75, 0.25], [0.5, 0.5]])).double()
    pi = stationary_distribution(reducible)  # singular system -> power iteration fallback
    torch.testing.assert_close(pi @ reducible, pi, atol=1e-11, rtol=0)
    assert abs(float(pi.sum()) - 1) < 1e-12 and float(pi.min()) > 0
    tele = stationary_distribution(reducible, teleport=0.01)
    assert float((tele - pi).abs().max()) < 0.05


def test_affinity_is_symmetric_with_degrees_pi():
    P, _ = planted(K=3, seed=5)
    pi = stationary_distribution(P)
    for k in (1, 3):
        W = random_walk_affinity(P, steps=k).double()
        torch.testing.assert_close(W, W.T)
        torch.testing.assert_close(W.sum(1), pi, atol=1e-6, rtol=1e-4)  # Meila & Shi: degrees = pi


def test_bad_transition_matrices_raise():
    P, _ = planted(K=2)
    with pytest.raises(ValueError, match="square"):
        check_transition(P[:, :-1])
    with pytest.raises(ValueError, match="non-negative"):
        check_transition(P - 0.01)
    with pytest.raises(ValueError, match="row-stochastic.*normalize=True"):
        random_walk_segments(2 * P, shape=(12, 12))
    bad = P.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        check_transition(bad)
    with pytest.raises(TypeError):
        check_transition(P.numpy())
    zero = P.clone()
    zero[3] = 0
    with pytest.raises(ValueError, match="all-zero rows"):
        check_transition(zero, normalize=True)
    torch.testing.assert_close(check_transition(3 * P, normalize=True), P)
    with pytest.raises(ValueError, match="steps"):
        random_walk_affinity(P, steps=0)
    with pytest.raises(ValueError, match="auto"):
        random_walk_segments(P, shape=(12, 12), tau="automatic")


@pytest.mark.parametrize("K", [1, 2, 3, 5, 8])
def test_auto_tau_recovers_planted_block_count(K):
    P, lab = planted(K=K, leak=0.05, noise=0.3, seed=10 + K)
    seg = random_walk_segments(P, shape=(12, 12), tau="auto")
    assert int(seg.max()) + 1 == K
    assert torch.equal(canonical(seg), canonical(lab))
    if K <= 3:  # the shortcut (tree at 0.5 + the rejected leaves' costs) equals the full tree
        full = random_walk_hierarchy(P, shape=(12, 12), tau=1.0)
        assert torch.equal(full.cut(auto_tau(full)), seg)


def test_auto_tau_widest_interval_rule():
    P, _ = planted(K=4, leak=0.05, seed=7)
    h = ncut_hierarchy(random_walk_affinity(P), tau=1.0)
    ts = [0.0, *h.thresholds(), 1.0]
    for weight in (0.5, 1.0):
        gaps = [b - a for a, b in zip(ts[:-1], ts[1:])]
        gaps[0] *= weight
        j = gaps.index(max(gaps))
        assert abs(auto_tau(h, one_segment_weight=weight) - (ts[j] + ts[j + 1]) / 2) < 1e-12
    # a large weight on [0, t_1] makes one segment win
    assert h.num_segments(auto_tau(h, one_segment_weight=100.0)) == 1
    small = ncut_hierarchy(random_walk_affinity(P), tau=0.05)  # too shallow to decide
    assert auto_tau(small, tau_max=1.0) is None


def test_combine_attention_layers():
    P8, lab8 = planted(h=8, w=8, K=2, leak=0.05, seed=3)
    # the same two regions seen at 4x4: average the 8x8 chain over 2x2 cells
    pool = torch.zeros(16, 64)
    cells = (torch.arange(8)[:, None] // 2 * 4 + torch.arange(8)[None] // 2).reshape(-1)
    pool[cells, torch.arange(64)] = 0.25
    P4 = pool @ P8 @ pool.T * 4
    heads = torch.stack([P8, P8.roll(1, 0).roll(1, 1)])  # (heads, N, N), averaged inside
    P = combine_attention([heads, P4])
    assert P.shape == (64, 64) and float(P.min()) >= 0
    torch.testing.assert_close(P.sum(1), torch.ones(64))
    torch.testing.assert_close(combine_attention([P8], weights=[3.0]), P8)
    seg = random_walk_segments(combine_attention([P8, P4]), shape=(8, 8), tau=0.5)
    assert int(seg.max()) == 1
    assert (canonical(seg) == canonical(lab8)).float().mean() > 0.9  # 4x4 blurs the boundary
    with pytest.raises(ValueError, match="square grid"):
        combine_attention([torch.eye(6)])


def test_drop_self_handles_walks_that_mostly_stay_put():
    P, lab = planted(K=3, leak=0.1, seed=4)
    lazy = 0.8 * torch.eye(P.shape[0]) + 0.2 * P  # every split is cheap: over-segmentation
    assert int(random_walk_segments(lazy, shape=(12, 12), tau=0.5).max()) + 1 > 3
    seg = random_walk_segments(lazy, shape=(12, 12), tau=0.5, drop_self=True)
    assert torch.equal(canonical(seg), canonical(lab))
    # auto: the tree reaches single patches below tau_max; that finest cut must not win
    assert torch.equal(canonical(random_walk_segments(lazy, shape=(12, 12), tau="auto")), canonical(lab))


def test_auto_tau_keeps_the_finest_cut_when_its_leaves_are_uniform():
    # Three exactly uniform blocks: the tree ends in uniform leaves, not single patches, so the
    # finest segmentation's interval is real and auto must find the three blocks.
    lab = torch.arange(36) // 12
    P = torch.softmax((lab[:, None] == lab[None]).float() * 5 + 0.01, 1)
    seg = random_walk_segments(P, shape=(6, 6), tau="auto")
    assert seg.unique().numel() == 3
    assert torch.equal(seg.flatten(), lab)
