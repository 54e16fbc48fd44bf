"""One nearest-exact rule (`ovseg.io.nearest.nearest_exact_index`), checked on every size pair
1..2048 -> 1..256 against its definition and against torch's own kernels, and used by all three
callers (label maps, the labeler's CLIP-grid masks, the published evaluation recipe)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ovseg import io as _io
from ovseg.io import nearest as _nearest

N_IN, N_OUT = 2048, 256
# every output index of every n_out in 1..N_OUT, concatenated: one vectorised check per n_in
OUTS = np.concatenate([np.full(n, n, dtype=np.int64) for n in range(1, N_OUT + 1)])
IDX = np.concatenate([np.arange(n, dtype=np.int64) for n in range(1, N_OUT + 1)])


def _helper_all(n_in: int) -> np.ndarray:
    return np.concatenate([_nearest.nearest_exact_index(n_in, n) for n in range(1, N_OUT + 1)])


# F.interpolate(mode="nearest-exact") on (1, 1, L) and (1, 1, H, W) ends in these two ops; called
# directly they cost about half as much per call (checked equal to F.interpolate below)
_OP_1D = getattr(torch._C._nn, "_upsample_nearest_exact1d", None)
_OP_2D = getattr(torch._C._nn, "_upsample_nearest_exact2d", None)


def _torch_1d(x: torch.Tensor, n: int) -> torch.Tensor:
    return _OP_1D(x, [n], None) if _OP_1D else F.interpolate(x, size=n, mode="nearest-exact")


def _torch_2d(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return _OP_2D(x, list(size), None) if _OP_2D else F.interpolate(x, size=size, mode="nearest-exact")


def _assert_ties_only(got: np.ndarray, src: np.ndarray, n_in: int, what: str) -> int:
    """Where torch differs from the helper, the exact centre (2i + 1) n_in / (2 n_out) must be an
    integer (a tie on a pixel boundary) and torch one pixel below. Returns the pairs moved."""
    diff = got != src
    if not diff.any():
        return 0
    tie = ((2 * IDX + 1) * n_in) % (2 * OUTS) == 0
    bad = diff & ~(tie & (got == src - 1))
    assert not bad.any(), (what, n_in, sorted(set(OUTS[bad].tolist()))[:5])
    return len(np.unique(OUTS[diff]))


def test_one_rule_on_every_pair_and_torch_differs_only_at_ties():
    """Every pair n_in -> n_out in 1..2048 -> 1..256:

    1. the helper is its definition: src(i) is the source pixel whose cell [src, src + 1) holds
       the centre (i + 0.5) n_in / n_out, as the inequality 2 n_out src <= (2i + 1) n_in <
       2 n_out (src + 1) (independent of the helper's floor formula);
    2. torch's nearest-exact, its 1-D kernel (1, 1, L) and its 2-D kernel (1, 1, H, 1) (what image
       code calls), equals the helper except at ties: where the exact source coordinate is an
       integer and float32 lands just below it. No pair here comes closer than 1 / 512 to an
       integer without being one, far above float32's error (about 2.5e-4 at 2048), so any other
       disagreement is a real bug in one of the two and fails.
    """
    moved = {"1d": 0, "2d": 0}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 10^6 tiny calls: thread start-up would cost more than the work
    try:
        with torch.inference_mode():
            for n_in in range(1, N_IN + 1):
                src = _helper_all(n_in)
                centre2 = (2 * IDX + 1) * n_in  # 2 n_out times the centre, an integer
                assert ((2 * OUTS * src <= centre2) & (centre2 < 2 * OUTS * (src + 1))).all(), n_in
                x = torch.arange(n_in, dtype=torch.float32)[None, None]
                got = torch.cat([_torch_1d(x, n) for n in range(1, N_OUT + 1)], dim=2).long().view(-1).numpy()
                moved["1d"] += _assert_ties_only(got, src, n_in, "1d")
                x = x[..., None]
                got = torch.cat([_torch_2d(x, (n, 1)) for n in range(1, N_OUT + 1)], dim=2).long().view(-1).numpy()
                moved["2d"] += _assert_ties_only(got, src, n_in, "2d")
    finally:
        torch.set_num_threads(threads)
    # ties only: a few percent of the pairs, not another rule (measured: docs/fidelity.md)
    assert max(moved.values()) < N_IN * N_OUT // 20, moved
    assert _nearest.nearest_exact_index(2, 3).tolist() == [0, 1, 1]
    assert _nearest.nearest_exact_index(1024, 41)[20] == 512  # centre exactly 512.0: a tie
    with pytest.raises(ValueError, match="positive"):
        _nearest.nearest_exact_index(0, 3)


def test_the_direct_ops_are_f_interpolate():
    rng = np.random.default_rng(2)
    with torch.inference_mode():
        for n_in, n_out in [(1024, 41), (2, 41), *zip(rng.integers(1, N_IN + 1, 200), rng.integers(1, N_OUT + 1, 200))]:
            x = torch.arange(int(n_in), dtype=torch.float32)[None, None]
            assert torch.equal(_torch_1d(x, int(n_out)), F.interpolate(x, size=int(n_out), mode="nearest-exact"))
            x = x[..., None]
            size = (int(n_out), 1)
            assert torch.equal(_torch_2d(x, size), F.interpolate(x, size=size, mode="nearest-exact"))


def test_torch_2d_columns_follow_the_same_property():
    """The width axis of the 2-D kernel (1, 1, 1, W), on a sample of pairs (rows are exhaustive)."""
    rng = np.random.default_rng(0)
    with torch.inference_mode():
        for n_in, n_out in zip(rng.integers(1, N_IN + 1, 3000), rng.integers(1, N_OUT + 1, 3000)):
            n_in, n_out = int(n_in), int(n_out)
            x = torch.arange(n_in, dtype=torch.float32)[None, None, None]
            got = F.interpolate(x, size=(1, n_out), mode="nearest-exact")[0, 0, 0].long().numpy()
            src = _nearest.nearest_exact_index(n_in, n_out)
            i = np.arange(n_out)
            diff = got != src
            assert ((((2 * i + 1) * n_in) % (2 * n_out) == 0)[diff] & (got[diff] == src[diff] - 1)).all(), (n_in, n_out)


def test_published_sizes_have_no_ties_torch_breaks():
    """The published recipe resizes labels to 1024 (2048 for COCO-Object) with torchvision's
    NEAREST_EXACT, i.e. torch's 2-D kernel: at those powers of two torch's float32 arithmetic is
    exact, so the helper equals the published loader on every crop side up to 4096."""
    with torch.inference_mode():
        for n_out in (1024, 2048):
            for n_in in range(1, 4097):
                x = torch.arange(n_in, dtype=torch.float32)[None, None, :, None]
                got = F.interpolate(x, size=(n_out, 1), mode="nearest-exact")[0, 0, :, 0].long().numpy()
                assert np.array_equal(got, _nearest.nearest_exact_index(n_in, n_out)), (n_in, n_out)


def test_torch_nearest_rule_is_torch_plain_nearest():
    """The published unsupervised script's second resize (F.interpolate's default "nearest")."""
    rng = np.random.default_rng(1)
    with torch.inference_mode():
        for n_in, n_out in [(1024, 128), (2048, 128), (2, 82), *zip(rng.integers(1, 2049, 300),
                                                                    rng.integers(1, 2049, 300))]:
            x = torch.arange(int(n_in), dtype=torch.float32)[None, None, :, None]
            ref = F.interpolate(x, size=(int(n_out), 1), mode="nearest")[0, 0, :, 0].long().numpy()
            assert np.array_equal(_nearest.torch_nearest_index(int(n_in), int(n_out)), ref), (n_in, n_out)


# -- the three callers use it --------------------------------------------------------------------
def _old_float64_rule(n_in: int, n_out: int) -> np.ndarray:
    """The rule `_dense` and `_published` had before: floor((i + 0.5) * (n_in / n_out)) in float64."""
    return np.minimum(np.floor((np.arange(n_out) + 0.5) * (n_in / n_out)).astype(np.int64), n_in - 1)


# pairs where the old float64 rule and the exact rule differ (ties float64 rounds down)
MOVED = [(n_in, n_out) for n_in, n_out in [(122, 7), (768, 44), (1000, 19), (512, 49), (2, 49)]
         if not np.array_equal(_old_float64_rule(n_in, n_out), _nearest.nearest_exact_index(n_in, n_out))]


def test_moved_pairs_exist():
    assert len(MOVED) == 5, MOVED  # else the caller tests below could not tell the rules apart


@pytest.fixture
def spy(monkeypatch):
    calls = []
    real = _nearest.nearest_exact_index

    def recording(n_in, n_out):
        calls.append((n_in, n_out))
        return real(n_in, n_out)

    monkeypatch.setattr(_nearest, "nearest_exact_index", recording)
    return calls


def test_label_maps_use_the_helper(spy):
    from ovseg import io as ovio

    assert ovio.resize_nearest is _nearest.resize_nearest
    for n_in, n_out in MOVED:
        lab = np.arange(n_in * 3).reshape(n_in, 3)
        out = ovio.resize_nearest(lab, (n_out, 3))
        assert np.array_equal(out[:, 0] // 3, _nearest.nearest_exact_index(n_in, n_out))
    assert (MOVED[0][0], MOVED[0][1]) in spy


def test_labeler_masks_use_the_helper(spy):
    from ovseg.labels._dense import binary_segment_masks

    for n_in, n_out in MOVED:
        segments = torch.arange(n_in)[:, None].repeat(1, 2)  # one segment per row
        ids, masks = binary_segment_masks(segments, (n_out, 1))
        sampled = ids[(masks[:, :, 0] == 1).float().argmax(0)].numpy()  # the row each cell took
        assert np.array_equal(sampled, _nearest.nearest_exact_index(n_in, n_out)), (n_in, n_out)
        assert not np.array_equal(sampled, _old_float64_rule(n_in, n_out))
    assert (MOVED[0][0], MOVED[0][1]) in spy


def test_published_recipe_uses_the_helper(spy):
    from ovseg.evaluation._published import nearest, nearest_exact

    for n_in, n_out in MOVED:
        lab = np.arange(n_in)[:, None].repeat(2, 1)
        assert np.array_equal(nearest_exact(lab, (n_out, 1))[:, 0], _nearest.nearest_exact_index(n_in, n_out))
    assert (MOVED[0][0], MOVED[0][1]) in spy
    lab = np.arange(2)[:, None]
    assert nearest(lab, (82, 1))[:, 0].tolist() == _nearest.torch_nearest_index(2, 82).tolist()


# -- one nearest resize, and its callers (was tests/commands/test_one_helper.py) ----------------------
def test_resize_modes_on_two_to_three_rows():
    lab = np.array([[0], [1]])
    assert _io.resize_nearest(lab, (3, 1))[:, 0].tolist() == [0, 1, 1]  # pixel centres
    assert _io.resize_nearest(lab, (3, 1), mode="torch")[:, 0].tolist() == [0, 0, 1]
    assert _io.resize_nearest(lab, (3, 1), mode="floor")[:, 0].tolist() == [0, 0, 1]
    with pytest.raises(ValueError, match="mode"):
        _io.resize_nearest(lab, (3, 1), mode="bilinear")


def test_torch_mode_is_torch_nearest_bit_for_bit():
    for n_in in (1, 2, 3, 7, 21, 33, 375, 500):
        x = torch.arange(n_in, dtype=torch.float32)[None, None, :, None]
        for n_out in (1, 2, 5, 82, 94, 110, 224, 320, 394, 448, 1000):
            ref = F.interpolate(x, size=(n_out, 1), mode="nearest")[0, 0, :, 0].long().numpy()
            assert (_io.nearest_indices(n_in, n_out, "torch") == ref).all(), (n_in, n_out)
            exact = np.minimum(np.arange(n_out) * n_in // n_out, n_in - 1)
            assert (_io.nearest_indices(n_in, n_out, "floor") == exact).all()


def test_evaluation_and_coherence_use_the_one_resize():
    from ovseg.coherence._inputs import grid_cells
    from ovseg.evaluation import _runner

    assert getattr(_runner, "resize_nearest", _io.resize_nearest) is _io.resize_nearest
    cells = grid_cells((394, 5), (2, 3))  # 2 -> 394 rows: exact integers
    rows = np.arange(394) * 2 // 394
    cols = np.minimum(np.arange(5) * 3 // 5, 2)
    assert (cells == rows[:, None] * 3 + cols[None, :]).all()
