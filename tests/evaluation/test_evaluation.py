"""Tiny synthetic benchmarks written in each dataset's real on-disk layout (for the tests).

Every image is 40 x 60 (H x W). Its centre square is columns 10..49. Inside it, rows 0..19 are
class A and rows 20..39 class B, with a 10 x 10 ignored patch at rows 0..9, columns 10..19.
Columns 0..9 and 50..59 (outside the centre square) are class C, which must never be scored.
The image's colour tells the class (A red, B green, C blue; the ignored patch is painted red), so
a colour "oracle" recovers the ground truth exactly when images are scored at 40 -> 20 px.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

H, W = 40, 60
COLOURS = {"A": (200, 30, 30), "B": (30, 200, 30), "C": (30, 30, 200)}

# raw label values of A, B, C and of an ignored pixel, and the class index each maps to
LAYOUTS = {
    "voc": dict(raw={"A": 0, "B": 15, "C": 7, "X": 255}, cls={"A": 0, "B": 15, "C": 7}),
    "context": dict(raw={"A": 0, "B": 37, "C": 14, "X": 255}, cls={"A": 0, "B": 37, "C": 14}),
    "coco-object": dict(raw={"A": 156, "B": 0, "C": 2, "X": 255}, cls={"A": 0, "B": 1, "C": 3}),
    "cocostuff27": dict(raw={"A": 156, "B": 0, "C": 2, "X": 255}, cls={"A": 23, "B": 9, "C": 11}),
    "cityscapes": dict(raw={"A": 23, "B": 26, "C": 7, "X": 0}, cls={"A": 16, "B": 19, "C": 0}),
    "ade20k": dict(raw={"A": 3, "B": 13, "C": 1, "X": 0}, cls={"A": 2, "B": 12, "C": 0}),
}


def label_raw(raw: dict) -> np.ndarray:
    lab = np.full((H, W), raw["C"], dtype=np.uint8)
    lab[:20, 10:50] = raw["A"]
    lab[20:, 10:50] = raw["B"]
    lab[:10, 10:20] = raw["X"]
    return lab


def image_rgb() -> np.ndarray:
    img = np.zeros((H, W, 3), dtype=np.uint8)
    img[:] = COLOURS["C"]
    img[:20, 10:50] = COLOURS["A"]
    img[20:, 10:50] = COLOURS["B"]
    return img


def _save(lab: np.ndarray, path: Path, palette: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(lab, mode="L")
    if palette:  # VOC ships palette PNGs
        im = im.convert("P")
        im.putpalette([v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])
    im.save(path)


def _save_image(path: Path, ext: str = ".jpg") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"quality": 100, "subsampling": 0} if ext == ".jpg" else {}  # flat colours stay close
    Image.fromarray(image_rgb()).save(path, **options)


def write_dataset(name: str, root: Path, n: int = 3) -> Path | None:
    """Write n images of dataset `name` under root; returns the image-list file for COCO."""
    raw = LAYOUTS[name]["raw"]
    ids = [f"img{i:03d}" for i in range(n)]
    if name == "voc":
        base = root / "VOCdevkit" / "VOC2012"
        (base / "ImageSets" / "Segmentation").mkdir(parents=True)
        (base / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(ids) + "\n")
        for i in ids:
            _save_image(base / "JPEGImages" / f"{i}.jpg")
            _save(label_raw(raw), base / "SegmentationClass" / f"{i}.png", palette=True)
    elif name == "context":
        base = root / "VOCdevkit" / "VOC2010"
        (base / "ImageSets" / "SegmentationContext").mkdir(parents=True)
        (base / "ImageSets" / "SegmentationContext" / "val.txt").write_text("\n".join(ids) + "\n")
        for i in ids:
            _save_image(base / "JPEGImages" / f"{i}.jpg")
            _save(label_raw(raw), base / "SegmentationClassContext" / f"{i}.png")
    elif name in ("coco-object", "cocostuff27"):
        ids = [f"{i:012d}" for i in range(1, n + 1)]
        for i in ids:
            _save_image(root / "images" / "val2017" / f"{i}.jpg")
            _save(label_raw(raw), root / "stuffthingmaps_trainval2017" / "val2017" / f"{i}.png")
        _save_image(root / "images" / "val2017" / "000000999999.jpg")  # not in the list
        _save(label_raw(raw), root / "stuffthingmaps_trainval2017" / "val2017" / "000000999999.png")
        listing = root / "Coco164kFull_Stuff_Coarse_7.txt"
        listing.write_text("\n".join(ids) + "\n")
        return listing
    elif name == "cityscapes":
        for k, i in enumerate(ids):
            city = ["frankfurt", "lindau"][k % 2]
            stem = f"{city}_000000_{k:06d}"
            _save_image(root / "leftImg8bit" / "val" / city / f"{stem}_leftImg8bit.png", ext=".png")
            _save(label_raw(raw), root / "gtFine" / "val" / city / f"{stem}_gtFine_labelIds.png")
            _save(np.zeros((H, W), np.uint8), root / "gtFine" / "val" / city / f"{stem}_gtFine_instanceIds.png")
    elif name == "ade20k":
        base = root / "ADEChallengeData2016"
        for k in range(n):
            i = f"ADE_val_{k + 1:08d}"
            _save_image(base / "images" / "validation" / f"{i}.jpg")
            _save(label_raw(raw), base / "annotations" / "validation" / f"{i}.png")
    else:
        raise ValueError(name)
    return None


def colour_oracle(split: str | None = None):
    """Predictor: segment = nearest reference colour; `split` cuts that colour's region in two halves."""
    import torch

    refs = torch.tensor([COLOURS[k] for k in "ABC"], dtype=torch.float32) / 255.0

    def predict(image: torch.Tensor) -> torch.Tensor:
        d = ((image[:, None] - refs[:, :, None, None]) ** 2).sum(0)  # (3, H, W)
        seg = d.argmin(0)
        if split is not None:
            k = "ABC".index(split)
            right = torch.zeros_like(seg, dtype=torch.bool)
            right[:, seg.shape[1] // 2:] = True
            seg = torch.where((seg == k) & right, torch.full_like(seg, 7), seg)
        return seg

    return predict


# ------------------------------------------------------------------------------------------------
import json
import math

import pytest
from click.testing import CliRunner

from ovseg.evaluation import IGNORE, evaluate, get_dataset, write_report
from ovseg.evaluation._runner import RESULTS_FILE

ALL = list(LAYOUTS)


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    out = {}
    for name in ALL:
        root = tmp_path_factory.mktemp(name.replace("-", ""))
        out[name] = (root, write_dataset(name, root, n=4 if name == "voc" else 2))
    return out


@pytest.mark.parametrize("name", ALL)
def test_layout_is_read_back(name, roots):
    root, listing = roots[name]
    spec = get_dataset(name)
    samples = spec.samples(root, listing)
    assert len(samples) == (4 if name == "voc" else 2)  # COCO: only the listed images
    labels = spec.read_label(samples[0].label)
    cls = LAYOUTS[name]["cls"]
    assert labels.shape == (H, W) and labels.dtype == np.int64
    assert labels[30, 30] == cls["B"] and labels[15, 30] == cls["A"] and labels[5, 5] == cls["C"]
    assert labels[5, 15] == IGNORE
    assert spec.num_classes == {"voc": 21, "context": 60, "coco-object": 81, "cocostuff27": 27,
                                "cityscapes": 27, "ade20k": 150}[name]


def test_label_tables():
    coco_obj, stuff27 = get_dataset("coco-object"), get_dataset("cocostuff27")
    assert coco_obj.classes[1] == "person" and coco_obj.classes[80] == "toothbrush"
    assert all(coco_obj.lut[v] == 0 for v in range(91, 182))  # every stuff class is background
    assert coco_obj.lut[11] == IGNORE and coco_obj.lut[255] == IGNORE  # unused thing id, unlabeled
    assert sorted(set(coco_obj.lut[:91]) - {IGNORE}) == list(range(1, 81))
    # 171 -> 27: things to coarse 0..11, stuff to 12..26, every coarse class used
    assert all(stuff27.lut[v] < 12 for v in range(91)) and all(12 <= stuff27.lut[v] < 27 for v in range(91, 182))
    assert sorted(set(stuff27.lut) - {IGNORE}) == list(range(27))
    assert stuff27.classes[stuff27.lut[0]] == "person" and stuff27.classes[stuff27.lut[156]] == "sky"
    assert stuff27.classes[stuff27.lut[148]] == "ground"  # road
    city = get_dataset("cityscapes")
    assert [city.lut[v] for v in range(7)] == [IGNORE] * 7 and city.lut[7] == 0 and city.lut[33] == 26
    assert city.classes[city.lut[26]] == "car" and city.lut[34] == IGNORE
    ade = get_dataset("ade20k")
    assert ade.lut[0] == IGNORE and ade.lut[1] == 0 and ade.lut[150] == 149 and ade.classes[-1] == "flag"
    assert "other" not in ade.classes
    c19 = get_dataset("cityscapes19")
    assert c19.num_classes == 19 and c19.classes[c19.lut[26]] == "car" and c19.lut[9] == IGNORE
    assert get_dataset("cocostuff171").num_classes == 171 and get_dataset("context59").lut[0] == IGNORE


@pytest.mark.parametrize("name,inner", [("voc", "VOC2012"), ("voc20", "VOC2012"), ("context", "VOC2010"),
                                        ("context59", "VOC2010")])
def test_voc_roots_accepted(name, inner, roots):
    """--root may be the folder above VOCdevkit/, VOCdevkit/ itself (mmseg's data/VOCdevkit), or VOC20xx/."""
    root, _ = roots["voc" if name.startswith("voc") else "context"]
    spec = get_dataset(name)
    expected = [s.id for s in spec.samples(root)]
    for folder in (root / "VOCdevkit", root / "VOCdevkit" / inner):
        assert [s.id for s in spec.samples(folder)] == expected, folder


def test_layout_errors(tmp_path, roots):
    with pytest.raises(ValueError, match="Coco164kFull_Stuff_Coarse_7.txt"):
        get_dataset("cocostuff27").samples(roots["cocostuff27"][0])
    with pytest.raises(FileNotFoundError):
        get_dataset("voc").samples(tmp_path)
    with pytest.raises(ValueError, match="unknown dataset"):
        get_dataset("pascal")


def _run(name, roots, predictor, **kw):
    root, listing = roots[name]
    return evaluate(name, predictor, root=root, image_list=listing, image_size=40, score_size=20,
                    progress=False, **kw)


@pytest.mark.parametrize("name", ALL)
def test_oracle_scores_one_and_crop_drops_outside(name, roots):
    result = _run(name, roots, colour_oracle())
    cls = LAYOUTS[name]["cls"]
    tp, fp, fn = result.counts
    n = result.num_images
    # scored at 20 x 20: A = 10 rows x 20 cols minus the 5 x 5 ignored patch, B = 10 x 20
    assert tp[cls["A"]] == 175 * n and tp[cls["B"]] == 200 * n
    assert fp.sum() == 0 and fn.sum() == 0
    assert math.isnan(result.iou[cls["C"]])  # C lies outside the centre square: never scored
    assert result.miou == pytest.approx(1.0)


@pytest.mark.parametrize("name", ALL)
def test_over_segmentation_penalty(name, roots):
    cls = LAYOUTS[name]["cls"]
    split_b = _run(name, roots, colour_oracle(split="B"))
    split_a = _run(name, roots, colour_oracle(split="A"))
    if get_dataset(name).background is None:
        # half of B (100 px) unmatched: FN of B, FP of nobody
        assert split_b.iou[cls["B"]] == pytest.approx(0.5) and split_b.iou[cls["A"]] == pytest.approx(1.0)
        assert split_b.miou == pytest.approx(0.75)
        # A's halves: 75 px (with the ignored patch) and 100 px; the larger one is matched
        assert split_a.iou[cls["A"]] == pytest.approx(100 / 175)
    else:
        # A is the background class: B's unmatched half joins the background segment
        assert split_b.iou[cls["A"]] == pytest.approx(175 / 275) and split_b.iou[cls["B"]] == pytest.approx(0.5)
        assert split_b.miou == pytest.approx((175 / 275 + 0.5) / 2)
        assert split_a.miou == pytest.approx(1.0)  # split background is merged back: no penalty


def test_published_matching_option(roots):
    split_b = _run("cityscapes", roots, colour_oracle(split="B"), matching="published")
    assert split_b.miou == pytest.approx((1 + 0.5 + 0) / 3)  # B's leftover half: FP of an absent class
    assert _run("cityscapes", roots, colour_oracle(), matching="published").miou == pytest.approx(1.0)


def test_resume_equals_uninterrupted(tmp_path, roots):
    full = _run("voc", roots, colour_oracle(split="B"), out=tmp_path / "a", settings={"tau": 0.5})
    calls = []

    def flaky(image):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return colour_oracle(split="B")(image)

    with pytest.raises(KeyboardInterrupt):
        _run("voc", roots, flaky, out=tmp_path / "b", settings={"tau": 0.5})
    with open(tmp_path / "b" / RESULTS_FILE, "a") as f:
        f.write('{"settings": "cut sh')  # a line cut short by the interruption
    calls.clear()
    resumed = _run("voc", roots, lambda im: (calls.append(1), colour_oracle(split="B")(im))[1],
                   out=tmp_path / "b", settings={"tau": 0.5})
    assert len(calls) == 2  # only the two images not done before
    np.testing.assert_array_equal(resumed.counts, full.counts)
    assert resumed.num_images == full.num_images == 4
    calls.clear()
    again = _run("voc", roots, lambda im: (calls.append(1), colour_oracle(split="B")(im))[1],
                 out=tmp_path / "b", settings={"tau": 0.5})
    assert not calls and again.num_images == 4  # every record was kept, the cut line aside
    np.testing.assert_array_equal(again.counts, full.counts)
    calls.clear()
    _run("voc", roots, lambda im: (calls.append(1), colour_oracle()(im))[1],
         out=tmp_path / "b", settings={"tau": 0.7})
    assert len(calls) == 4  # other settings: nothing reused


def test_resumable_output_needs_settings(tmp_path, roots):
    """Without settings naming the predictor, a rerun with another predictor would reuse old results."""
    for settings in (None, {}):
        with pytest.raises(ValueError, match="settings"):
            _run("voc", roots, colour_oracle(), out=tmp_path / "x", settings=settings)
    assert not (tmp_path / "x" / RESULTS_FILE).exists()
    assert _run("voc", roots, colour_oracle(), settings=None).miou == pytest.approx(1.0)  # no out=: fine


def test_cli_device_and_dtype_key_the_results(tmp_path, roots, monkeypatch):
    """A CPU float32 run and a CUDA float16 run into one --out do not share per-image results."""
    from ovseg.commands import eval as _command
    from ovseg.evaluation import _adapter

    monkeypatch.setattr(_adapter, "make_predictor", lambda protocol, **kw: colour_oracle())
    out = tmp_path / "out"
    args = ["--dataset", "voc", "--root", str(roots["voc"][0]), "--out", str(out), "--limit", "1", "--no-progress"]
    for pair in (("cpu", "float32"), ("cuda", "float16")):
        monkeypatch.setattr(_command, "_device_dtype", lambda device, pair=pair: pair)
        assert CliRunner().invoke(_command.eval_command, args).exit_code == 0
    records = [json.loads(line) for line in (out / RESULTS_FILE).read_text().splitlines()]
    assert len(records) == 2 and records[0]["settings"] != records[1]["settings"]  # no silent resume


def test_variants_and_report(tmp_path, roots):
    results = _run("cityscapes", roots, lambda im: {"tau=0.3": colour_oracle()(im),
                                                    "tau=0.5": colour_oracle(split="B")(im)})
    assert results["tau=0.3"].miou == pytest.approx(1.0) and results["tau=0.5"].miou == pytest.approx(0.75)
    paths = write_report(results, tmp_path)
    table = paths["markdown"].read_text()
    assert "| sky | 100.0 | 100.0 |" in table and "| car | 100.0 | 50.0 |" in table and "| road | n/a | n/a |" in table
    data = json.loads(paths["json"].read_text())
    assert [d["miou"] for d in data] == pytest.approx([1.0, 0.75])
    assert paths["csv"].read_text().count("\n") == 2 * 28 + 1
    assert all(p.read_bytes()[:4] == b"\x89PNG" for k, p in paths.items() if k.startswith("png"))


def test_open_vocabulary_protocol(roots):
    import torch

    cls = LAYOUTS["ade20k"]["cls"]

    def named(image):  # colour -> class index; C's region labelled "none" (-1)
        seg = colour_oracle()(image)
        table = torch.tensor([cls["A"], cls["B"], -1])
        return table[seg]

    result = _run("ade20k", roots, named, protocol="open-vocabulary")
    tp, fp, fn = result.counts
    n = result.num_images
    # whole image at full resolution: A 20x40 - 100 ignored, B 20x40, C 2 x (40x10) predicted as none
    assert tp[cls["A"]] == 700 * n and tp[cls["B"]] == 800 * n and fn[cls["C"]] == 800 * n and fp.sum() == 0
    assert result.iou[cls["C"]] == 0 and result.miou == pytest.approx(2 / 3)


def test_cli_writes_all_outputs(tmp_path, roots, monkeypatch):
    from ovseg.evaluation import _adapter
    from ovseg.commands.eval import eval_command

    seen = {}

    def fake_make_predictor(protocol, **kw):
        seen.update(kw, protocol=protocol)
        oracle = colour_oracle()
        return lambda image: {f"tau={t:g}": oracle(image) for t in kw["taus"]}

    monkeypatch.setattr(_adapter, "make_predictor", fake_make_predictor)
    root, _ = roots["voc"]
    out = tmp_path / "out"
    res = CliRunner().invoke(eval_command, ["--dataset", "voc", "--root", str(root), "--out", str(out),
                                            "--limit", "2", "--tau", "0.4", "--alpha", "8", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert seen["taus"] == (0.4,) and seen["alpha"] == 8.0 and seen["protocol"] == "unsupervised"
    for f in ("results.md", "results.csv", "results.json", "iou_tau=0.4.png", RESULTS_FILE):
        assert (out / f).is_file(), f
    data = json.loads((out / "results.json").read_text())
    assert data[0]["num_images"] == 2 and data[0]["settings"]["alpha"] == 8.0
    import torch

    expected = ("cuda", "float16") if torch.cuda.is_available() else ("cpu", "float32")
    assert (seen["device"], data[0]["settings"]["device"], data[0]["settings"]["dtype"]) == (expected[0], *expected)
    assert data[0]["miou"] > 0.9  # 1024 px bilinear resize blurs the colour edges a little
    assert "mIoU" in res.output
    bad = CliRunner().invoke(eval_command, ["--dataset", "cocostuff27", "--root", str(roots["cocostuff27"][0])])
    # a missing option is a usage error (issue 22): exit 2
    assert bad.exit_code == 2 and "Error: " in bad.output and "Coco164kFull_Stuff_Coarse_7.txt" in bad.output
    assert "Traceback" not in bad.output


def test_cli_ordinary_mistakes_are_clean_errors(tmp_path, roots, monkeypatch):
    """Wrong layout: a usage error on --root (exit 2, issue 31 item 5); missing weights, a
    ValueError while scoring: a one-line 'Error:', exit 1."""
    import ovseg
    from ovseg.evaluation import _adapter, _runner
    from ovseg.commands.eval import eval_command

    runner = CliRunner()
    wrong = runner.invoke(eval_command, ["--dataset", "voc", "--root", str(tmp_path), "--no-progress"])
    assert wrong.exit_code == 2 and "Invalid value for '--root'" in wrong.output and "not found" in wrong.output
    assert not isinstance(wrong.exception, FileNotFoundError)

    def no_weights(protocol, **kw):
        raise ovseg.WeightsNotFoundError("no weights for ssd-1b offline")

    monkeypatch.setattr(_adapter, "make_predictor", no_weights)
    args = ["--dataset", "voc", "--root", str(roots["voc"][0]), "--out", str(tmp_path / "o"), "--no-progress"]
    res = runner.invoke(eval_command, args)
    assert res.exit_code == 1 and res.output == "Error: no weights for ssd-1b offline\n"

    monkeypatch.setattr(_adapter, "make_predictor", lambda protocol, **kw: colour_oracle())

    def bad_evaluate(*a, **kw):
        raise ValueError("predictor returned a (3, 5) map")

    monkeypatch.setattr(_runner, "evaluate", bad_evaluate)
    res = runner.invoke(eval_command, args)
    assert res.exit_code == 1 and res.output == "Error: predictor returned a (3, 5) map\n"


def test_cli_default_out_per_protocol_and_foreign_options(tmp_path, roots, monkeypatch):
    """Open-vocabulary defaults to its own folder; options of the other protocol are usage errors."""
    from ovseg.evaluation import _adapter
    from ovseg.commands.eval import eval_command

    monkeypatch.setattr(_adapter, "make_predictor", lambda protocol, **kw: colour_oracle())
    monkeypatch.chdir(tmp_path)
    base = ["--dataset", "voc", "--root", str(roots["voc"][0]), "--limit", "1", "--no-progress"]
    runner = CliRunner()
    assert runner.invoke(eval_command, base).exit_code == 0
    assert runner.invoke(eval_command, base + ["--protocol", "open-vocabulary"]).exit_code == 0
    assert (tmp_path / "eval" / "voc" / "results.json").is_file()
    assert (tmp_path / "eval" / "voc-open-vocabulary" / "results.json").is_file()
    unsup = json.loads((tmp_path / "eval" / "voc" / "results.json").read_text())
    assert unsup[0]["settings"]["matching"] == "present"  # not overwritten by the open-vocabulary run
    for extra, flag in ((["--protocol", "open-vocabulary", "--matching", "present"], "--matching"),
                        (["--vocabulary", "voc"], "--vocabulary"), (["--clip-weights", "x"], "--clip-weights"),
                        (["--protocol", "unsupervised", "--vocabulary", "voc"], "--vocabulary")):
        res = runner.invoke(eval_command, base + extra)
        assert res.exit_code == 2 and flag in res.output, (extra, res.output)


def test_image_list_ids_are_deduplicated_in_order(tmp_path, roots):
    root, _ = roots["voc"]
    listing = tmp_path / "ids.txt"
    listing.write_text("img002\nimg000.jpg\nimg002\nimg000\nimg001\n")
    assert [s.id for s in get_dataset("voc").samples(root, listing)] == ["img002", "img000", "img001"]


def test_sweep_adapter_builds_one_hierarchy_per_image(monkeypatch):
    """The tau-sweep predictor against stand-ins of the stage APIs of docs/architecture.md."""
    import sys
    import types

    import torch

    import ovseg
    from ovseg.evaluation import _adapter
    from ovseg.masks import PAMRConfig

    calls = {"build": 0, "cut": [], "pamr": []}

    class Hierarchy:
        tau = 0.6

        def cut(self, tau):
            calls["cut"].append(tau)
            return (torch.arange(16).reshape(4, 4) >= 8).long() * int(10 * tau)

    def build_hierarchy(feats, cfg):
        calls["build"] += 1
        assert feats.shape == (5, 4, 4) and cfg.alpha == 7.0 and cfg.tau == 0.6
        return Hierarchy()

    def refine_segments(feats, segments, image, *, refine):  # concept assignment, then PAMR
        calls["pamr"].append((tuple(image.shape), refine))
        return torch.nn.functional.interpolate(segments[None, None].float(), size=image.shape[-2:])[0, 0].long()

    import ovseg.masks.diffcut
    import ovseg.pipeline.stages

    monkeypatch.setattr(ovseg.masks.diffcut, "_hierarchy", build_hierarchy)  # what "diffcut" builds with
    monkeypatch.setattr(ovseg.pipeline.stages, "refine_segments", refine_segments)  # what stages.refine runs
    monkeypatch.setitem(vars(ovseg), "create_backbone", lambda name, **kw: (lambda x: torch.rand(1, 5, 4, 4)))
    monkeypatch.setattr("ovseg.pipeline._preflight.check_backbone_weights", lambda *a, **k: None)  # a stand-in: no weights
    predict = _adapter.make_predictor("unsupervised", vocabulary="voc", taus=(0.6, 0.3), backbone="ssd-1b",
                                      weights=None, clip_weights=None, device="cpu", alpha=7.0, refine=True)
    out = predict(torch.rand(3, 64, 64))
    assert sorted(out) == ["tau=0.3", "tau=0.6"] and calls["build"] == 1 and sorted(calls["cut"]) == [0.3, 0.6]
    assert out["tau=0.6"].shape == (128, 128) and set(out["tau=0.6"].unique().tolist()) == {0, 6}
    benchmark = PAMRConfig(iterations=10, dilations=(1, 2, 4, 8), label_filter="median")
    assert calls["pamr"] == [((3, 128, 128), benchmark)] * 2


def test_dataset_classes_match_shipped_vocabularies():
    """Open-vocabulary scoring relies on prompts/ listing the classes in the dataset's order."""
    from ovseg import labels
    from ovseg.evaluation import list_datasets

    for name in list_datasets():
        spec = get_dataset(name)
        if spec.vocabulary is not None:
            vocab = labels.load_vocabulary(spec.vocabulary)
            assert len(vocab.classes) - spec.vocabulary_offset == spec.num_classes, name


def test_cli_end_to_end_with_tiny_weights(tmp_path, roots, tiny_weights):
    """`ovseg eval` through the real stages, with a tiny random-weight SSD-1B (scores meaningless)."""
    from ovseg.commands.eval import eval_command

    weights = tiny_weights["weights"]
    out = tmp_path / "out"
    args = ["--dataset", "cityscapes", "--root", str(roots["cityscapes"][0]), "--weights", weights,
            "--device", "cpu", "--limit", "1", "--tau", "0.3", "--tau", "0.6", "--out", str(out), "--no-progress"]
    res = CliRunner().invoke(eval_command, args)
    assert res.exit_code == 0, res.output
    data = json.loads((out / "results.json").read_text())
    assert [d["settings"]["variant"] for d in data] == ["tau=0.3", "tau=0.6"]
    assert all(d["num_images"] == 1 and 0 <= d["miou"] <= 1 for d in data)


# -- defaults from the backbone, and method="kway" with its K sweep (issues 19, 20) ----------------
@pytest.mark.parametrize("backbone, alpha, tau, min_area", [("efficientnet-lite0", "auto", 0.4, 0.03),
                                                           ("ssd-1b", 10.0, 0.5, None)])
def test_eval_alpha_and_tau_default_to_the_backbones(tmp_path, roots, monkeypatch, backbone, alpha, tau, min_area):
    """`ovseg eval` without --alpha/--tau/--min-area uses the backbone's registry defaults (as
    label/segment) and records them; efficientnet-lite0 takes the calibrated rule (alpha "auto",
    its tau and min_area), ssd-1b the paper's 10 and 0.5 with no minimum size (nothing recorded)."""
    from ovseg.evaluation import _adapter
    from ovseg.commands.eval import eval_command
    from ovseg.features import backbone_info

    assert (backbone_info(backbone).alpha, backbone_info(backbone).tau) == (alpha, tau)
    assert backbone_info(backbone).min_area == (min_area or 0.0)
    seen = {}

    def fake(protocol, **kw):
        seen.update(kw)
        oracle = colour_oracle()
        return lambda image: {f"tau={t:g}": oracle(image) for t in kw["taus"]}

    monkeypatch.setattr(_adapter, "make_predictor", fake)
    out = tmp_path / "out"
    res = CliRunner().invoke(eval_command, ["--dataset", "voc", "--root", str(roots["voc"][0]), "--out", str(out),
                                            "--limit", "1", "--backbone", backbone, "--no-progress"])
    assert res.exit_code == 0, res.output
    assert seen["alpha"] == alpha and seen["taus"] == (tau,) and "k" not in seen
    assert seen.get("min_area") == min_area
    settings = json.loads((out / "results.json").read_text())[0]["settings"]
    assert settings["alpha"] == alpha and settings["taus"] == [tau] and settings["method"] == "diffcut"
    assert settings.get("min_area") == min_area


@pytest.fixture(scope="module")
def lite0_weights(tmp_path_factory):
    from ovseg.testing import make_tiny_backbone_weights

    return make_tiny_backbone_weights("efficientnet-lite0", tmp_path_factory.mktemp("lite0"))


def test_eval_kway_k_and_tau_sweep_tiny_checkpoint(tmp_path, roots, lite0_weights):
    """`ovseg eval --method kway` end to end on a tiny efficientnet-lite0 checkpoint (random weights,
    1024 px -> 64 x 64 features): one backbone pass per image, variants per K and per tau of the
    auto rule, the method, k and the backbone's alpha in the settings, k_chosen per variant in the
    report and per image in per_image.jsonl; a rerun resumes from it."""
    from ovseg.commands.eval import eval_command

    out = tmp_path / "out"
    argv = ["--dataset", "voc", "--root", str(roots["voc"][0]), "--out", str(out), "--limit", "2",
            "--backbone", "efficientnet-lite0", "--weights", lite0_weights, "--device", "cpu", "--method", "kway",
            "--k", "3", "--k", "auto", "--tau", "0.3", "--tau", "0.6", "--no-refine", "--no-progress"]
    res = CliRunner().invoke(eval_command, argv)
    assert res.exit_code == 0, res.output
    results = {r["settings"]["variant"]: r for r in json.loads((out / "results.json").read_text())}
    assert sorted(results) == ["k=3", "k=auto,tau=0.3", "k=auto,tau=0.6"]
    for variant, r in results.items():
        s = r["settings"]
        assert s["method"] == "kway" and s["k"] == [3, "auto"] and s["taus"] == [0.3, 0.6]
        assert (s["alpha"], s["min_area"]) == ("auto", 0.03)  # the backbone's: the calibrated rule
        assert s["k_chosen"]["images"] == 2 and 1 <= s["k_chosen"]["min"] <= s["k_chosen"]["max"] <= 16
    assert results["k=3"]["settings"]["k_chosen"]["max"] <= 3
    low, high = (results[f"k=auto,tau={t}"]["settings"]["k_chosen"]["mean"] for t in (0.3, 0.6))
    assert low <= high  # a lower merge threshold merges more: fewer segments
    assert "k_chosen, mean" in (out / "results.md").read_text()
    lines = [json.loads(x) for x in (out / RESULTS_FILE).read_text().splitlines()]
    assert len(lines) == 2 and all(set(x["info"]) == set(results) for x in lines)
    again = CliRunner().invoke(eval_command, argv)  # resumed: the same report, from per_image.jsonl
    assert again.exit_code == 0 and len((out / RESULTS_FILE).read_text().splitlines()) == 2
    assert {r["settings"]["variant"]: r["settings"]["k_chosen"] for r in json.loads((out / "results.json").read_text())} \
        == {v: r["settings"]["k_chosen"] for v, r in results.items()}
    fixed = CliRunner().invoke(eval_command, argv[:-10] + ["--k", "2", "--no-refine", "--no-progress"])
    assert fixed.exit_code == 0, fixed.output  # a fixed K: one variant named by it, tau plays no part
    assert [r["settings"]["variant"] for r in json.loads((out / "results.json").read_text())] == ["k=2"]
