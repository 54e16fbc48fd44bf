"""`ovseg.export`'s rules on planted outputs (written by the pipeline's own writer, no model):
"no class" segments, file names under nested folders, ids from a ground truth, where files go,
and that a failed or refused export leaves what was there."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from ovseg import io as _io
from ovseg.export import ExportError, export
from ovseg.export import _yolo
from ovseg.labels.labeler import SegmentLabel
from ovseg.pipeline._results import build_result


def plant(out: Path, source: Path, segmap: np.ndarray, classes=None, labels=None, source_size=None,
          kind="labels") -> Path:
    """Write `source` (a small PNG) and the JSON a run would write for this segment map."""
    from PIL import Image

    source.parent.mkdir(parents=True, exist_ok=True)
    h, w = segmap.shape
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(source)
    names = None if classes is None else list(classes)
    marks = {sid: SegmentLabel(sid, c, "" if c < 0 else names[c], 0.5 + 0.01 * sid)
             for sid, c in (labels or {}).items()}
    result = build_result(np.zeros((h, w, 3), np.uint8), segmap.astype(np.int32), marks, names, {},
                          str(source), source_size or (h, w))
    path = out / f"{source.stem}.{kind}.json"
    result.save_json(path)
    return path


def two_by_three():
    seg = np.zeros((6, 9), dtype=np.int32)
    seg[:, 3:6], seg[:, 6:] = 1, 2
    return seg


def test_no_class_segments_are_left_out_and_counted(tmp_path):
    pycoco = pytest.importorskip("pycocotools.coco", reason='needs pip install -e ".[test]"')
    plant(tmp_path / "out", tmp_path / "photos" / "a.png", two_by_three(), ["cat", "dog"],
          {0: 1, 1: -1, 2: 0})  # segment 1: below the labeler's threshold ("no class")
    summary = export(tmp_path / "out", "coco")
    assert (summary.annotations, summary.left_out) == (2, 1)
    assert "1 no-class segment(s) left out" in summary.line()
    coco = pycoco.COCO(str(summary.files[0]))
    assert sorted((a["category_id"], a["bbox"][0]) for a in coco.anns.values()) == [(1, 6), (2, 0)]
    yolo = export(tmp_path / "out", "yolo")
    lines = (yolo.files[0].parent / "labels" / "a.txt").read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["1", "0"] and yolo.left_out == 1
    # x from 0 to 3 of 9 columns: the fractions of the mask's size
    assert lines[0] == "1 0.000000 0.000000 0.333333 0.000000 0.333333 1.000000 0.000000 1.000000"


def test_file_names_are_relative_to_the_folder_of_all_images(tmp_path):
    out = tmp_path / "out"
    plant(out, tmp_path / "photos" / "a" / "x.png", two_by_three(), ["cat"], {0: 0, 1: 0, 2: 0})
    plant(out, tmp_path / "photos" / "b" / "y.png", two_by_three(), ["cat"], {0: 0, 1: 0, 2: 0})
    data = json.loads(export(out, "coco").files[0].read_text())
    assert [i["file_name"] for i in data["images"]] == ["a/x.png", "b/y.png"]
    assert [i["id"] for i in data["images"]] == [1, 2]
    assert data["info"]["image_root"] == str(tmp_path / "photos")
    folder = export(out, "yolo").files[0].parent
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() or p.is_symlink()) == [
        "data.yaml", "images/a/x.png", "images/b/y.png", "labels/a/x.txt", "labels/b/y.txt"]


def test_ids_from_a_ground_truth_and_new_ids_after_its_largest(tmp_path):
    out = tmp_path / "out"
    plant(out, tmp_path / "photos" / "a.png", two_by_three(), ["cat", "dog", "emu"], {0: 0, 1: 1, 2: 2})
    plant(out, tmp_path / "photos" / "b.png", two_by_three(), ["cat", "dog", "emu"], {0: 0, 1: 1, 2: 2})
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"images": [{"id": 42, "file_name": "val/a.png"}],
                              "categories": [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}]}))
    summary = export(out, "coco", ids_from=gt)
    data = json.loads(summary.files[0].read_text())
    assert [(c["name"], c["id"]) for c in data["categories"]] == [("cat", 3), ("dog", 7), ("emu", 8)]
    assert [(i["file_name"], i["id"]) for i in data["images"]] == [("a.png", 42), ("b.png", 43)]
    assert any("1 image(s) not in" in n for n in summary.notes)
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    with pytest.raises(ExportError, match="not a COCO instances file"):
        export(out, "coco", ids_from=bad)


def test_where_the_files_go(tmp_path):
    out = tmp_path / "out"
    plant(out, tmp_path / "photos" / "a.png", two_by_three(), ["cat"], {0: 0})
    assert export(out, "coco").files == [out / "coco" / "instances.json", out / "coco" / "results.json"]
    assert export(out, "coco", to=tmp_path / "x.json").files == [tmp_path / "x.json", tmp_path / "x.results.json"]
    assert export(out, "coco", to=tmp_path / "d").files == [tmp_path / "d" / "instances.json",
                                                             tmp_path / "d" / "results.json"]
    assert export(out, "yolo").files == [out / "yolo" / "data.yaml"]


def test_a_scaled_mask_is_mapped_back_to_the_files_size(tmp_path):
    out = tmp_path / "out"
    plant(out, tmp_path / "photos" / "a.png", two_by_three(), ["cat", "dog"], {0: 0, 1: 1, 2: 0},
          source_size=(12, 27))
    summary = export(out, "coco")
    data = json.loads(summary.files[0].read_text())
    assert (data["images"][0]["height"], data["images"][0]["width"]) == (12, 27) and summary.scaled_images == 1
    big = _io.resize_nearest(two_by_three(), (12, 27))
    for ann, sid in zip(data["annotations"], (0, 1, 2)):
        assert (_io.rle_decode(ann["segmentation"]) == (big == sid)).all()
        assert ann["bbox"] == _io.bbox_of(big == sid) and ann["area"] == (big == sid).sum()


def test_segments_and_labels_in_one_folder_need_a_choice(tmp_path):
    out = tmp_path / "out"
    plant(out, tmp_path / "photos" / "a.png", two_by_three(), ["cat"], {0: 0, 1: 0, 2: 0})
    plant(out, tmp_path / "photos" / "a.png", two_by_three(), kind="segments")
    with pytest.raises(ExportError, match="--task label or --task segment"):
        export(out, "coco")
    assert export(out, "coco", task="label").categories == ["cat"]
    assert export(out, "coco", task="segment").categories == ["object"]


def test_nothing_to_export_and_a_broken_json(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportError, match="nothing to export"):
        export(tmp_path / "empty", "coco")
    with pytest.raises(ExportError, match="no such folder"):
        export(tmp_path / "nowhere", "coco")
    out = tmp_path / "out"
    plant(out, tmp_path / "photos" / "a.png", two_by_three(), ["cat"], {0: 0})
    (out / "junk.labels.json").write_text("{not json")
    summary = export(out, "coco")
    assert summary.images == 1 and any("junk.labels.json: left out" in n for n in summary.notes)


def test_yolo_replaces_its_own_export_and_refuses_another_folder(tmp_path, monkeypatch):
    out = tmp_path / "out"
    plant(out, tmp_path / "photos" / "a.png", two_by_three(), ["cat"], {0: 0})
    plant(out, tmp_path / "photos" / "b.png", two_by_three(), ["cat"], {0: 0})
    folder = export(out, "yolo").files[0].parent
    before = {p: p.read_bytes() for p in folder.rglob("*.txt")}
    calls = []

    def fail_on_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        return real(*args, **kwargs)

    real = _yolo.label_lines
    monkeypatch.setattr(_yolo, "label_lines", fail_on_second)
    with pytest.raises(OSError, match="disk full"):
        export(out, "yolo")
    monkeypatch.undo()
    assert {p: p.read_bytes() for p in folder.rglob("*.txt")} == before  # the earlier export, whole
    assert not any(p.name.startswith(".yolo.") for p in folder.parent.iterdir())  # no temporary folder left
    assert export(out, "yolo").images == 2  # its own earlier export is replaced
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match="not an ovseg export"):
        export(out, "yolo", to=other)
    assert (other / "notes.txt").read_text() == "keep me"


def test_yolo_images_copy_none_and_missing(tmp_path):
    out = tmp_path / "out"
    plant(out, tmp_path / "photos" / "a.png", two_by_three(), ["cat"], {0: 0})
    copy = export(out, "yolo", images="copy").files[0].parent / "images" / "a.png"
    assert copy.is_file() and not copy.is_symlink()
    assert not any((export(out, "yolo", images="none").files[0].parent / "images").iterdir())
    os.remove(tmp_path / "photos" / "a.png")
    summary = export(out, "yolo")
    assert any("1 image file(s) not found here" in n for n in summary.notes)


def test_min_area_leaves_out_specks(tmp_path):
    seg = np.zeros((8, 8), dtype=np.int32)
    seg[0, 7] = 1  # a one-pixel speck of segment 1 ...
    seg[4:, :] = 1  # ... beside its big part
    out = tmp_path / "out"
    plant(out, tmp_path / "photos" / "a.png", seg, ["cat", "dog"], {0: 0, 1: 1})
    lines = lambda s: (s.files[0].parent / "labels" / "a.txt").read_text().splitlines()  # noqa: E731
    assert len(lines(export(out, "yolo"))) == 3
    assert len(lines(export(out, "yolo", min_area=2))) == 2
