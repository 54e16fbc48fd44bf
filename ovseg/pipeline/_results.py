"""What the pipeline returns: segments of one image at full resolution, and how they are saved.

Label maps are 8-bit palette PNGs up to 255 classes (255 = no class) and 16-bit greyscale PNGs
beyond (65535 = no class; format in `ovseg.io.viz`, recorded in the JSON), masks in the JSON are COCO run-length encoded
(`ovseg.io.rle_encode`), and every file is written atomically (`ovseg.io.atomic_write`).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ovseg import __version__, io as _io
from ovseg.io import viz
from ovseg.pipeline._records import _jsonable


@dataclass
class Segment:
    """One region: its id in `segment_map`, size, COCO box [x, y, w, h], and its name if labelled."""

    id: int
    area: int
    bbox: list[int]
    class_index: int | None = None
    class_name: str | None = None
    score: float | None = None
    alternatives: list[tuple[str, float]] = field(default_factory=list)
    segment_map: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def mask(self) -> np.ndarray:
        """(H, W) bool, at the input's resolution."""
        return self.segment_map == self.id


@dataclass
class SegmentationResult:
    """Segments of one image at its full resolution.

    image: (H, W, 3) uint8 RGB, as read (EXIF-oriented, size-guarded).
    segment_map: (H, W) int32, segment ids 0..K-1.
    classes: the vocabulary's class names when labelled, else None.
    """

    image: np.ndarray = field(repr=False)
    segment_map: np.ndarray = field(repr=False)
    segments: list[Segment]
    classes: list[str] | None = None
    source: str | None = None
    source_size: tuple[int, int] | None = None  # (H0, W0) of the file before the size guard
    settings: dict = field(default_factory=dict)
    record: dict = field(default_factory=dict)  # what made it (`_records.output_status`); in the JSON
    auto_vocabulary: dict | None = None  # automatic names: the bank and the names chosen, with scores

    @property
    def no_class_value(self) -> int | None:
        """Value of "no class" in ``label_map``: 255 up to 255 classes, 65535 beyond; None when
        unlabelled (segment ids only)."""
        return None if self.classes is None else viz.no_class_value(len(self.classes))

    def _png_values(self) -> int:  # how many values the label PNG must hold (sets its format)
        return len(self.classes) if self.classes is not None else len(self.segments)

    @property
    def label_map(self) -> np.ndarray:
        """(H, W) int32: the class index of each pixel (``no_class_value``, 255 or 65535, for no
        class) when labelled, else the segment id."""
        if self.classes is None:
            return self.segment_map
        lut = np.full(len(self.segments), self.no_class_value, dtype=np.int32)
        for s in self.segments:
            if s.class_index is not None:
                lut[s.id] = s.class_index
        return lut[self.segment_map]

    def legend(self) -> dict[int, str]:
        if self.classes is None:
            return {s.id: f"segment {s.id}" for s in self.segments}
        present = sorted({s.class_index for s in self.segments if s.class_index is not None})
        out = {i: self.classes[i] for i in present}
        if any(s.class_index is None for s in self.segments):
            out[self.no_class_value] = "(no class)"
        return out

    def to_json(self, label_png: str | None = None) -> dict:
        """A JSON-ready dict; masks as COCO compressed RLE (see `ovseg.io.rle_encode`)."""
        h, w = self.segment_map.shape
        return {
            "ovseg_version": __version__,
            "image": self.source,
            "height": h,
            "width": w,
            "source_size": list(self.source_size or (h, w)),
            "task": "segment" if self.classes is None else "label",
            "classes": self.classes,
            "label_map": {
                "file": label_png,
                "values": ("segment id" if self.classes is None
                           else f"class index ({self.no_class_value}: no class)"),
                "no_class_value": self.no_class_value,
                "format": viz.png_format(self._png_values()) + " PNG",
                # only an 8-bit PNG has a palette; a 16-bit one is plain greyscale values
                **({"palette": "Pascal VOC colour map (see ovseg.io.viz)"}
                   if self._png_values() <= viz.VOID else {}),
            },
            "rle": "COCO compressed RLE (pycocotools' string 'counts'), column-major (Fortran) "
                   "order, size [height, width]; written by ovseg.io.rle_encode",
            "settings": self.settings,
            "record": self.record or None,
            **({"auto_vocabulary": self.auto_vocabulary} if self.auto_vocabulary is not None else {}),
            "segments": [
                {
                    "id": s.id,
                    "class_index": s.class_index,
                    "class_name": s.class_name,
                    "score": s.score,
                    "alternatives": [[n, float(v)] for n, v in s.alternatives],
                    "area": s.area,
                    "bbox": s.bbox,
                    "segmentation": _io.rle_encode(s.mask),
                }
                for s in self.segments
            ],
        }

    def save_png(self, path: str | os.PathLike) -> Path:
        """The label map as a PNG (values: class index, or segment id when unlabelled): 8-bit
        palette up to 255 classes or segments, else 16-bit greyscale (see ``ovseg.io.viz``)."""
        im = viz.label_image(self.label_map, bits=8 if self._png_values() <= viz.VOID else 16)
        return _io.atomic_write(path, lambda f: im.save(f, format="PNG"))

    def save_overlay(self, path: str | os.PathLike) -> Path:
        im = viz.overlay(self.image, self.label_map, self.legend(), no_class=self.no_class_value)
        return _io.atomic_write(path, lambda f: im.save(f, format="PNG"))

    def save_json(self, path: str | os.PathLike, label_png: str | None = None) -> Path:
        text = json.dumps(self.to_json(label_png), indent=1)
        return _io.atomic_write(path, lambda f: f.write(text), mode="w")



def build_result(array, full, labels, names, settings, source, source_size,
                 record: dict | None = None) -> SegmentationResult:
    """array (H, W, 3) uint8; full (H, W) int32 segment ids 0..K-1; labels: id -> SegmentLabel."""
    segments = []
    areas = np.bincount(full.reshape(-1), minlength=int(full.max()) + 1)
    for sid in range(len(areas)):
        mask = full == sid
        lab = labels.get(sid)
        idx = None if lab is None or lab.class_index is None or lab.class_index < 0 else int(lab.class_index)
        segments.append(Segment(
            id=sid, area=int(areas[sid]), bbox=_io.bbox_of(mask),
            class_index=idx,
            class_name=None if idx is None else (lab.class_name or names[idx]),
            score=None if lab is None or lab.score is None else float(lab.score),
            alternatives=[(str(n), float(v)) for n, v in (lab.alternatives if lab else [])],
            segment_map=full,
        ))
    return SegmentationResult(array, full, segments, names, source, source_size, settings,
                              _jsonable(record or {}))


@dataclass
class RunSummary:
    """What `Segmenter.process_files` did, per input image: done (outputs written), skipped (outputs
    up to date), failed (with the reason); `redone` lists the done images whose earlier outputs were
    made with other settings, vocabulary or output format (so they were redone, not skipped);
    `notices` {kind: [(image, detail)]} what was done that may not be what was meant
    (`ovseg.pipeline._notices`: one segment from --tau auto, many segments, scaled down)."""

    done: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    redone: list[Path] = field(default_factory=list)
    notices: dict[str, list[tuple[Path, str]]] = field(default_factory=dict)
