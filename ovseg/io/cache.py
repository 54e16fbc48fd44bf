"""Segment once, relabel cheaply: a disk cache of segment maps, and the tools to size it.

The expensive part of the pipeline is the backbone pass (a diffusion UNet) and the cut; naming
the segments with new classes only needs the image and its segment map. Entries are keyed by the
image's decoded pixels (SHA-256, so a renamed or re-saved file with the same pixels hits) and by
everything that changes the segments (`key_settings`): the segment settings (method and
random-walk recipe included), the device type and
the resolved dtype (fp16 on CUDA and fp32 on CPU give different maps), a fingerprint of the
weights' contents, and `SEGMENT_CODE_VERSION`.

Caches ovseg writes, all under `ovseg.io.paths.cache_root()` (`$OVSEG_CACHE`, default
`~/.cache/ovseg`): `segments/` (this module; bounded, least recently used entries evicted beyond
`$OVSEG_CACHE_SIZE`, default 4 GB), `text-embeds/` (class-name embeddings of the labeler) and
`prompt-embeds/` (the diffusion backbone's empty-prompt conditioning). `ovseg cache info` and
`ovseg cache clear` show and empty them. A cache that cannot be written warns once and is skipped:
it never fails an image.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import struct
import warnings
from pathlib import Path

import numpy as np

from ovseg.io import atomic_write
from ovseg.settings import defaults as _defaults
from ovseg.settings.checks import check_cache_size

# Bump when the cut / PAMR code changes its output (tests/io/test_cache.py pins the hash of a planted
# case's segments to this version): entries made by older code are then never reused.
# 4: the affinity's power by repeated squaring and the split search's sums in another order
# (float rounding only: the planted case's hash is unchanged, but near-ties elsewhere may not be).
# 5: efficientnet-lite's features are conditioned by default (two stages, centred; METHOD.md 10), so
# maps cached from its raw features must not be reused (the planted case's hash is unchanged).
SEGMENT_CODE_VERSION = 5
GOLDEN_SEGMENTS = {"version": 5, "sha256": "1b3253c4964374f0cdfe8144d134ac849b0131d7274cc512f57296f672a4c830"}

DEFAULT_MAX_BYTES = _defaults.CACHE_BYTES  # segment maps are small (~10-100 KB): tens of thousands of images
CACHE_KINDS = ("segments", "text-embeds", "prompt-embeds")
_WARNED: set[str] = set()


def max_cache_bytes() -> int:
    """The segment cache's size bound: `$OVSEG_CACHE_SIZE` ("500M", "4G", bytes), default 4 GB
    (the setting's one check: `ovseg.settings.checks.check_cache_size`)."""
    return check_cache_size()


def warn_write_failure(kind: str, path, err: BaseException) -> None:
    """Warn, once per process whichever of the caches fails (they share a root, so one failing
    usually means all do), that a cache could not be written; the run goes on without it."""
    if _WARNED:
        return
    _WARNED.add(kind)
    warnings.warn(f"ovseg: cannot write the {kind} cache at {path} ({err}); going on without the "
                  f"caches that cannot be written (set OVSEG_CACHE to a writable folder, or use "
                  f"--no-cache); this is said once", RuntimeWarning, stacklevel=3)


def weights_fingerprint(weights: str | os.PathLike | None, repo_id: str | None = None) -> str:
    """What the weights are, cheaply: for a local folder, every file's relative name and size plus
    the JSON header of each .safetensors file (tensor names, shapes, dtypes, offsets), hashed; no
    weight bytes are read. For a repo id (or None: `repo_id`), the id and the commit the local
    Hugging Face cache points its `main` ref at, if any."""
    path = Path(weights).expanduser() if weights is not None else None
    if path is not None and path.is_dir():
        h = hashlib.sha256()
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            rel = file.relative_to(path).as_posix()
            h.update(f"{rel}\0{file.stat().st_size}\0".encode())
            if file.suffix == ".safetensors":
                h.update(_safetensors_header(file))
        return "dir:" + h.hexdigest()[:32]
    repo = str(weights) if weights is not None else str(repo_id)
    ref = ""
    with contextlib.suppress(Exception):
        from huggingface_hub.constants import HF_HUB_CACHE

        ref_file = Path(HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}" / "refs" / "main"
        ref = ref_file.read_text().strip()
    return f"repo:{repo}@{ref or 'unknown'}"


def _safetensors_header(file: Path) -> bytes:
    """The JSON header of a .safetensors file (8-byte little-endian length, then the JSON)."""
    with contextlib.suppress(OSError, struct.error), open(file, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        if length < 100 * 2**20:
            return f.read(length)
    return b""


def key_settings(settings: dict, *, device_type: str, dtype: str, weights_id: str) -> dict:
    """Everything that changes a segment map: `SegmenterConfig.segment_settings()`, the device type
    ("cpu", "cuda", ...), the resolved dtype name, the weights' fingerprint and the code version."""
    return {**settings, "device_type": device_type, "dtype": dtype, "weights_id": weights_id,
            "segment_code_version": SEGMENT_CODE_VERSION}


def cache_key(image: np.ndarray, settings: dict) -> str:
    """SHA-256 of the image (H, W, 3) uint8 and the settings that affect its segments."""
    h = hashlib.sha256()
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    h.update(repr((image.shape, str(image.dtype))).encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.hexdigest()


class SegmentCache:
    """Segment maps (h, w) int on disk, one compressed .npz per key, least recently used evicted.

    root: the folder; None: `cache_root() / "segments"`. max_bytes: the size bound (None:
    `max_cache_bytes()`). Reads touch an entry's mtime, which is the eviction order.
    """

    def __init__(self, root: str | Path | None = None, max_bytes: int | None = None) -> None:
        if root is None:
            from ovseg.io.paths import cache_root

            root = cache_root() / "segments"
        self.root = Path(root).expanduser()
        self.max_bytes = max_cache_bytes() if max_bytes is None else int(max_bytes)
        self.hits = 0
        self.misses = 0
        self.write_errors = 0
        self._bytes: int | None = None  # running estimate of the folder's size, once scanned

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
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            self.misses += 1
            return None
        except Exception:  # a damaged entry is a miss, and is dropped
            with contextlib.suppress(OSError):
                path.unlink()
            self.misses += 1
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: evicted last
        self.hits += 1
        return segments, info

    def put(self, key: str, segments: np.ndarray, info: dict | None = None) -> None:
        """Store segments (h, w) int and optional JSON-able per-image info (returned by `load`);
        a failure to write (read-only disk, a file where the folder should be) warns once."""
        segments = np.asarray(segments)
        dtype = np.uint16 if segments.size == 0 or segments.max() < 65536 else np.int64
        buf = io.BytesIO()
        extra = {"info": np.array(json.dumps(info))} if info else {}
        np.savez_compressed(buf, segments=segments.astype(dtype), **extra)
        try:
            atomic_write(self._path(key), lambda f: f.write(buf.getvalue()))
        except OSError as err:
            self.write_errors += 1
            warn_write_failure("segments", self.root, err)
            return
        if self._bytes is None:
            self._bytes = folder_size(self.root)
        else:
            self._bytes += len(buf.getvalue())
        if self._bytes > self.max_bytes:
            self._bytes = evict(self.root, int(self.max_bytes * 0.9))


def folder_size(root: Path) -> int:
    """Bytes of the files under `root` (0 if it does not exist)."""
    total = 0
    for p in Path(root).rglob("*"):
        with contextlib.suppress(OSError):
            if p.is_file():
                total += p.stat().st_size
    return total


def evict(root: Path, target_bytes: int) -> int:
    """Delete the least recently used (oldest mtime) files under `root` until at most
    `target_bytes` remain; returns the bytes left."""
    entries = []
    for p in Path(root).rglob("*"):
        with contextlib.suppress(OSError):
            if p.is_file():
                st = p.stat()
                entries.append((st.st_mtime_ns, st.st_size, p))
    total = sum(e[1] for e in entries)
    for _, size, p in sorted(entries, key=lambda e: e[0]):
        if total <= target_bytes:
            break
        with contextlib.suppress(OSError):
            p.unlink()
            total -= size
    return total


def cache_info() -> dict:
    """{"root": str, "max_bytes": int, kind: {"files": n, "bytes": b}} for each cache kind."""
    from ovseg.io.paths import cache_root

    root = cache_root()
    out: dict = {"root": str(root), "max_bytes": max_cache_bytes()}
    for kind in CACHE_KINDS:
        files = [p for p in (root / kind).rglob("*") if p.is_file()] if (root / kind).is_dir() else []
        out[kind] = {"files": len(files), "bytes": sum(p.stat().st_size for p in files)}
    return out


def clear_cache(kinds=CACHE_KINDS) -> dict[str, int]:
    """Delete the given cache kinds (default all); returns the bytes freed per kind."""
    from ovseg.io.paths import cache_root

    freed = {}
    for kind in kinds:
        if kind not in CACHE_KINDS:
            raise ValueError(f"unknown cache {kind!r}; one of {', '.join(CACHE_KINDS)}")
        folder = cache_root() / kind
        freed[kind] = folder_size(folder)
        if folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
    return freed
