"""One image's result as a flat record (a Parquet row), and back to ovseg's per-image files.

A record is a dict of plain values (no ray, no pyarrow needed here):

    path            str    the input as given (a path or a URI), as in the JSON's "image"
    stem            str    output name stem (`<stem>.labels.json`, ...), as `process_files` names it
    task            str    "label" | "segment"
    status          str    "done" | "skipped" (outputs already current) | "failed"
    error           str    why the image failed, else None
    width, height   int    size of the result (after EXIF orientation and the max_pixels guard)
    source_width, source_height  int  size of the file before the guard
    max_pixels      int    the guard used (lets `parquet_to_files` re-read the image for the overlay)
    settings        str    `SegmenterConfig.segment_settings()` as JSON text (keys in order)
    vocabulary      list[str] | None   class names (None when segmenting)
    segments        list[dict]  per segment: id, class_index, class_name, score, alternatives
                    ([{"name", "score"}]), area, bbox [x, y, w, h], rle_size [H, W], rle_counts
                    (COCO compressed RLE string, column-major)
"""
from __future__ import annotations

import json

import numpy as np

from ovseg import io as _io
from ovseg.pipeline._results import Segment, SegmentationResult

RECORD_FIELDS = ("path", "stem", "task", "status", "error", "width", "height", "source_width",
                 "source_height", "max_pixels", "settings", "record", "vocabulary", "segments")


def settings_text(settings: dict) -> str:
    """Settings as JSON text, keys in their order (as the JSON files have them; tuples -> lists)."""
    return json.dumps(settings)


def same_settings(recorded: str | dict | None, settings: dict) -> bool:
    """Recorded settings (JSON text or a dict) equal to `settings`, key order aside."""
    if isinstance(recorded, str):
        try:
            recorded = json.loads(recorded)
        except ValueError:
            return False
    return isinstance(recorded, dict) and json.loads(json.dumps(recorded)) == json.loads(settings_text(settings))


def empty_record(path: str, stem: str, task: str, *, status: str, error: str | None = None,
                 settings: dict | None = None, classes: list[str] | None = None) -> dict:
    """A record with no segments: a skipped or failed image."""
    return {"path": path, "stem": stem, "task": task, "status": status, "error": error,
            "width": None, "height": None, "source_width": None, "source_height": None,
            "max_pixels": None, "settings": None if settings is None else settings_text(settings),
            "record": None,
            "vocabulary": None if classes is None else list(classes), "segments": []}


def result_to_record(result: SegmentationResult, stem: str, max_pixels: int) -> dict:
    """A `SegmentationResult` (from `Segmenter.label` / `segment`) as a record."""
    h, w = result.segment_map.shape
    h0, w0 = result.source_size or (h, w)
    segments = []
    for s in result.segments:
        rle = _io.rle_encode(s.mask)
        segments.append({
            "id": int(s.id), "class_index": s.class_index, "class_name": s.class_name,
            "score": s.score,
            "alternatives": [{"name": str(n), "score": float(v)} for n, v in s.alternatives],
            "area": int(s.area), "bbox": [int(v) for v in s.bbox],
            "rle_size": [int(v) for v in rle["size"]], "rle_counts": rle["counts"],
        })
    return {"path": result.source, "stem": stem, "task": "segment" if result.classes is None else "label",
            "status": "done", "error": None, "width": int(w), "height": int(h),
            "source_width": int(w0), "source_height": int(h0), "max_pixels": int(max_pixels),
            "settings": settings_text(result.settings),
            "record": json.dumps(result.record or None, default=str),  # what made it (ovseg.pipeline._records)
            "vocabulary": None if result.classes is None else list(result.classes),
            "segments": segments}


def record_to_result(record: dict, image: np.ndarray | None = None) -> SegmentationResult:
    """Rebuild the `SegmentationResult` of a done record (masks from the RLEs).

    image: (H, W, 3) uint8 for the overlay; None leaves a grey image (overlay not meaningful).
    """
    if record.get("error") or record.get("status") != "done":
        raise ValueError(f"{record.get('path')}: no result in this record "
                         f"(status {record.get('status')!r}, error {record.get('error')!r})")
    h, w = int(record["height"]), int(record["width"])
    full = np.full((h, w), -1, dtype=np.int32)
    segments = []
    for s in sorted(_as_list(record["segments"]), key=lambda s: int(s["id"])):
        mask = _io.rle_decode({"size": list(s["rle_size"]), "counts": s["rle_counts"]})
        full[mask] = int(s["id"])
        segments.append(Segment(
            id=int(s["id"]), area=int(s["area"]), bbox=[int(v) for v in s["bbox"]],
            class_index=None if _missing(s["class_index"]) else int(s["class_index"]),
            class_name=None if _missing(s["class_name"]) else str(s["class_name"]),
            score=None if _missing(s["score"]) else float(s["score"]),
            alternatives=[(str(a["name"]), float(a["score"])) for a in _as_list(s["alternatives"])],
            segment_map=full,
        ))
    if (full < 0).any():
        raise ValueError(f"{record['path']}: the segments' masks do not cover the image")
    if image is None:
        image = np.full((h, w, 3), 128, dtype=np.uint8)
    elif image.shape[:2] != (h, w):
        raise ValueError(f"{record['path']}: image is {image.shape[:2]}, the record {(h, w)}")
    vocab = record.get("vocabulary")
    return SegmentationResult(
        image, full, segments, None if vocab is None else [str(c) for c in vocab], record["path"],
        (int(record["source_height"]), int(record["source_width"])), json.loads(record["settings"]),
        json.loads(record.get("record") or "null") or {})


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v))


def _as_list(v) -> list:
    return [] if v is None else list(v)
