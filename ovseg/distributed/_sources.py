"""Where images come from and where outputs go: local paths, globs and URIs (s3://, gs://, ...).

Local inputs are listed with `ovseg.io.find_images` and named with `ovseg.io.output_stems`, so
the output names are exactly those of `Segmenter.process_files`. URIs are listed and read with
`pyarrow.fs` (any filesystem pyarrow knows: s3, gs, hdfs, abfs, file), imported only when used.
"""
from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from pathlib import Path, PurePosixPath

import numpy as np

from ovseg import io as _io


def is_uri(location: str | os.PathLike) -> bool:
    """True for "scheme://..." (not for a Windows drive letter)."""
    text = str(location)
    return "://" in text and len(text.split("://", 1)[0]) > 1


def _filesystem(uri: str):
    from pyarrow import fs

    return fs.FileSystem.from_uri(uri)  # -> (filesystem, path inside it)


def list_inputs(inputs, exclude=()) -> list[tuple[str, str]]:
    """(source, stem) per image: local files, folders and globs as `process_files` takes them;
    a URI of a file, or of a folder (listed recursively, image extensions only).

    Raises FileNotFoundError naming an input that matches nothing.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    local: list[Path] = []
    out: list[tuple[str, str]] = []
    for item in inputs:
        text = str(item)
        if is_uri(text):
            out += _list_uri(text)
        elif any(c in text for c in "*?[") and not Path(text).exists():
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                raise FileNotFoundError(f"{text}: no file matches")
            local += [Path(m) for m in matches]
        elif Path(text).exists():
            local.append(Path(text))
        else:
            raise FileNotFoundError(f"{text}: no such file or folder")
    if local:
        paths = _io.find_images(local, exclude=[e for e in exclude if not is_uri(e)])
        out = [(str(p), s) for p, s in zip(paths, _io.output_stems(paths, local))] + out
    return out


def _list_uri(uri: str) -> list[tuple[str, str]]:
    from pyarrow import fs

    filesystem, root = _filesystem(uri)
    info = filesystem.get_file_info(root)
    if info.type == fs.FileType.NotFound:
        raise FileNotFoundError(f"{uri}: not found")
    if info.type == fs.FileType.File:
        return [(uri, PurePosixPath(root).stem)]
    base = uri.rstrip("/")
    found = []
    for f in filesystem.get_file_info(fs.FileSelector(root, recursive=True)):
        rel = PurePosixPath(f.path).relative_to(PurePosixPath(root))
        if (f.type == fs.FileType.File and rel.suffix.lower() in _io.IMAGE_EXTENSIONS
                and not rel.name.startswith(".")):
            found.append((f"{base}/{rel}", str(rel.with_suffix(""))))
    return sorted(found)


def read_bytes(source: str) -> bytes:
    """The bytes of a local file or a URI."""
    if not is_uri(source):
        return Path(source).read_bytes()
    filesystem, path = _filesystem(source)
    with filesystem.open_input_stream(path) as f:
        return f.read()


def decode(source: str, data: bytes | None, max_pixels: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode one image with `ovseg.io.read_image`'s rules (EXIF, CMYK, 16-bit, alpha, max_pixels).

    data: the file's bytes (e.g. from `ray.data.read_binary_files`), or None to read `source`.
    A local file is read by `read_image` itself; bytes go through a temporary file with the same
    extension, so both take the same decoder. Raises `ovseg.io.ImageReadError` naming `source`.
    """
    if data is None and not is_uri(source):
        return _io.read_image(source, max_pixels=max_pixels)
    try:
        data = read_bytes(source) if data is None else data
    except OSError as err:
        raise _io.ImageReadError(f"{source}: cannot read: {err}") from err
    suffix = PurePosixPath(source.split("?")[0]).suffix
    fd, tmp = tempfile.mkstemp(prefix="ovseg-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        try:
            return _io.read_image(tmp, max_pixels=max_pixels)
        except _io.ImageReadError as err:
            raise _io.ImageReadError(str(err).replace(tmp, source)) from err
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


# -- outputs ----------------------------------------------------------------------------------

def output_locations(out: str, stem: str, task: str) -> dict[str, str]:
    """{"png", "overlay", "json"} -> where the outputs of `stem` go under `out` (path or URI)."""
    names = _io.output_paths(Path("x"), Path("."), task, stem)
    if is_uri(out):
        return {k: f"{out.rstrip('/')}/{p.as_posix()}" for k, p in names.items()}
    return {k: str(Path(out) / p) for k, p in names.items()}


def read_text(location: str) -> str | None:
    """A small text file's content, or None when it does not exist."""
    try:
        return read_bytes(location).decode("utf-8")
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    except OSError as err:
        if is_uri(location) and "not found" in str(err).lower():  # pyarrow's object stores
            return None
        raise


def upload(local: Path, location: str) -> None:
    """Copy a finished local file to a URI (one PUT: whole or not at all on object stores)."""
    filesystem, path = _filesystem(location)
    filesystem.create_dir(str(PurePosixPath(path).parent), recursive=True)
    with filesystem.open_output_stream(path) as f:
        f.write(local.read_bytes())
