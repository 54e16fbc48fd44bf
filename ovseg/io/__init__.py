"""Reading images safely, and writing outputs whole or not at all.

Reading policy (what :func:`read_image` and :func:`to_rgb` do to every input):

- EXIF orientation is applied (`ImageOps.exif_transpose`), so outputs match what viewers show.
- Modes: grayscale ("L", "1"), palette ("P"), CMYK, YCbCr, LAB and HSV are converted to RGB with
  Pillow (CMYK without colour management). Images with transparency ("RGBA", "LA", "PA", "P" with
  a transparent index) are **composited on white**, so transparent areas look like paper, not black.
  16-bit images ("I;16*") are scaled by 1/257 (full 16-bit range to 8 bits); 32-bit ("I", "F")
  images are taken as 8-bit if their values fit in 0..255, as 16-bit if they fit in 0..65535, else
  min-max stretched.
- Size: images with more than `max_pixels` pixels (default 2**25, about 33.5 MP; `--max-pixels`)
  are scaled down, aspect kept, to fit, whatever their format; the outputs are then at that
  reduced size and the JSON says so (`source_size`). JPEGs are decoded at 1/2, 1/4 or 1/8 scale
  directly (`Image.draft`), so even huge JPEGs cost little memory; other formats (PNG, TIFF, WebP,
  ...) are decoded in full, then reduced (`Image.reduce` by an integer factor, then Lanczos).
- Decompression bombs: a separate, fixed guard, not `max_pixels`. A file whose header claims more
  than twice Pillow's `Image.MAX_IMAGE_PIXELS` (2 * 89.5 MP = 179 MP by default) is refused before
  a pixel is decoded, and reported like any unreadable file ("refused as a possible
  decompression bomb"); up to that bound a file is decoded (a 179 MP RGB file takes about 0.5 GB
  while it is reduced). ovseg never changes Pillow's global: raise `PIL.Image.MAX_IMAGE_PIXELS`
  yourself for files you trust; `read_image(max_decode_pixels=N)` sets a lower bound of your own.
- A truncated, empty or non-image file raises :class:`ImageReadError`, naming the file.

Writing: :func:`atomic_write` writes to a temporary file in the target's folder and renames it
into place (`os.replace`), so an interrupted run never leaves a half-written output.

One private module per job, their public names re-exported here (`from ovseg.io import X` is the
import to use): reading images `ovseg/io/images.py`; output names, stale sets and COCO RLE
`ovseg/io/outputs.py`; atomic writes `ovseg/io/atomic.py`; nearest resizes `ovseg/io/nearest.py`.
"""
from __future__ import annotations

import os  # noqa: F401 (`ovseg.io.os`: tests patch os.replace through it)
from typing import Iterator

# one module per job; every public name stays importable from here
from ovseg.io.atomic import atomic_folder, atomic_write  # noqa: F401
from ovseg.io.images import (  # noqa: F401
    DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, ImageReadError, as_rgb_array, find_images, open_image, read_image, to_rgb,
)
from ovseg.io.nearest import NEAREST_MODES, nearest_indices, resize_nearest  # noqa: F401
from ovseg.io.outputs import (  # noqa: F401
    OUTPUT_KINDS, bbox_of, is_ovseg_output, output_paths, output_stems, remove_outputs, rle_decode, rle_decode_map,
    rle_encode, rle_encode_map, stale_outputs,
)


def iter_batches(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
