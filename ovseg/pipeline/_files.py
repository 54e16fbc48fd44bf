"""Images in, files out: what `Segmenter.segment` / `label` read (`read_inputs`), and what
`Segmenter.process_files` plans (`plan_files`) and writes (`write_outputs`) per image."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ovseg import io as _io

__all__ = ["no_images", "plan_files", "read_inputs", "write_outputs"]


def read_inputs(images, max_pixels) -> tuple[bool, list[np.ndarray], list, list]:
    """images: one image or a list (as `Segmenter`'s docstring says) -> (a list was given, arrays
    (H, W, 3) uint8, sources (path or None), source sizes (the file's (H, W) before a max_pixels
    shrink, or None)). A folder stands for its image files, as the CLI takes them
    (`ovseg.io.find_images`: recursive, sorted, ovseg's outputs left out), and makes a list."""
    many = isinstance(images, (list, tuple)) or (type(images).__module__.startswith("torch") and images.ndim == 4)
    items = []
    for item in list(images) if many else [images]:
        if isinstance(item, (str, os.PathLike)) and Path(item).is_dir():
            found = _io.find_images([item])
            if not found:
                raise FileNotFoundError(f"{item}: no image files in this folder (looked for "
                                        f"{', '.join(_io.IMAGE_EXTENSIONS)}, in subfolders too)")
            items += found
            many = True
        else:
            items.append(item)
    arrays, sources, sizes = [], [], []
    for item in items:
        if isinstance(item, (str, os.PathLike)):
            array, size = _io.read_image(item, max_pixels=max_pixels)
            sources.append(str(item))
        else:
            array, size = _io.as_rgb_array(item, max_pixels=max_pixels), None
            sources.append(None)
        arrays.append(array)
        sizes.append(size)
    return many, arrays, sources, sizes


def plan_files(inputs, out_dir: str | os.PathLike, task: str) -> list[tuple[Path, dict[str, Path]]]:
    """(image path, its output paths {"png", "overlay", "json"}) for every image in `inputs` (a
    file or folder, or a list of them; each must exist), in order. task: "segment" or "label"."""
    inputs = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    for item in inputs:
        if not isinstance(item, (str, os.PathLike)):
            raise TypeError(f"inputs must be paths of files or folders, got {type(item).__name__}")
        if not Path(item).exists():
            raise FileNotFoundError(f"no such file or folder: {item}")
    paths = _io.find_images(inputs)
    stems = _io.output_stems(paths, inputs)
    return [(p, _io.output_paths(p, Path(out_dir), task, stem)) for p, stem in zip(paths, stems)]


def no_images(inputs) -> str:
    """The warning of a file run whose `inputs` hold no image file (the CLI: a usage error)."""
    names = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    return (f"ovseg: no image files in {', '.join(map(str, names))} (looked for "
            f"{', '.join(_io.IMAGE_EXTENSIONS)}, in folders recursively): nothing done")


def write_outputs(result, outs: dict[str, Path]) -> None:
    """Write one image's label PNG, overlay and JSON (the JSON last: it marks the image done).
    result: a SegmentationResult; outs: `plan_files`' output paths of that image."""
    result.save_png(outs["png"])
    result.save_overlay(outs["overlay"])
    result.save_json(outs["json"], label_png=outs["png"].name)
