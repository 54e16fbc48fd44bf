"""Benchmark datasets, read from each one's standard on-disk layout.

Every dataset turns its raw label PNG into one class map through a 256-entry lookup table:
`classes (H, W) int64` with values `0..C-1`, or `IGNORE` for pixels that are scored by no one.
Class lists and mapping tables are data, in `classes.json` beside this file.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

IGNORE = 255  # class value of pixels that are not scored

_REGISTRY: dict[str, "DatasetSpec"] = {}


@dataclass(frozen=True)
class Sample:
    """One image of a dataset: `id` is unique in the dataset and keys the resumable results."""

    id: str
    image: Path
    label: Path


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    classes: tuple[str, ...]
    lut: tuple[int, ...]  # raw label value (0..255) -> class index, or IGNORE
    background: int | None  # class that absorbs unmatched segments (VOC, Context, COCO-Object)
    vocabulary: str | None  # vocabulary in prompts/ for the open-vocabulary protocol (None: none fits)
    find: Callable[[Path, Path | None], list[Sample]]  # (root, image_list) -> samples
    description: str = ""
    vocabulary_offset: int = 0  # vocabulary class i is dataset class i - offset (i < offset: none)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def read_label(self, path: str | Path) -> np.ndarray:
        """Label PNG -> classes (H, W) int64 in 0..C-1 or IGNORE."""
        from ovseg.io import open_image  # a bad file: ImageReadError naming it

        with open_image(path) as im:
            if im.mode not in ("L", "P", "I", "I;16"):
                raise ValueError(f"{path}: label PNG must be single-channel (mode L or P), got {im.mode}")
            raw = np.asarray(im).astype(np.int64)
        if raw.min() < 0 or raw.max() > 255:
            raise ValueError(f"{path}: label values must lie in 0..255, got {raw.min()}..{raw.max()}")
        return np.asarray(self.lut, dtype=np.int64)[raw]

    def samples(self, root: str | Path, image_list: str | Path | None = None) -> list[Sample]:
        """All samples under `root`, in a fixed order; fails loudly if the layout is not there."""
        root = Path(root).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"dataset root {root} is not a directory")
        found = self.find(root, Path(image_list).expanduser() if image_list else None)
        if not found:
            raise FileNotFoundError(f"no {self.name} images found under {root}")
        return found


@lru_cache(maxsize=1)
def class_data() -> dict:
    """The class lists and mapping tables of `classes.json`."""
    return json.loads((Path(__file__).with_name("classes.json")).read_text())


def register_dataset(**fields):
    """Decorator on a `find(root, image_list)` function: registers a DatasetSpec under `name`."""

    def wrap(find):
        spec = DatasetSpec(find=find, **fields)
        assert len(spec.lut) == 256 and all(0 <= v < spec.num_classes or v == IGNORE for v in spec.lut)
        _REGISTRY[spec.name] = spec
        return find

    return wrap


def list_datasets() -> list[str]:
    return sorted(_REGISTRY)


def get_dataset(name: str) -> DatasetSpec:
    if name not in _REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(list_datasets())}")
    return _REGISTRY[name]


def _lut(mapping: dict[int, int]) -> tuple[int, ...]:
    return tuple(mapping.get(v, IGNORE) for v in range(256))


def _pairs(ids: list[str], image_dir: Path, label_dir: Path, image_ext: str) -> list[Sample]:
    samples = [Sample(i, image_dir / f"{i}{image_ext}", label_dir / f"{i}.png") for i in ids]
    missing = [str(p) for s in samples for p in (s.image, s.label) if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} listed files are missing, e.g. {missing[0]}")
    return samples


def _read_ids(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"image list {path} not found")
    ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    ids = [Path(i).stem if i.endswith((".jpg", ".png")) else i for i in ids]
    return list(dict.fromkeys(ids))  # a repeated id would be scored (and weighted) twice


def _voc_base(root: Path, year: str) -> Path:
    """The VOC<year> folder: root/VOCdevkit/VOC<year>, root/VOC<year> (root = VOCdevkit) or root itself."""
    for base in (root / "VOCdevkit" / f"VOC{year}", root / f"VOC{year}"):
        if base.is_dir():
            return base
    return root


# --- Pascal VOC 2012 -------------------------------------------------------------------------
def _voc_find(root: Path, image_list: Path | None) -> list[Sample]:
    base = _voc_base(root, "2012")
    ids = _read_ids(image_list or base / "ImageSets" / "Segmentation" / "val.txt")
    return _pairs(ids, base / "JPEGImages", base / "SegmentationClass", ".jpg")


_VOC = class_data()["voc"]
register_dataset(
    name="voc", classes=tuple(_VOC), lut=_lut({i: i for i in range(21)}), background=0,
    vocabulary="voc", description="Pascal VOC 2012 val, 21 classes (0 = background, 255 = boundary, ignored)",
)(_voc_find)
register_dataset(
    name="voc20", classes=tuple(_VOC[1:]), lut=_lut({i: i - 1 for i in range(1, 21)}), background=None,
    vocabulary="voc", vocabulary_offset=1,
    description="Pascal VOC 2012 val, 20 object classes, background ignored (open vocabulary)",
)(_voc_find)


# --- Pascal Context (mmsegmentation conversion) ------------------------------------------------
def _context_find(root: Path, image_list: Path | None) -> list[Sample]:
    base = _voc_base(root, "2010")
    ids = _read_ids(image_list or base / "ImageSets" / "SegmentationContext" / "val.txt")
    return _pairs(ids, base / "JPEGImages", base / "SegmentationClassContext", ".jpg")


_CONTEXT = class_data()["context"]
register_dataset(
    name="context", classes=tuple(_CONTEXT), lut=_lut({i: i for i in range(60)}), background=0,
    vocabulary="pascal_context_60",
    description="Pascal Context val (5,105 images), 60 classes: 0 = background + 59",
)(_context_find)
register_dataset(
    name="context59", classes=tuple(_CONTEXT[1:]), lut=_lut({i: i - 1 for i in range(1, 60)}), background=None,
    vocabulary="pascal_context_59",
    description="Pascal Context val, 59 classes, background ignored (open vocabulary)",
)(_context_find)


# --- COCO-Stuff (stuffthingmaps) -----------------------------------------------------------------
_COCO_IMAGE_DIRS = ("images/val2017", "val2017", "coco/val2017")
_COCO_LABEL_DIRS = ("stuffthingmaps_trainval2017/val2017", "stuffthingmaps/val2017", "annotations/val2017",
                    "coco/stuffthingmaps_trainval2017/val2017")


def _first_dir(root: Path, options: tuple[str, ...], what: str) -> Path:
    for option in options:
        if (root / option).is_dir():
            return root / option
    raise FileNotFoundError(f"no {what} folder under {root}; looked for {', '.join(options)}")


def _coco_find(root: Path, image_list: Path | None) -> list[Sample]:
    if image_list is None:
        raise ValueError(
            "COCO-Object and COCO-Stuff-27 are scored on the curated 2,175-image val2017 list used by "
            "IIC, PiCIE and STEGO (Coco164kFull_Stuff_Coarse_7.txt, from the PiCIE/STEGO data release); "
            "ovseg does not ship it: pass it with --image-list FILE (image_list=)")
    image_dir = _first_dir(root, _COCO_IMAGE_DIRS, "COCO val2017 image")
    label_dir = _first_dir(root, _COCO_LABEL_DIRS, "stuffthingmaps val2017 label")
    return _pairs(_read_ids(image_list), image_dir, label_dir, ".jpg")


_COCO = class_data()["cocostuff"]
_THING_IDS = [i for i, n in enumerate(_COCO[:91]) if not n.endswith("*")]
_STUFF_IDS = list(range(91, 182))
register_dataset(
    name="coco-object",
    classes=("background", *(_COCO[i].replace("_", " ") for i in _THING_IDS)),
    lut=_lut({**{i: 0 for i in _STUFF_IDS}, **{t: k + 1 for k, t in enumerate(_THING_IDS)}}),
    background=0, vocabulary="coco_object",
    description="COCO val2017 curated list, 80 things + background (every stuff class); 255 ignored",
)(_coco_find)
register_dataset(
    name="cocostuff27", classes=tuple(class_data()["cocostuff27"]),
    lut=_lut(dict(enumerate(class_data()["cocostuff_fine_to_coarse"]))), background=None,
    vocabulary="coco_stuff_27", description="COCO val2017 curated list, 27 coarse classes (PiCIE/STEGO table)",
)(_coco_find)
_USED = _THING_IDS + _STUFF_IDS
register_dataset(
    name="cocostuff171", classes=tuple(_COCO[i].replace("_", " ") for i in _USED),
    lut=_lut({v: k for k, v in enumerate(_USED)}), background=None, vocabulary="coco_stuff_171",
    description="COCO-Stuff 171 classes (open vocabulary); with --image-list, any image list",
)(_coco_find)


# --- Cityscapes --------------------------------------------------------------------------------
def _cityscapes_find(root: Path, image_list: Path | None) -> list[Sample]:
    image_root, label_root = root / "leftImg8bit" / "val", root / "gtFine" / "val"
    if not image_root.is_dir() or not label_root.is_dir():
        raise FileNotFoundError(f"expected {image_root} and {label_root}")
    samples = []
    for image in sorted(image_root.glob("*/*_leftImg8bit.png")):
        stem = image.name[: -len("_leftImg8bit.png")]
        label = label_root / image.parent.name / f"{stem}_gtFine_labelIds.png"
        if not label.is_file():
            raise FileNotFoundError(f"label {label} missing for {image}")
        samples.append(Sample(stem, image, label))
    if image_list is not None:
        keep = set(_read_ids(image_list))
        samples = [s for s in samples if s.id in keep or f"{s.id}_leftImg8bit" in keep]
    return samples


_CITY = class_data()["cityscapes"]
register_dataset(
    name="cityscapes", classes=tuple(_CITY), lut=_lut({i + 7: i for i in range(27)}), background=None,
    vocabulary=None, description="Cityscapes val, 27 classes = labelIds 7..33, all others ignored",
)(_cityscapes_find)
_CITY19 = class_data()["cityscapes19_label_ids"]
register_dataset(
    name="cityscapes19", classes=tuple(_CITY[i - 7] for i in _CITY19),
    lut=_lut({label_id: k for k, label_id in enumerate(_CITY19)}), background=None, vocabulary="cityscapes",
    description="Cityscapes val, the 19 trainId classes (open vocabulary)",
)(_cityscapes_find)


# --- ADE20K ------------------------------------------------------------------------------------
def _ade_find(root: Path, image_list: Path | None) -> list[Sample]:
    base = root / "ADEChallengeData2016" if (root / "ADEChallengeData2016").is_dir() else root
    image_dir, label_dir = base / "images" / "validation", base / "annotations" / "validation"
    if not image_dir.is_dir():
        raise FileNotFoundError(f"expected {image_dir}")
    ids = _read_ids(image_list) if image_list else sorted(p.stem for p in image_dir.glob("*.jpg"))
    return _pairs(ids, image_dir, label_dir, ".jpg")


register_dataset(
    name="ade20k", classes=tuple(class_data()["ade20k"]), lut=_lut({i: i - 1 for i in range(1, 151)}),
    background=None, vocabulary="ade20k_150",
    description="ADE20K val (2,000 images), 150 classes; id 0 'other' ignored, not scored as a class",
)(_ade_find)
