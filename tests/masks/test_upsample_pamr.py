"""Full-resolution concept assignment and PAMR on synthetic inputs with known answers."""
import warnings

import pytest
import torch
import torch.nn.functional as F

from ovseg.masks.pamr import PAMRConfig, median_filter_labels, mode_filter_labels, pamr, pamr_affinity
from ovseg.masks.upsample import assign_concepts, concept_embeddings, interpolation_matrix


def _planted(h=7, w=9, C=32, noise=0.01, seed=0):
    """Low-res features with 4 planted stripes (ids 3, 10, 42, 5) and their id map.

    Stripes, because bilinear upsampling rounds convex corners (a pixel diagonal to a corner cell
    has more weight on the other region): that is the method, so corners have no exact answer.
    """
    g = torch.Generator().manual_seed(seed)
    seg = torch.full((h, w), 3, dtype=torch.int64)
    seg[:, 2:5] = 10
    seg[:, 5:7] = 42
    seg[:, 7:] = 5
    ids = torch.tensor([3, 10, 42, 5])
    protos = torch.linalg.qr(torch.randn(C, 4, generator=g))[0].T  # orthonormal prototypes
    index = (seg[..., None] == ids).float().argmax(-1)
    feats = protos[index].permute(2, 0, 1) + noise * torch.randn(C, h, w, generator=g)
    return 2.5 * feats, seg  # any scale: features are normalised inside


def _nearest(seg, size):
    return F.interpolate(seg[None, None].float(), size=size, mode="nearest-exact")[0, 0].long()


def test_interpolation_matrix_matches_bilinear():
    g = torch.Generator().manual_seed(1)
    Z = torch.randn(5, 6, generator=g)
    for H, W in [(20, 24), (13, 17), (3, 4)]:
        ref = F.interpolate(Z[None, None], size=(H, W), mode="bilinear", align_corners=False)[0, 0]
        mine = interpolation_matrix(5, H) @ Z @ interpolation_matrix(6, W).T
        torch.testing.assert_close(mine, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("size", [(28, 36), (23, 31)])  # 4x, and a non-integer scale with no ties
def test_assign_concepts_recovers_planted_regions(size):
    feats, seg = _planted()
    out = assign_concepts(feats, seg, size, chunk_rows=5)
    assert out.shape == size and out.dtype == torch.int64
    assert torch.equal(out, _nearest(seg, size))  # same regions, same (non-contiguous) ids


def test_assign_concepts_equals_dense_reference_and_batches():
    g = torch.Generator().manual_seed(2)
    feats = torch.randn(2, 16, 6, 8, generator=g)
    segs = torch.randint(0, 5, (2, 6, 8), generator=g) * 2
    out = assign_concepts(feats, segs, (19, 25), chunk_rows=4)
    for b in range(2):
        ids, concepts = concept_embeddings(feats[b], segs[b])
        up = F.interpolate(F.normalize(feats[b], dim=0)[None], size=(19, 25), mode="bilinear")[0]
        ref = ids[torch.einsum("kc,chw->khw", concepts, up).argmax(0)]
        assert torch.equal(out[b], ref)
        assert set(out[b].unique().tolist()) <= set(segs[b].unique().tolist())


def test_assign_concepts_rejects_bad_input():
    feats, seg = _planted()
    with pytest.raises(ValueError, match="segments"):
        assign_concepts(feats, seg[:-1], (10, 10))
    with pytest.raises(TypeError, match="integer"):
        assign_concepts(feats, seg.float(), (10, 10))
    with pytest.raises(ValueError, match=r"\(C, h, w\)"):
        assign_concepts(feats[0], seg, (10, 10))


def _edge_image(H=32, W=40, col=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    img = torch.empty(3, H, W)
    img[:, :, :col] = torch.tensor([0.2, 0.5, 0.3])[:, None, None]
    img[:, :, col:] = torch.tensor([0.8, 0.3, 0.6])[:, None, None]
    return (img + 0.02 * torch.randn(3, H, W, generator=g)).clamp(0, 1)


@pytest.mark.parametrize("offset", [-5, -3, 3, 5])
def test_pamr_pulls_boundary_onto_image_edge(offset):
    img = _edge_image()
    seg = torch.full((32, 40), 2, dtype=torch.int64)
    seg[:, 20 + offset :] = 9
    out = pamr(img, seg)
    first = torch.stack([(row == 9).float().argmax() for row in out])  # first column labelled 9
    assert (first - 20).abs().max() <= 1
    assert set(out.unique().tolist()) == {2, 9}


def test_pamr_keeps_correct_segmentation():
    H, W = 48, 48
    yy, xx = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    seg = torch.zeros(H, W, dtype=torch.int64)
    seg[:, 16:32] = 1
    seg[:, 32:] = 4
    disk = (yy - 24) ** 2 + (xx - 24) ** 2 < 10**2
    seg[disk] = 7
    colours = {0: (0.1, 0.1, 0.9), 1: (0.9, 0.2, 0.1), 4: (0.3, 0.8, 0.3), 7: (0.9, 0.9, 0.2)}
    img = torch.zeros(3, H, W)
    for k, c in colours.items():
        img[:, seg == k] = torch.tensor(c)[:, None]
    img = (img + 0.02 * torch.randn(3, H, W, generator=torch.Generator().manual_seed(3))).clamp(0, 1)
    raw = pamr(img, seg, config=PAMRConfig(iterations=10, dilations=(1, 2, 4, 8), label_filter="none"))
    assert torch.equal(raw, seg)  # the propagation itself changes nothing
    # a 3x3 filter flips lone staircase pixels of the digital disk, and only those
    out = pamr(img, seg)
    changed = out != seg
    assert changed.sum() <= 8
    dist = ((yy - 24) ** 2 + (xx - 24) ** 2).float().sqrt()
    assert ((dist[changed] - 10).abs() < 2).all()


def test_mode_filter_unlike_median_never_invents_a_minority_label():
    labels = torch.tensor([[1, 1, 7], [1, 1, 7], [4, 4, 7]])  # centre 1: four 1, three 7, two 4
    assert mode_filter_labels(labels)[1, 1] == 1
    assert median_filter_labels(labels)[1, 1] == 4  # the median of the ids is a minority label


def test_pamr_affinity_is_a_distribution_and_median_filter():
    img = _edge_image(16, 16, 8)
    a = pamr_affinity(img, (1, 2))
    assert a.shape == (16, 16, 16)
    torch.testing.assert_close(a.sum(0), torch.ones(16, 16))
    labels = torch.zeros(9, 9, dtype=torch.int64)
    labels[4, 4] = 5  # an isolated pixel disappears, a stripe stays
    labels[:, 7:] = 3
    for filt in (median_filter_labels, mode_filter_labels):
        out = filt(labels)
        assert out[4, 4] == 0 and (out[:, 7:] == 3).all() and (out[:, :7] == 0).all()


def test_pamr_config_presets_and_errors():
    assert PAMRConfig() == PAMRConfig(10, (1, 2, 4, 8), "median")  # DiffCut's filter by default
    assert PAMRConfig.open_vocabulary() == PAMRConfig(15, (1, 2, 4, 8, 12, 24, 32, 64), "median")
    assert PAMRConfig.demo().dilations == (1, 2, 4, 8, 12, 24, 32, 64)
    with pytest.raises(ValueError, match="segments"):
        pamr(torch.rand(3, 8, 8), torch.zeros(8, 9, dtype=torch.int64))
    with pytest.raises(ValueError, match="dilations"):
        pamr(torch.rand(3, 8, 8), torch.zeros(8, 8, dtype=torch.int64), dilations=(0,))
    with pytest.raises(ValueError, match="label_filter"):
        pamr(torch.rand(3, 8, 8), torch.zeros(8, 8, dtype=torch.int64), label_filter="mean")


def test_refine_segments_is_concept_assignment_then_pamr():
    from ovseg.masks import PAMRConfig, assign_concepts, pamr, refine_segments

    g = torch.Generator().manual_seed(3)
    feats = torch.randn(6, 4, 5, generator=g)
    segments = (torch.arange(20).reshape(4, 5) % 3).long()
    image = torch.rand(3, 16, 20, generator=g)
    plain = assign_concepts(feats, segments, size=(16, 20))
    assert torch.equal(refine_segments(feats, segments, image, refine=None), plain)
    config = PAMRConfig(iterations=3, dilations=(1, 2))
    assert torch.equal(refine_segments(feats, segments, image, refine=config),
                       pamr(image, plain, config=config))


def _pamr_reference(image, segments, config):
    """The code before cache blocking: whole-image affinities, 8D addcmul_ passes per step."""
    from ovseg.masks.pamr import _FILTERS, _pamr_affinity_reference, _propagate_reference

    ids, inverse = torch.unique(segments.reshape(-1), return_inverse=True)
    alpha = _pamr_affinity_reference(image, config.dilations)
    m = F.one_hot(inverse.reshape(segments.shape), ids.numel()).permute(2, 0, 1).float()
    m = _propagate_reference(m, alpha, config.dilations, config.iterations)
    return ids[_FILTERS[config.label_filter](m.argmax(0))]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("label_filter", ["mode", "median", "none"])
def test_pamr_fast_path_equals_reference(seed, label_filter):
    g = torch.Generator().manual_seed(seed)
    H, W = (23, 37) if seed != 2 else (41, 19)
    image = torch.rand(3, H, W, generator=g)
    coarse = torch.randint(0, 6, (4, 5), generator=g) * 3 + 1  # blocky ids, not 0..K-1
    segments = F.interpolate(coarse[None, None].float(), size=(H, W), mode="nearest")[0, 0].long()
    dilations = [(1, 2, 4, 8), (1, 2, 4, 8, 12, 24, 32, 64), (1, 3)][seed]
    config = PAMRConfig(iterations=6, dilations=dilations, label_filter=label_filter)
    ref = _pamr_reference(image, segments, config)
    assert torch.equal(pamr(image, segments, config=config), ref)
    assert torch.equal(pamr(image, segments, config=config, workers=1), ref)  # single-thread path
    assert torch.equal(pamr(image, segments, config=config, block_rows=5, workers=3), ref)


@pytest.mark.parametrize("block_rows,workers", [(None, None), (None, 1), (1, 2), (4, 3), (1000, 1)])
def test_propagate_is_bit_identical_to_reference(block_rows, workers):
    from ovseg.masks.pamr import _pamr_affinity_reference, _propagate_reference, propagate

    g = torch.Generator().manual_seed(7)
    H, W, K = 29, 300, 7  # default CPU blocks: 15 rows; at K = 120 below they split columns too
    image = torch.rand(3, H, W, generator=g)
    dilations = (1, 2, 4, 8, 12, 24, 32, 64)
    alpha = pamr_affinity(image, dilations, workers=workers)
    assert torch.equal(alpha, _pamr_affinity_reference(image, dilations))  # Eq. 5-6, same bits
    m = torch.softmax(4 * torch.randn(K, H, W, generator=g), 0)  # soft masks, not only one-hot
    ref = _propagate_reference(m, alpha, dilations, 4)
    out = propagate(m, alpha, dilations, 4, block_rows=block_rows, workers=workers)
    assert torch.equal(out, ref)  # same products, same per-pixel summation order
    m = torch.softmax(torch.randn(120, 9, 300, generator=g), 0)  # K = 120: column-split blocks
    a = pamr_affinity(image[:, :9], (1, 2))
    assert torch.equal(propagate(m, a, (1, 2), 2, workers=workers), _propagate_reference(m, a, (1, 2), 2))


def test_propagate_zero_iterations_and_a_wrong_input_fail_cleanly():
    from ovseg.masks.pamr import propagate

    m = torch.rand(3, 5, 6)
    a = pamr_affinity(torch.rand(3, 5, 6), (1,))
    assert torch.equal(propagate(m, a, (1,), 0), m)
    for kernel in ("torch", "numba"):  # checked before any kernel runs (Numba's has no bounds checks)
        with pytest.raises(ValueError, match="alpha"):
            propagate(torch.rand(3, 5, 7), a, (1,), 1, kernel=kernel)
        with pytest.raises(ValueError, match="alpha"):
            propagate(m, a, (1, 2), 1, kernel=kernel)


def test_threaded_pamr_under_inference_mode():
    """The pipeline runs PAMR under torch.inference_mode; worker threads must write into the
    tensors made there (inference mode is per thread in torch)."""
    g = torch.Generator().manual_seed(3)
    image = torch.rand(3, 40, 900, generator=g)  # > 1 block of rows: the threaded path
    segments = (torch.arange(900) // 300).expand(40, 900).contiguous()
    with torch.inference_mode():
        threaded = pamr(image, segments, iterations=2, workers=2)
    assert torch.equal(threaded, pamr(image, segments, iterations=2, workers=1))


def _soft_masks(K, H, W, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(4 * torch.randn(K, H, W, generator=g), 0), torch.rand(3, H, W, generator=g)


@pytest.mark.parametrize("K,H,W,dilations", [(1, 9, 13, (1,)), (2, 17, 31, (1, 2, 4, 8)),
                                             (5, 29, 70, (1, 2, 4, 8, 12, 24, 32, 64)),
                                             (7, 40, 33, (1, 3)), (20, 24, 64, (1, 2, 4, 8))])
def test_numba_kernel_equals_reference(K, H, W, dilations):
    """The fused kernel adds the same products in the same per-pixel order as the reference; K not
    a multiple of its 4-mask groups, dilations larger than the image. Bit-identical on the
    development CPU; the assertion allows float rounding (another CPU may fuse differently)."""
    pytest.importorskip("numba")
    from ovseg.masks.pamr import _propagate_reference, propagate

    m, image = _soft_masks(K, H, W, seed=K)
    alpha = pamr_affinity(image, dilations)
    ref = _propagate_reference(m, alpha, dilations, 5)
    out = propagate(m, alpha, dilations, 5, kernel="numba")
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    assert (out.argmax(0) == ref.argmax(0)).float().mean() >= 0.999
    assert torch.equal(propagate(m, alpha, dilations, 0, kernel="numba"), m)


def test_pamr_default_kernel_is_numba_on_cpu_and_labels_match(monkeypatch):
    pytest.importorskip("numba")
    from ovseg.masks import pamr_kernel as _pamr_kernel

    calls = []
    real = _pamr_kernel.numba_steps
    monkeypatch.setattr(_pamr_kernel, "numba_steps", lambda *a: calls.append(1) or real(*a))
    g = torch.Generator().manual_seed(5)
    image = torch.rand(3, 48, 64, generator=g)
    segments = (torch.arange(64) // 16).expand(48, 64).contiguous()
    with torch.inference_mode():  # the pipeline's mode: the kernel writes into inference tensors
        fast = pamr(image, segments, config=PAMRConfig.demo(6))
    assert calls == [1]
    assert torch.equal(fast, pamr(image, segments, config=PAMRConfig.demo(6), kernel="torch"))
    assert torch.equal(fast, _pamr_reference(image, segments, PAMRConfig.demo(6)))


def test_pamr_without_numba_falls_back_to_torch_with_one_warning(monkeypatch):
    """No Numba (or a failed compile): the torch path, one RuntimeWarning; OVSEG_PAMR_KERNEL
    chooses the path, and asking for Numba when it is missing is an error that says why."""
    from ovseg.masks import pamr_kernel as _pamr_kernel

    monkeypatch.setattr(_pamr_kernel, "_state", {"kernel": None, "error": "ImportError: No module named 'numba'"})
    g = torch.Generator().manual_seed(6)
    image = torch.rand(3, 20, 30, generator=g)
    segments = (torch.arange(30) // 10).expand(20, 30).contiguous()
    config = PAMRConfig(iterations=3)
    ref = _pamr_reference(image, segments, config)
    with pytest.warns(RuntimeWarning, match="Numba kernel is unavailable.*numba"):
        assert torch.equal(pamr(image, segments, config=config), ref)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per process, not per image
        assert torch.equal(pamr(image, segments, config=config), ref)
    monkeypatch.setenv("OVSEG_PAMR_KERNEL", "numba")
    with pytest.raises(RuntimeError, match="OVSEG_PAMR_KERNEL=numba.*ImportError"):
        pamr(image, segments, config=config)
    monkeypatch.setenv("OVSEG_PAMR_KERNEL", "fast")
    with pytest.raises(ValueError, match="OVSEG_PAMR_KERNEL"):
        pamr(image, segments, config=config)
    monkeypatch.setattr(_pamr_kernel, "_state", {})  # a working Numba, but switched off
    monkeypatch.setattr(_pamr_kernel, "_compile", lambda: pytest.fail("compiled although switched off"))
    monkeypatch.setenv("OVSEG_PAMR_KERNEL", "torch")
    assert torch.equal(pamr(image, segments, config=config), ref)
    with pytest.raises(ValueError, match="kernel must be"):
        pamr(image, segments, config=config, kernel="cuda")


def test_importing_the_masks_does_not_import_numba():
    """Numba (a second or two to import) loads when PAMR first runs, not with ovseg.masks."""
    import subprocess
    import sys

    code = "import sys, ovseg.masks, ovseg.pipeline; assert 'numba' not in sys.modules, 'numba imported'"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
