"""Reading what a run left in its output folder: the per-image JSONs (`<stem>.labels.json` or
`<stem>.segments.json`, `SegmentationResult.to_json`), or the Parquet rows of `--engine ray
--format parquet` (`ovseg.distributed._records`), as one list of `ImageResult`. No model, no
image is read: the JSONs carry every mask (COCO RLE) and the image's source size."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

TASK_KINDS = {"label": "labels", "segment": "segments"}  # task -> the JSONs' kind in their names


class ExportError(ValueError):
    """The output folder cannot be exported as asked (nothing to export, two tasks without a
    choice, a table with two runs of one image); the message says what to do."""


@dataclass
class ImageResult:
    """One image's result as a run recorded it.

    source: the image as the run was given it (a path, relative to the run's folder, or a URI);
    size: (height, width) of the masks (after the --max-pixels guard); source_size: (H0, W0) of
    the file (EXIF-oriented); classes: the image's class names (None: segments only); segments:
    dicts with id, class_index, class_name, score, area, bbox, rle (COCO compressed RLE at `size`).
    """

    source: str | None
    size: tuple[int, int]
    source_size: tuple[int, int]
    task: str
    classes: list[str] | None
    segments: list[dict] = field(default_factory=list)
    origin: str = ""  # the JSON file or "table row", for messages

    @property
    def scaled(self) -> bool:
        """True when the masks are smaller than the file (the image was over --max-pixels)."""
        return tuple(self.size) != tuple(self.source_size)


def read_results(out: str | os.PathLike, task: str | None = None) -> tuple[list[ImageResult], list[str]]:
    """The results in `out`: its JSONs, else its Parquet files (`out` may also be one .parquet).

    task: "label" or "segment"; None: the one the folder holds (both: ExportError).
    Returns (results in the order of their JSON paths or table rows, notes: one line per file
    left out and why). Raises ExportError when there is nothing to export.
    """
    out = Path(out)
    if out.is_file() and out.suffix == ".parquet":
        return _from_table(out, task), []
    if not out.is_dir():
        raise ExportError(f"{out}: no such folder")
    found = {t: sorted(out.rglob(f"*.{kind}.json")) for t, kind in TASK_KINDS.items()}
    if task is None:
        present = [t for t, paths in found.items() if paths]
        if len(present) > 1:
            raise ExportError(f"{out} holds both labels and segments JSONs: choose one with "
                              "--task label or --task segment")
        task = present[0] if present else None
    if task is not None and task not in TASK_KINDS:
        raise ExportError(f"task must be 'label' or 'segment', got {task!r}")
    if task is not None and found[task]:
        results, notes = [], []
        for path in found[task]:
            try:
                results.append(_from_json(path))
            except (OSError, ValueError, KeyError, TypeError) as err:
                notes.append(f"{path}: left out, not an ovseg output ({err})")
        if any(out.glob("*.parquet")):
            notes.append(f"{out}: Parquet files there were left out (the JSONs were read)")
        return results, notes
    if any(out.glob("*.parquet")):
        return _from_table(out, task), []
    kinds = " or ".join(f"*.{TASK_KINDS[t]}.json" for t in ([task] if task else TASK_KINDS))
    raise ExportError(f"{out}: nothing to export (no {kinds}, no *.parquet): run "
                      f"`ovseg label ... --out {out}` first")


def _from_json(path: Path) -> ImageResult:
    data = json.loads(path.read_text(encoding="utf-8"))
    h, w = int(data["height"]), int(data["width"])
    h0, w0 = (int(v) for v in (data.get("source_size") or (h, w)))
    segments = [{"id": int(s["id"]), "class_index": s.get("class_index"),
                 "class_name": s.get("class_name"), "score": s.get("score"),
                 "area": int(s["area"]), "bbox": [int(v) for v in s["bbox"]],
                 "rle": {"size": [int(v) for v in s["segmentation"]["size"]],
                         "counts": s["segmentation"]["counts"]}}
                for s in data["segments"]]
    return ImageResult(data.get("image"), (h, w), (h0, w0), data.get("task") or _task_of(path),
                       data.get("classes"), segments, str(path))


def _task_of(path: Path) -> str:
    return "label" if path.name.endswith(".labels.json") else "segment"


def _from_table(location: Path, task: str | None) -> list[ImageResult]:
    """Done rows of a `--format parquet` table, one per image (ovseg.distributed._records)."""
    try:
        import pyarrow.dataset as pads
    except ImportError as err:
        raise ExportError('reading Parquet results needs pyarrow: pip install "ovseg[ray]"') from err
    rows = pads.dataset(str(location), format="parquet").to_table().to_pylist()
    tasks = {r["task"] for r in rows if r.get("status") == "done"}
    if task is None and len(tasks) > 1:
        raise ExportError(f"{location} holds labels and segments rows: choose one with --task")
    by_path: dict[str, dict] = {}
    for row in rows:
        if row.get("status") != "done" or row.get("error") or (task and row["task"] != task):
            continue
        seen = by_path.get(row["path"])
        if seen is not None and (seen["settings"], seen["vocabulary"]) != (row["settings"], row["vocabulary"]):
            raise ExportError(f"{location} holds two runs of {row['path']} (other settings or classes): "
                              "export needs one row per image; move one run's files out of the folder")
        by_path[row["path"]] = row
    if not by_path:
        raise ExportError(f"{location}: no done rows to export")
    out = []
    for row in by_path.values():
        segments = [{"id": int(s["id"]), "class_index": s["class_index"], "class_name": s["class_name"],
                     "score": s["score"], "area": int(s["area"]), "bbox": [int(v) for v in s["bbox"]],
                     "rle": {"size": [int(v) for v in s["rle_size"]], "counts": s["rle_counts"]}}
                    for s in (row["segments"] or [])]
        out.append(ImageResult(row["path"], (int(row["height"]), int(row["width"])),
                               (int(row["source_height"]), int(row["source_width"])), row["task"],
                               row["vocabulary"], segments, f"{location} (row of {row['path']})"))
    return out


def file_names(results: list[ImageResult]) -> tuple[list[str], str | None]:
    """Each image's name in the dataset, and the folder they are relative to (its `image_root`).

    The rule: local paths (relative ones taken from the current folder, as the run took them)
    are named relative to the deepest folder that holds all of them, with "/" separators
    (`photos/a/x.jpg`, `photos/b/y.jpg` -> `a/x.jpg`, `b/y.jpg`, root `photos/`); URIs the same
    way relative to their common prefix; a result with no source is named after its JSON
    (`<stem>.png`). Two images never get one name (a clash keeps the full path).
    """
    sources = [r.source for r in results]
    local = [s for s in sources if s and "://" not in s]
    remote = [s for s in sources if s and "://" in s]
    root = None
    names: list[str] = []
    if local and not remote:
        absolute = [os.path.abspath(s) for s in local]
        root = os.path.commonpath([os.path.dirname(a) for a in absolute])
    elif remote and not local:
        parts = [s.split("/") for s in remote]
        common = os.path.commonprefix([p[:-1] for p in parts])
        root = "/".join(common)
    for r in results:
        s = r.source
        if not s:
            stem = Path(r.origin).name.rsplit(".", 2)[0]
            names.append(f"{stem}.png")
        elif root is None:
            names.append(s)
        elif "://" in s:
            names.append(s[len(root):].lstrip("/"))
        else:
            names.append(os.path.relpath(os.path.abspath(s), root).replace(os.sep, "/"))
    seen: set[str] = set()
    for i, (name, r) in enumerate(zip(names, results)):
        if name in seen:
            names[i] = r.source or r.origin
        seen.add(names[i])
    return names, root
