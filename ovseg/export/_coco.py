"""COCO files from ovseg's results: an instances file (images, categories, annotations) and a
results file (COCO's detection-results format, for COCOeval against your ground truth).

The rules (docs/export.md, "COCO"):
- One annotation per segment. A labelled run leaves out its "no class" segments (below the
  labeler's threshold); a segment run (no classes) puts every segment in one category, "object".
  Empty segments are left out.
- Categories: every class name of the images, ids 1, 2, ... in order of first appearance
  (images in file_name order, each image's classes in their order). A run with one class list
  (`--classes`) so gets id = class index + 1, every class of the list included, used or not.
  With `ids_from` (a COCO file, e.g. your ground truth), names found there keep its ids and
  file_names found there keep its image ids; the others get new ids after its largest.
- Images: id 1, 2, ... in file_name order; file_name as `file_names` says; width and height are
  the file's (EXIF-oriented) size, `source_size`. Masks made at a --max-pixels reduced size are
  scaled back to it by the nearest-exact rule (pixel centres aligned), so every mask, box and
  area is at the size the file has; a mask already at that size is copied as the run wrote it.
- Annotations: COCO compressed RLE `segmentation` (pycocotools' string counts), `bbox`
  [x, y, width, height] and `area` in pixels of that mask, `iscrowd` 0, `score` (the labeler's
  score; 1.0 for class-agnostic segments, which have none).
"""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone

from ovseg import __version__, io as _io
from ovseg.export._read import ExportError, ImageResult

AGNOSTIC = "object"  # the one category of a class-agnostic (`ovseg segment`) export


def segment_class(result: ImageResult, segment: dict) -> str | None:
    """The category name of one segment: AGNOSTIC in a segment run, its class in a labelled
    run, None for a "no class" segment (left out)."""
    if result.task == "segment" or result.classes is None:
        return AGNOSTIC
    index = segment.get("class_index")
    if index is None or index < 0:
        return None
    if index < len(result.classes):
        return str(result.classes[index])
    return segment.get("class_name")  # a class beyond the list (a labeler's background class)


def category_names(results: list[ImageResult]) -> list[str]:
    """The categories, in id order (module docstring's rule); results in file_name order."""
    names: dict[str, None] = {}
    for r in results:
        for name in ([AGNOSTIC] if r.task == "segment" or r.classes is None else r.classes):
            names.setdefault(str(name), None)
        for s in r.segments:  # a class outside the image's list (background) still gets an id
            name = segment_class(r, s)
            if name is not None:
                names.setdefault(name, None)
    return list(names)


def source_masks(result: ImageResult) -> list[tuple[dict, dict, int, list[int]]]:
    """(segment, rle, area, bbox) per segment at the file's size (module docstring)."""
    if not result.scaled:
        return [(s, s["rle"], s["area"], s["bbox"]) for s in result.segments]
    segmap = _io.rle_decode_map({s["id"]: s["rle"] for s in result.segments}, result.size)
    if (segmap < 0).any():
        raise ExportError(f"{result.origin}: the segments do not cover the image")
    big = _io.rle_encode_map(segmap, result.source_size)
    return [(s, *big[s["id"]]) if s["id"] in big else (s, None, 0, [0, 0, 0, 0]) for s in result.segments]


def build(results: list[ImageResult], file_names: list[str], *, ids_from=None,
          image_root: str | None = None) -> tuple[dict, list[dict], dict]:
    """The instances dict, the results list and counts {"left_out": no-class segments,
    "empty_images": images with no annotation, "new_image_ids"/"new_category_ids": names not in
    `ids_from`}. results and file_names: in file_name order."""
    names = category_names(results)
    cat_ids, img_ids, counts = _ids(names, file_names, ids_from)
    categories = [{"id": cat_ids[n], "name": n, "supercategory": ""} for n in names]
    images, annotations, predictions = [], [], []
    counts.update(left_out=0, empty_images=0)
    for result, file_name in zip(results, file_names):
        h0, w0 = result.source_size
        image_id = img_ids[file_name]
        images.append({"id": image_id, "file_name": file_name, "width": int(w0), "height": int(h0)})
        before = len(annotations)
        for segment, rle, area, bbox in source_masks(result):
            name = segment_class(result, segment)
            if name is None:
                counts["left_out"] += 1
                continue
            if not area:
                continue
            score = 1.0 if segment.get("score") is None else float(segment["score"])
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": cat_ids[name], "segmentation": rle,
                                "area": int(area), "bbox": [int(v) for v in bbox], "iscrowd": 0,
                                "score": score})
            predictions.append({"image_id": image_id, "category_id": cat_ids[name],
                                "segmentation": rle, "score": score})
        counts["empty_images"] += len(annotations) == before
    info = {"description": "ovseg export (docs/export.md)", "version": __version__,
            "date_created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "image_root": image_root,
            "rules": "one annotation per segment; no-class segments left out; masks at the file's size"}
    instances = {"info": info, "licenses": [], "images": images, "categories": categories,
                 "annotations": annotations}
    return instances, predictions, counts


def _ids(names: list[str], file_names: list[str], ids_from) -> tuple[dict, dict, dict]:
    counts = {"new_image_ids": 0, "new_category_ids": 0}
    if ids_from is None:
        return ({n: i + 1 for i, n in enumerate(names)},
                {f: i + 1 for i, f in enumerate(file_names)}, counts)
    ref = _load(ids_from)
    ref_cats = {str(c["name"]): int(c["id"]) for c in ref.get("categories", [])}
    ref_imgs = {str(i["file_name"]): int(i["id"]) for i in ref.get("images", [])}
    by_base: dict[str, list[int]] = {}
    for f, i in ref_imgs.items():
        by_base.setdefault(os.path.basename(f), []).append(i)
    next_cat = max(ref_cats.values(), default=0) + 1
    next_img = max(ref_imgs.values(), default=0) + 1
    cat_ids = {}
    for n in names:
        if n in ref_cats:
            cat_ids[n] = ref_cats[n]
        else:
            cat_ids[n], next_cat = next_cat, next_cat + 1
            counts["new_category_ids"] += 1
    img_ids = {}
    for f in file_names:
        same_base = by_base.get(os.path.basename(f), [])
        if f in ref_imgs:
            img_ids[f] = ref_imgs[f]
        elif len(same_base) == 1:  # "val/x.jpg" in the reference, "x.jpg" here (or the reverse)
            img_ids[f] = same_base[0]
        else:
            img_ids[f], next_img = next_img, next_img + 1
            counts["new_image_ids"] += 1
    return cat_ids, img_ids, counts


def _load(path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as err:
        raise ExportError(f"{path}: cannot read the COCO file for ids: {err}") from err
    if not isinstance(data, dict) or "categories" not in data:
        raise ExportError(f"{path}: not a COCO instances file (no 'categories')")
    return data
