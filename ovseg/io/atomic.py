"""Atomic writes: a file (or a folder) appears whole or not at all (re-exported by `ovseg.io`).

:func:`atomic_write` writes to a temporary file in the target's folder and renames it into place
(`os.replace`), so an interrupted run never leaves a half-written output; :func:`atomic_folder`
does the same for a folder of files (a YOLO dataset, `ovseg.export`).
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Callable

def atomic_write(path: str | os.PathLike, write: Callable[[object], None], mode: str = "wb") -> Path:
    """Call `write(file)` on a temporary file beside `path`, then rename it onto `path`.

    The output appears whole or not at all: on any error (or interruption) the temporary file is
    removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get the usual mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def atomic_folder(path: str | os.PathLike, fill: Callable[[Path], object]):
    """Call `fill(folder)` on a new temporary folder beside `path`, then put it in `path`'s place.

    A folder already at `path` is replaced (renamed aside, then removed), so readers see the old
    folder or the new one, whole; on any error the temporary folder is removed and `path` is left
    as it was. Returns what `fill` returns.
    """
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        out = fill(tmp)
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700 folders; outputs get the usual mode
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / path.name)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
