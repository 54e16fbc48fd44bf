"""A YOLO segmentation dataset in ultralytics' layout from ovseg's results.

    FOLDER/data.yaml              path, train and val (both `images`), names {index: name}
    FOLDER/images/<file_name>     each image: a symbolic link to the file (or a copy, or none)
    FOLDER/labels/<stem>.txt      one line per polygon: class x1 y1 x2 y2 ... (0..1 of the size)

The rules (docs/export.md, "YOLO"): class indices are the COCO category order from 0 (the same
names, the same rules for "no class" and class-agnostic segments); each 4-connected part of a
segment is its own line, holes kept out by a zero-width bridge (`ovseg.export._contours`);
vertices are pixel corners divided by the mask's width and height, so they hold at the file's
size too (a --max-pixels reduced mask gives the same fractions); an image with no annotation
gets an empty file (a background image, for ultralytics). Ultralytics finds each image's labels
by replacing `/images/` with `/labels/` in its path, hence the two folders.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from ovseg import __version__, io as _io
from ovseg.export._coco import segment_class
from ovseg.export._contours import label_polygons, polygon_area
from ovseg.export._read import ExportError, ImageResult

MARKER = "# written by ovseg export"  # data.yaml's first line: the folder may be replaced
IMAGE_MODES = ("link", "copy", "none")


def label_lines(result: ImageResult, index: dict[str, int], min_area: int = 0) -> tuple[list[str], int]:
    """The label file's lines of one image, and how many no-class segments were left out.
    index: category name -> class index; min_area: parts of fewer pixels (at the mask's size,
    holes not counted) are left out (0: every part)."""
    h, w = result.size
    wanted, left_out = {}, 0
    for s in result.segments:
        name = segment_class(result, s)
        if name is None:
            left_out += 1
        elif s["area"] > 0:
            wanted[s["id"]] = index[name]
    if not wanted:
        return [], left_out
    segmap = _io.rle_decode_map({s["id"]: s["rle"] for s in result.segments}, (h, w))
    scale = np.array([w, h], dtype=np.float64)
    lines = []
    for sid, polygons in sorted(label_polygons(segmap, ids=list(wanted)).items()):
        for poly in polygons:
            if min_area and polygon_area(poly) < min_area:
                continue
            xy = (poly / scale).reshape(-1).tolist()
            lines.append(f"{wanted[sid]} " + " ".join(["%.6f"] * len(xy)) % tuple(xy))
    return lines, left_out


def write(results: list[ImageResult], file_names: list[str], names: list[str], folder: Path, *,
          images: str = "link", min_area: int = 0, source_dir: str | None = None) -> dict:
    """Write the dataset into `folder`, whole: it is built beside it and then renamed into place
    (an earlier export there is replaced; any other non-empty folder is refused).

    images: "link" (symbolic links to the files), "copy", or "none" (put them in images/
    yourself); min_area: as `label_lines`. Returns counts {"left_out", "empty_images", "images_missing": files not found to
    link or copy, "lines": polygons written}.
    """
    if images not in IMAGE_MODES:
        raise ExportError(f"images must be one of {IMAGE_MODES}, got {images!r}")
    folder = Path(folder)
    _check_replaceable(folder)
    return _io.atomic_folder(folder, lambda tmp: _fill(tmp, folder, results, file_names, names, images,
                                                       min_area, source_dir))


def _fill(tmp: Path, folder: Path, results, file_names, names, images, min_area, source_dir) -> dict:
    index = {n: i for i, n in enumerate(names)}
    counts = {"left_out": 0, "empty_images": 0, "images_missing": 0, "lines": 0}
    for result, file_name in zip(results, file_names):
        lines, left_out = label_lines(result, index, min_area)
        counts["left_out"] += left_out
        counts["empty_images"] += not lines
        counts["lines"] += len(lines)
        label = tmp / "labels" / Path(file_name).with_suffix(".txt")
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        if images != "none":
            counts["images_missing"] += not _place(result.source, tmp / "images" / file_name, images)
    (tmp / "images").mkdir(exist_ok=True)
    lines = [f"{MARKER} {__version__} (docs/export.md): YOLO segmentation labels",
             f"path: {json.dumps(str(folder.resolve()), ensure_ascii=False)}",
             "train: images", "val: images  # the same images: split them for a real validation",
             "names:"]
    lines += [f"  {i}: {json.dumps(n, ensure_ascii=False)}" for i, n in enumerate(names)]
    if source_dir:
        lines.append(f"# images from {json.dumps(source_dir, ensure_ascii=False)}")
    (tmp / "data.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return counts


def _place(source: str | None, dest: Path, mode: str) -> bool:
    """Link or copy one image into images/; False when its file is not found here."""
    if not source or "://" in source or not os.path.isfile(source):
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    if mode == "link":
        try:
            os.symlink(os.path.abspath(source), dest)
            return True
        except OSError:  # no symbolic links here (some file systems): a copy instead
            pass
    shutil.copy2(source, dest)
    return True


def _check_replaceable(folder: Path) -> None:
    if not folder.exists():
        return
    if not folder.is_dir():
        raise ExportError(f"{folder} exists and is not a folder")
    yaml = folder / "data.yaml"
    ours = yaml.is_file() and yaml.read_text(encoding="utf-8", errors="replace").startswith(MARKER)
    if not ours and any(folder.iterdir()):
        raise ExportError(f"{folder} exists and is not an ovseg export: choose another --to "
                          "or empty it")
