"""Coherence: heatmaps, the pair AUC, the figure and the CLI, with synthetic backbones whose
answer is known (one-hot class features -> perfect separation, noise -> chance)."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image

import ovseg
from ovseg.coherence import (
    Point,
    coherence_scores,
    format_table,
    load_mask,
    parse_point,
    patch_labels,
    plot_similarity,
    read_pairs,
    roc_auc,
    sample_pairs,
    save_scores,
    similarity_maps,
)
from ovseg.commands.coherence import coherence_command

K = 4          # classes in the synthetic scenes
STRIDE = 8
IGNORE = 255


class OneHotBackbone(torch.nn.Module):
    """Reads the class painted in the red channel (value = class / 10) of each cell: features are
    the one-hot class, so cosine similarity is 1 within a class and 0 across classes."""

    name, stride, resolution, feature_dim = "onehot", STRIDE, None, 10

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        classes = (F.avg_pool2d(images[:, :1], STRIDE) * 10).round().long().squeeze(1)
        return F.one_hot(classes.clamp(0, 9), 10).permute(0, 3, 1, 2).float()


class NoiseBackbone(torch.nn.Module):
    """Features unrelated to the image: seeded Gaussian noise."""

    name, stride, resolution, feature_dim = "noise", STRIDE, None, 16

    def __init__(self, seed: int = 0):
        super().__init__()
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        b, _, h, w = images.shape
        return torch.randn(b, 16, h // STRIDE, w // STRIDE, generator=self.generator)


def make_scene(rng: np.random.Generator, cells: int = 8, ignore_fraction: float = 0.1):
    """A (3, H, W) image and its (H, W) class map, classes constant on STRIDE x STRIDE blocks."""
    grid = rng.integers(0, K, size=(cells, cells))
    grid[rng.random((cells, cells)) < ignore_fraction] = IGNORE
    mask = np.kron(grid, np.ones((STRIDE, STRIDE), dtype=np.int64))
    red = np.where(mask == IGNORE, 9, mask) / 10.0
    image = torch.stack([torch.from_numpy(red).float(), torch.rand(*mask.shape), torch.zeros(*mask.shape)])
    return image, mask


@pytest.fixture(scope="module")
def scenes():
    rng = np.random.default_rng(0)
    return [make_scene(rng, cells=16) for _ in range(4)]


# ---------------------------------------------------------------- the AUC itself

def brute_force_auc(scores, positive):
    pos, neg = scores[positive], scores[~positive]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_equals_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 5, size=40).astype(float)  # few distinct values: many ties
    positive = rng.random(40) < 0.4
    assert roc_auc(scores, positive) == pytest.approx(brute_force_auc(scores, positive), abs=1e-12)


def test_auc_extremes_and_undefined():
    assert roc_auc(np.array([0.9, 0.8, 0.1, 0.2]), np.array([1, 1, 0, 0], bool)) == 1.0
    assert roc_auc(np.array([0.1, 0.2, 0.9, 0.8]), np.array([1, 1, 0, 0], bool)) == 0.0
    assert roc_auc(np.ones(4), np.array([1, 0, 1, 0], bool)) == 0.5
    assert np.isnan(roc_auc(np.ones(3), np.ones(3, bool)))
    with pytest.raises(ValueError, match="differ"):
        roc_auc(np.ones(3), np.ones(4, bool))


def test_patch_labels_majority_and_ignore():
    mask = np.zeros((4, 4), np.int64)
    mask[:2, 2:] = [[1, 1], [1, 2]]          # top-right cell: majority 1
    mask[2:, :2] = IGNORE                    # bottom-left cell: all ignore -> dropped
    mask[2:, 2:] = [[3, 3], [IGNORE, IGNORE]]  # tie 3 vs 255 -> smaller id (3) wins
    assert patch_labels(mask, (2, 2), IGNORE).tolist() == [0, 1, -1, 3]
    assert patch_labels(mask, (2, 2), None).tolist() == [0, 1, IGNORE, 3]


def test_sample_pairs_distinct_uniform_and_seeded():
    i, j = sample_pairs(5, 20000, np.random.default_rng(3))
    assert (i != j).all() and i.max() == 4 and j.max() == 4
    counts = np.bincount(i * 5 + j, minlength=25).reshape(5, 5)
    off_diagonal = counts[~np.eye(5, dtype=bool)]
    assert counts.trace() == 0 and off_diagonal.min() > 0.8 * 1000 and off_diagonal.max() < 1.2 * 1000
    again = sample_pairs(5, 20000, np.random.default_rng(3))
    assert (again[0] == i).all() and (again[1] == j).all()
    assert sample_pairs(1, 10, np.random.default_rng(0))[0].size == 0


# ---------------------------------------------------------------- scores on known backbones

def agreement_counts(gt, seg):
    """Stands in for the Hungarian matching in the wiring test: one pseudo-class whose TP are the
    scored pixels where segment id == class id, FN the others (so mIoU = pixel agreement)."""
    scored = gt >= 0
    hits = int((seg == gt)[scored].sum())
    return np.array([[hits], [0], [int(scored.sum()) - hits]])


def test_onehot_backbone_separates_perfectly_and_noise_is_chance(scenes):
    def segment(feats):  # (1, C, h, w) -> (h, w): the class each one-hot cell encodes
        return feats[0].argmax(0)

    scores = coherence_scores(scenes, {"onehot": OneHotBackbone(), "noise": NoiseBackbone()},
                              num_pairs=3000, seed=0, segment_fn=segment, counts_fn=agreement_counts)
    onehot, noise = scores
    assert onehot.auc == 1.0 and onehot.cross_auc == 1.0
    assert onehot.mean_positive == pytest.approx(1.0) and onehot.mean_negative == pytest.approx(0.0)
    assert onehot.miou == pytest.approx(1.0)  # segments reach the mask cell by cell
    assert abs(noise.auc - 0.5) < 0.05 and abs(noise.cross_auc - 0.5) < 0.05
    assert onehot.positive_pairs + onehot.negative_pairs == 4 * 3000
    assert onehot.positive_pairs > 1000 and onehot.negative_pairs > 1000
    table = format_table(scores)
    assert "onehot" in table and "1.0000" in table


def test_scores_are_reproducible_and_seed_dependent(scenes):
    run = lambda seed: coherence_scores(scenes[:2], [NoiseBackbone(1)], num_pairs=500,  # noqa: E731
                                        seed=seed, miou=False)[0]
    a, b, c = run(0), run(0), run(1)
    assert a == b and a.miou is None
    assert (a.positive_pairs, a.auc) != (c.positive_pairs, c.auc)


def test_score_input_errors(scenes):
    image, mask = scenes[0]
    with pytest.raises(ValueError, match="mask"):
        coherence_scores([(image, mask[:-8])], [OneHotBackbone()], miou=False)
    with pytest.raises(ValueError, match="no \\(image, mask\\) pairs"):
        coherence_scores([], [OneHotBackbone()])
    with pytest.raises(ValueError, match=r"\(1, C, h, w\)"):
        coherence_scores([(image, mask)], [lambda x: x[0]], miou=False)


def test_save_scores_writes_csv_json_png(scenes, tmp_path):
    scores = coherence_scores(scenes[:1], [OneHotBackbone()], num_pairs=200, miou=False)
    paths = save_scores(scores, tmp_path, meta={"seed": 0})
    assert paths["csv"].read_text().splitlines()[0].startswith("backbone,auc,cross_auc,miou")
    payload = json.loads(paths["json"].read_text())
    assert payload["scores"][0]["auc"] == 1.0 and payload["settings"] == {"seed": 0}
    with Image.open(paths["png"]) as png:
        assert png.size[0] > 100


# ---------------------------------------------------------------- heatmaps and the figure

def test_similarity_maps_follow_the_class(scenes):
    image, mask = scenes[0]
    target, target_mask = scenes[1]
    point = (3 * STRIDE + 2, 5 * STRIDE + 1)  # pixels (x, y) -> cell (row 5, col 3)
    maps = similarity_maps(image, target, [OneHotBackbone()], point)
    m = maps["onehot"]
    assert m.cell == (5, 3) and m.point == (float(point[0]), float(point[1]))
    cls = mask[5 * STRIDE, 3 * STRIDE]
    cell_classes = lambda msk: torch.from_numpy(msk[::STRIDE, ::STRIDE])  # noqa: E731
    assert torch.equal(m.reference == 1.0, cell_classes(mask) == cls)
    assert torch.equal(m.target == 1.0, cell_classes(target_mask) == cls)


@pytest.mark.parametrize("with_target", [True, False])
def test_figure_has_a_row_per_backbone(scenes, tmp_path, with_target):
    image, target = scenes[0][0], (scenes[1][0] if with_target else None)
    backbones = {"a": OneHotBackbone(), "b": NoiseBackbone(), "c": OneHotBackbone()}
    maps = similarity_maps(image, target, backbones, "0.5,0.4")
    out = tmp_path / "fig.png"
    fig = plot_similarity(maps, image, target, out=out)
    columns = 3 if with_target else 2
    assert len(fig.axes) == 3 * (columns + 1) + 1  # per row its name and the panels, then the colour bar
    assert [ax.texts[0].get_text() for ax in fig.axes[: 3 * (columns + 1) : columns + 1]] == ["a", "b", "c"]
    with Image.open(out) as png:
        png.verify()
    with pytest.raises(ValueError, match="target"):
        plot_similarity(maps, image, None if with_target else image)


def test_the_figure_names_each_row_inside_it_and_leaves_no_gap(tmp_path):
    """Issue 31 item 2: each row's backbone is written in the figure, whole, inside the canvas
    (the rendered text, read back from the figure's Text artists and from its SVG), and the
    panels follow each other evenly, also when the target's aspect is not the reference's."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from ovseg.coherence._heatmap import SimilarityMaps

    wide = np.zeros((300, 451, 3), np.uint8)  # chelsea's aspect, and a square target
    square = np.zeros((512, 512, 3), np.uint8)
    names = ["efficientnet-lite0", "efficientnet-lite2"]
    maps = {n: SimilarityMaps(n, torch.rand(28, 28), torch.rand(28, 28), (14, 14), (225.0, 150.0)) for n in names}
    fig = plot_similarity(maps, wide, square)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    texts = [t for ax in fig.axes for t in ax.texts if t.get_text() in names]
    assert sorted(t.get_text() for t in texts) == names
    box = fig.bbox
    for t in texts:
        e = t.get_window_extent(renderer)
        assert box.x0 <= e.x0 and e.x1 <= box.x1 and box.y0 <= e.y0 and e.y1 <= box.y1, (t.get_text(), e)
    columns = 4  # the name, reference, similarity: reference, similarity: target
    for row in range(2):
        panels = [fig.axes[row * columns + c].get_window_extent(renderer) for c in range(1, columns)]
        gaps = [b.x0 - a.x1 for a, b in zip(panels, panels[1:])]
        assert max(gaps) - min(gaps) < 5 and max(gaps) < 20, gaps  # no wide gap before the target
    svg = tmp_path / "fig.svg"
    fig.savefig(svg, format="svg")
    text = svg.read_text()
    assert all(f"<!-- {n} -->" in text for n in names)  # matplotlib writes each text's string


# ---------------------------------------------------------------- points

def test_parse_point_forms():
    assert parse_point("120,80") == Point(120, 80, relative=False)
    assert parse_point(" 0.5 , 0.4 ") == Point(0.5, 0.4, relative=True)
    assert parse_point("50%,40%") == Point(0.5, 0.4, relative=True)
    assert parse_point((3, 4)) == Point(3, 4, relative=False)
    assert parse_point((0.25, 1.0)) == Point(0.25, 1.0, relative=True)
    for bad in ["12", "a,b", "1,2,3", ""]:
        with pytest.raises(ValueError, match="cannot read point"):
            parse_point(bad)
    with pytest.raises(ValueError, match="mixes"):
        parse_point("0.5,10")
    with pytest.raises(TypeError, match="mix"):
        parse_point((0.5, 10))


def test_point_range_and_cells():
    assert Point(1.0, 1.0, relative=True).to_cell(64, 32, (4, 8)) == (3, 7)
    assert Point(0, 0).to_cell(64, 32, (4, 8)) == (0, 0)
    assert Point(63, 31).to_cell(64, 32, (4, 8)) == (3, 7)
    for bad in [Point(64, 0), Point(0, 32), Point(-1, 0), Point(1.2, 0.5, relative=True)]:
        with pytest.raises(ValueError, match="outside|must lie"):
            bad.to_pixels(64, 32)


def test_backbone_labels_must_be_unique(scenes):
    with pytest.raises(ValueError, match="given twice"):
        similarity_maps(scenes[0][0], None, [OneHotBackbone(), OneHotBackbone()], "1,1")
    maps = similarity_maps(scenes[0][0], None, {"a": OneHotBackbone(), "b": OneHotBackbone()}, "1,1")
    assert list(maps) == ["a", "b"]


def test_out_of_range_point_fails_before_any_backbone_runs(scenes):
    def never(images):
        raise AssertionError("the backbone must not run")

    with pytest.raises(ValueError, match="outside the reference image"):
        similarity_maps(scenes[0][0], None, [never], "500,3")


# ---------------------------------------------------------------- files and the CLI

@pytest.fixture(scope="module")
def pairs_dir(scenes, tmp_path_factory):
    folder = tmp_path_factory.mktemp("pairs")
    for n, (image, mask) in enumerate(scenes[:2]):
        array = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(array).save(folder / f"img{n}.bmp")
        Image.fromarray(mask.astype(np.uint8), mode="L").save(folder / f"img{n}.png")
    return folder


def test_read_pairs_and_load_mask(pairs_dir, tmp_path, scenes):
    pairs = read_pairs(pairs_dir)
    assert [(i.name, m.name) for i, m in pairs] == [("img0.bmp", "img0.png"), ("img1.bmp", "img1.png")]
    assert (load_mask(pairs[0][1]) == scenes[0][1]).all()
    Image.new("RGB", (4, 4)).save(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match="single-channel"):
        load_mask(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match="no image/mask pairs"):
        read_pairs(tmp_path)


@pytest.fixture
def fake_factory(monkeypatch):
    made = []

    def create_backbone(name, **kwargs):
        made.append((name, kwargs))
        return {"onehot": OneHotBackbone, "noise": NoiseBackbone}[name]()

    monkeypatch.setitem(vars(ovseg), "create_backbone", create_backbone)  # works before ovseg.features exists
    from ovseg.features import _registry  # the CLI checks names, strides and weights in the registry

    for fake in (OneHotBackbone, NoiseBackbone):  # repo "fake": no hub repo, no weights to find
        info = _registry.BackboneInfo(fake.name, "fake", "0 MB", None, fake.stride, fake.feature_dim)
        monkeypatch.setitem(_registry._REGISTRY, fake.name, (create_backbone, info))
    return made


def test_cli_heatmaps(fake_factory, pairs_dir, tmp_path):
    ref, target = pairs_dir / "img0.bmp", pairs_dir / "img1.bmp"
    out = tmp_path / "fig.png"
    (tmp_path / "dir").mkdir()  # a --weights folder must exist (checked before any model loads)
    result = CliRunner().invoke(coherence_command, [
        str(ref), str(target), "-b", "onehot,noise", "--point", "0.5,0.4", "--out", str(out),
        "--weights", f"onehot={tmp_path / 'dir'}"])
    assert result.exit_code == 0, result.output
    assert fake_factory == [("onehot", {"weights": str(tmp_path / "dir")}), ("noise", {})]
    assert "onehot: cell (6, 8)" in result.output
    with Image.open(out) as png:
        png.verify()


def test_cli_scores(fake_factory, pairs_dir, tmp_path):
    result = CliRunner().invoke(coherence_command, [
        "--pairs", str(pairs_dir), "-b", "onehot,noise", "--num-pairs", "300", "--no-miou",
        "--out", str(tmp_path / "res")])
    assert result.exit_code == 0, result.output
    assert "pair AUC" in result.output and "not measured" in result.output
    rows = json.loads((tmp_path / "res" / "coherence.json").read_text())["scores"]
    assert [r["backbone"] for r in rows] == ["onehot", "noise"] and rows[0]["auc"] == 1.0
    assert (tmp_path / "res" / "coherence.csv").is_file() and (tmp_path / "res" / "coherence.png").is_file()


@pytest.mark.parametrize("args, message", [
    ([], "REF_IMAGE"),
    (["--point", "1,0.5"], "mixes"),
    (["--weights", "onehot"], "NAME=DIR"),
    (["--weights", "other=/x"], "not among the backbones"),
    (["--point", "900,1"], "outside the reference image"),
    (["--out-is-jpg"], "PNG"),
])
def test_cli_errors(fake_factory, pairs_dir, tmp_path, args, message):
    ref = str(pairs_dir / "img0.bmp")
    out = str(tmp_path / "f.png")
    if args == ["--out-is-jpg"]:
        args, out = [], str(tmp_path / "f.jpg")
    argv = ([] if args == [] and message == "REF_IMAGE" else [ref]) + args + ["-b", "onehot", "--out", out]
    result = CliRunner().invoke(coherence_command, argv)
    assert result.exit_code != 0
    assert message in result.output


# ---------------------------------------------------------------- with the real stages

def test_onehot_features_through_the_real_cut_and_matching():
    """Cells of one class have identical features, classes are orthogonal: the cut must find the
    classes exactly, and the evaluation's Hungarian matching must then give mIoU 1."""
    rng = np.random.default_rng(5)
    small = [make_scene(rng, cells=8) for _ in range(2)]  # noise is cut into every cell: keep it small
    onehot, noise = coherence_scores(small, [OneHotBackbone(), NoiseBackbone()], num_pairs=200)
    assert onehot.miou == pytest.approx(1.0)
    assert noise.miou < 0.9


TINY = ["ssd-1b", "dinov2-b", "clip-b16", "siglip-b16"]


@pytest.fixture(scope="module")
def tiny_backbones(tmp_path_factory):
    from ovseg.testing import make_tiny_backbone_weights

    root = tmp_path_factory.mktemp("tiny")
    return {name: make_tiny_backbone_weights(name, root / name) for name in TINY}


def test_tiny_real_backbones_through_the_api(tiny_backbones, scenes, tmp_path):
    image, mask = scenes[0]
    target = scenes[1][0]
    maps = similarity_maps(image, target, ",".join(TINY), "0.5,0.4", resolution=64,
                           weights=tiny_backbones)
    assert list(maps) == TINY
    for m in maps.values():
        assert m.reference.ndim == 2 and torch.isfinite(m.reference).all()
        assert m.reference[m.cell] == pytest.approx(1.0, abs=1e-4)  # a cell is itself
        assert m.target.shape == m.reference.shape
    fig = plot_similarity(maps, image, target, out=tmp_path / "tiny.png")
    assert len(fig.axes) == len(TINY) * 4 + 1
    scores = coherence_scores(scenes[:2], ["dinov2-b"], num_pairs=300, resolution=64,
                              weights={"dinov2-b": tiny_backbones["dinov2-b"]})
    assert 0.0 <= scores[0].auc <= 1.0 and 0.0 <= scores[0].miou <= 1.0


def test_cli_scores_on_a_dataset_layout(fake_factory, tmp_path):
    """--dataset voc reads the VOC layout through the evaluation's reader and scores by its rules."""
    base = tmp_path / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (base / sub).mkdir(parents=True)
    rng = np.random.default_rng(7)
    for n in range(2):
        image, mask = make_scene(rng, cells=8)
        array = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(array).save(base / "JPEGImages" / f"im{n}.jpg", quality=100, subsampling=0)
        Image.fromarray(mask.astype(np.uint8), mode="L").save(base / "SegmentationClass" / f"im{n}.png")
    (base / "ImageSets/Segmentation/val.txt").write_text("im0\nim1\n")
    out = tmp_path / "res"
    result = CliRunner().invoke(coherence_command, [
        "--dataset", "voc", "--data-root", str(tmp_path), "-b", "onehot", "--num-pairs", "200",
        "--out", str(out)])
    assert result.exit_code == 0, result.output
    payload = json.loads((out / "coherence.json").read_text())
    assert payload["settings"]["images"] == 2
    row = payload["scores"][0]
    assert row["auc"] == 1.0 and row["miou"] == pytest.approx(1.0)


def test_cli_with_tiny_real_backbones(tiny_backbones, pairs_dir, tmp_path):
    out = tmp_path / "tiny.png"
    result = CliRunner().invoke(coherence_command, [
        str(pairs_dir / "img0.bmp"), str(pairs_dir / "img1.bmp"), "-b", "dinov2-b,clip-b16",
        "--point", "50%,50%", "--resolution", "112", "--out", str(out),  # strides 14 and 16
        "-w", f"dinov2-b={tiny_backbones['dinov2-b']}", "-w", f"clip-b16={tiny_backbones['clip-b16']}"])
    assert result.exit_code == 0, result.output
    assert "dinov2-b: cell (4, 4) of a (8, 8) grid" in result.output
    with Image.open(out) as png:
        png.verify()


def _save_rotated_jpeg(image: torch.Tensor, path) -> None:
    """Pixels as given, with an EXIF tag telling viewers to rotate them 90 degrees (orientation 6)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    array = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(array).save(path, quality=100, subsampling=0, exif=exif)


def test_pairs_ignore_exif_orientation_as_labels_and_evaluation_do(tmp_path):
    """An EXIF-rotated photo stays aligned with its (unrotated) label map, in dataset and folder mode."""
    from ovseg.coherence import dataset_pairs, load_image

    base = tmp_path / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation", "pairs"):
        (base / sub).mkdir(parents=True)
    image, mask = make_scene(np.random.default_rng(3), cells=8)
    image, mask = image[:, :32], mask[:32]  # 32 x 64: a rotation would change the shape
    _save_rotated_jpeg(image, base / "JPEGImages" / "im0.jpg")
    Image.fromarray(mask.astype(np.uint8), mode="L").save(base / "SegmentationClass" / "im0.png")
    (base / "ImageSets/Segmentation/val.txt").write_text("im0\n")
    _save_rotated_jpeg(image, base / "pairs" / "im0.jpg")
    Image.fromarray(mask.astype(np.uint8), mode="L").save(base / "pairs" / "im0.png")
    assert tuple(load_image(base / "pairs" / "im0.jpg").shape) == (3, 64, 32)  # viewers' orientation

    def segment(feats):
        return feats[0].argmax(0)

    items, options = dataset_pairs("voc", tmp_path)
    for pairs, kw in ((items, options), (read_pairs(base / "pairs"), {})):
        score = coherence_scores(pairs, [OneHotBackbone()], num_pairs=200, segment_fn=segment,
                                 counts_fn=agreement_counts, **kw)[0]
        assert score.auc == 1.0 and score.miou == pytest.approx(1.0)


# ---------------------------------------------------------------- the cut method (registry)

def test_kway_cut_through_the_registry_records_method_and_k():
    """method="kway" in the mIoU path: the registry's K-way cut on the one-hot features finds the
    classes (4 + the ignore colour) with K chosen by its rule, or exactly K with a fixed k; each
    score records the cut's method, k and the K chosen."""
    rng = np.random.default_rng(5)
    small = [make_scene(rng, cells=8) for _ in range(2)]
    auto, = coherence_scores(small, [OneHotBackbone()], num_pairs=200, method="kway")
    assert auto.miou == pytest.approx(1.0)
    assert auto.cut["method"] == "kway" and auto.cut["k"] == "auto" and auto.cut["alpha"] == 10.0
    assert auto.cut["k_chosen_mean"] == auto.cut["segments_mean"] >= 4
    fixed, = coherence_scores(small, [OneHotBackbone()], num_pairs=200, method="kway", method_options={"k": 2})
    assert fixed.cut["k"] == 2 and fixed.cut["k_chosen_mean"] == 2.0 and fixed.miou < auto.miou
    diffcut, = coherence_scores(small, [OneHotBackbone()], num_pairs=200)
    assert diffcut.cut["method"] == "diffcut" and "k" not in diffcut.cut and diffcut.miou == pytest.approx(1.0)
    with pytest.raises(ValueError, match="self-attention"):
        coherence_scores(small, [OneHotBackbone()], method="random-walk")


def test_cli_scores_kway_records_k(fake_factory, pairs_dir, tmp_path):
    result = CliRunner().invoke(coherence_command, [
        "--pairs", str(pairs_dir), "-b", "onehot", "--num-pairs", "300", "--method", "kway", "--k", "3",
        "--out", str(tmp_path / "res")])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "res" / "coherence.json").read_text())
    assert data["settings"]["method"] == "kway" and data["settings"]["k"] == 3
    cut = data["scores"][0]["cut"]
    assert cut["method"] == "kway" and cut["k"] == 3 and cut["k_chosen_mean"] == 3.0
    for argv, message in [(["--method", "random-walk"], "is not one of"), (["--k", "3"], "method kway only"),
                          (["--method", "kway", "--k", "3", "--tau", "0.4"], "--tau"),
                          (["--method", "kway", "--k", "0"], "number of segments")]:
        bad = CliRunner().invoke(coherence_command, ["--pairs", str(pairs_dir), "-b", "onehot", *argv,
                                                     "--out", str(tmp_path / "bad")])
        assert bad.exit_code == 2 and message in bad.output, (argv, bad.output)
    assert not (tmp_path / "bad").exists()
