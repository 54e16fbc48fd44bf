"""Segment once, relabel cheaply: a disk cache of segment maps.

The expensive part of the pipeline is the backbone pass (a diffusion UNet) and the cut; naming
the segments with new classes only needs the image and its segment map. Entries are keyed by the
image's decoded pixels (SHA-256, so a renamed or re-saved file with the same pixels hits) and by
every setting that changes the segments (backbone, weights, resolution, alpha, tau, refinement,
dtype, method and the random-walk recipe), and live under `ovseg._paths.cache_dir("segments")` (`$OVSEG_CACHE/segments`).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
from pathlib import Path

import numpy as np

from ovseg.io import atomic_write

_FORMAT = 1  # bump when what is stored changes meaning


def cache_key(image: np.ndarray, settings: dict) -> str:
    """SHA-256 of the image (H, W, 3) uint8 and the settings that affect its segments."""
    h = hashlib.sha256()
    h.update(json.dumps({"format": _FORMAT, **settings}, sort_keys=True, default=str).encode())
    h.update(repr((image.shape, str(image.dtype))).encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.hexdigest()


class SegmentCache:
    """Segment maps (h, w) int on disk, one compressed .npz per key; `root=None`: the default."""

    def __init__(self, root: str | Path | None = None) -> None:
        if root is None:
            from ovseg._paths import cache_dir

            root = cache_dir("segments")
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def get(self, key: str) -> np.ndarray | None:
        entry = self.load(key)
        return None if entry is None else entry[0]

    def load(self, key: str) -> tuple[np.ndarray, dict] | None:
        """(segments (h, w) int64, per-image info stored with them, e.g. the tau "auto" chose)."""
        path = self._path(key)
        try:
            with np.load(path) as data:
                segments = data["segments"].astype(np.int64)
                info = json.loads(str(data["info"])) if "info" in data.files else {}
        except FileNotFoundError:
            self.misses += 1
            return None
        except Exception:  # a damaged entry is a miss, and is dropped
            with contextlib.suppress(OSError):
                path.unlink()
            self.misses += 1
            return None
        self.hits += 1
        return segments, info

    def put(self, key: str, segments: np.ndarray, info: dict | None = None) -> None:
        """Store segments (h, w) int and optional JSON-able per-image info (returned by `load`)."""
        segments = np.asarray(segments)
        dtype = np.uint16 if segments.size == 0 or segments.max() < 65536 else np.int64
        buf = io.BytesIO()
        extra = {"info": np.array(json.dumps(info))} if info else {}
        np.savez_compressed(buf, segments=segments.astype(dtype), **extra)
        atomic_write(self._path(key), lambda f: f.write(buf.getvalue()))
