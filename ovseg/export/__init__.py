"""Datasets from a run's outputs: COCO (instances + results) and YOLO segmentation, for the
tools people train and score with (pycocotools, detectron2, mmdetection, FiftyOne, ultralytics).

    from ovseg.export import export

    export("out/", "coco")                     # out/coco/instances.json, out/coco/results.json
    export("out/", "yolo", to="datasets/pets")  # data.yaml, images/, labels/

Reads the per-image JSONs that `ovseg label` / `ovseg segment` wrote (or the Parquet rows of
`--engine ray --format parquet`); loads no model and reads no image (YOLO links the images).
Every file appears whole: each COCO file is written atomically, a YOLO folder is built beside
its place and renamed into it. The rules (categories and ids, "no class" segments, sizes,
polygons) are in `ovseg/export/_coco.py`, `_yolo.py` and `_contours.py`, and docs/export.md.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ovseg.export._contours import label_polygons, mask_polygons, polygon_area
from ovseg.export._read import ExportError, ImageResult, file_names, read_results

__all__ = ["FORMATS", "ExportError", "ExportSummary", "ImageResult", "export", "label_polygons",
           "mask_polygons", "polygon_area", "read_results"]

FORMATS = ("coco", "yolo")


@dataclass
class ExportSummary:
    """What `export` wrote: the files (COCO: instances and results; YOLO: data.yaml), counts, and
    notes (one line each: files left out, images not found to link, ...)."""

    format: str
    files: list[Path]
    images: int
    annotations: int  # COCO: annotations (one per segment); YOLO: polygons (one per part)
    categories: list[str]
    left_out: int = 0  # "no class" segments, not exported
    empty_images: int = 0  # images with no annotation
    scaled_images: int = 0  # images whose masks were made smaller than the file (--max-pixels)
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        """One line for the command line."""
        unit = "annotation(s)" if self.format == "coco" else "polygon(s)"  # YOLO: a line per part
        what = f"{self.annotations} {unit} of {self.images} image(s), {len(self.categories)} categor" \
               f"{'y' if len(self.categories) == 1 else 'ies'}"
        extra = [f"{self.left_out} no-class segment(s) left out"] if self.left_out else []
        if self.scaled_images:
            extra.append(f"{self.scaled_images} image(s) scaled back to the file's size" if self.format == "coco"
                         else f"{self.scaled_images} image(s) made at a reduced size (polygons are fractions)")
        return f"exported {what} to {self.files[0]} ({self.format})" + "".join(f"; {e}" for e in extra)


def export(out: str | os.PathLike, format: str = "coco", *, to: str | os.PathLike | None = None,
           task: str | None = None, ids_from: str | os.PathLike | None = None,
           images: str = "link", min_area: int = 0) -> ExportSummary:
    """Write a COCO or YOLO dataset from the results in `out`.

    Arguments:
        out: the output folder of a run (its `*.labels.json` / `*.segments.json`, or its
            `*.parquet` rows), or one .parquet file.
        format: "coco" (instances file + results file) or "yolo" (ultralytics' layout).
        to: COCO: a folder (instances.json and results.json in it) or a .json path (the results
            file beside it, `<name>.results.json`); YOLO: a folder (replaced if it is an earlier
            export, refused if it holds anything else). None: `out/coco` or `out/yolo`.
        task: "label" or "segment": which JSONs, when the folder holds both.
        ids_from: a COCO file (your ground truth) whose image and category ids to use, matched
            by file_name (or its base name, when unique) and by category name (COCO only).
        images: YOLO only: "link" (symbolic links to the files), "copy", "none".
        min_area: YOLO only: leave out parts of a segment smaller than this many pixels (at the
            mask's size; 0: every part, so the polygons cover each mask exactly).

    Returns an ExportSummary. Raises ExportError (a ValueError) when there is nothing to export
    or the destination cannot be used; nothing is written then.
    """
    if format not in FORMATS:
        raise ExportError(f"format must be one of {FORMATS}, got {format!r}")
    results, notes = read_results(out, task)
    names, root = file_names(results)
    order = sorted(range(len(results)), key=lambda i: names[i])
    results, names = [results[i] for i in order], [names[i] for i in order]
    base = Path(out).parent if Path(out).is_file() else Path(out)
    scaled = sum(r.scaled for r in results)
    if format == "coco":
        from ovseg.export import _coco

        instances, predictions, counts = _coco.build(results, names, ids_from=ids_from, image_root=root)
        files = _coco_paths(Path(to) if to is not None else base / "coco")
        from ovseg import io as _io

        for path, data in zip(files, (instances, predictions)):
            text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
            _io.atomic_write(path, lambda f, text=text: f.write(text), mode="w")
        categories = [c["name"] for c in instances["categories"]]
        annotations = len(instances["annotations"])
        for key, what in (("new_image_ids", "image(s)"), ("new_category_ids", "categor(ies)")):
            if counts.get(key):
                notes.append(f"{counts[key]} {what} not in {ids_from}: given new ids after its largest")
    else:
        from ovseg.export import _coco, _yolo

        categories = _coco.category_names(results)
        folder = Path(to) if to is not None else base / "yolo"
        counts = _yolo.write(results, names, categories, folder, images=images, min_area=min_area,
                             source_dir=root)
        files = [folder / "data.yaml"]
        annotations = counts["lines"]
        if counts["images_missing"]:
            notes.append(f"{counts['images_missing']} image file(s) not found here to {images}: put them "
                         f"in {folder / 'images'} under their file_name")
    return ExportSummary(format, files, len(results), annotations, categories, counts["left_out"],
                         counts["empty_images"], scaled, notes)


def _coco_paths(to: Path) -> list[Path]:
    if to.suffix == ".json":
        return [to, to.with_name(to.stem + ".results.json")]
    return [to / "instances.json", to / "results.json"]

