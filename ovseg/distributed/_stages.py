"""The two stages of a Ray Data job: decode (CPU tasks) and segment (an actor pool).

Both take and give Arrow tables with fixed schemas, so blocks always concatenate and the result
writes to Parquet as it is. Imported inside Ray workers; pyarrow is imported here, never ray.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa

from ovseg import io as _io
from ovseg.pipeline._records import record_status
from ovseg.distributed import _records, _sources

CRASH_ONCE_ENV = "OVSEG_RAY_CRASH_ONCE"  # fault injection for tests: a marker file path

DECODED_SCHEMA = pa.schema([
    ("path", pa.string()), ("stem", pa.string()), ("status", pa.string()), ("error", pa.string()),
    ("image", pa.binary()), ("height", pa.int64()), ("width", pa.int64()),
    ("source_height", pa.int64()), ("source_width", pa.int64()),
])

_SEGMENT = pa.struct([
    ("id", pa.int64()), ("class_index", pa.int64()), ("class_name", pa.string()),
    ("score", pa.float64()),
    ("alternatives", pa.list_(pa.struct([("name", pa.string()), ("score", pa.float64())]))),
    ("area", pa.int64()), ("bbox", pa.list_(pa.int64())), ("rle_size", pa.list_(pa.int64())),
    ("rle_counts", pa.string()),
])
RECORD_SCHEMA = pa.schema([
    ("path", pa.string()), ("stem", pa.string()), ("task", pa.string()), ("status", pa.string()),
    ("error", pa.string()), ("width", pa.int64()), ("height", pa.int64()),
    ("source_width", pa.int64()), ("source_height", pa.int64()), ("max_pixels", pa.int64()),
    ("settings", pa.string()), ("record", pa.string()), ("vocabulary", pa.list_(pa.string())),
    ("segments", pa.list_(_SEGMENT)),
])


def _rows(batch) -> list[dict]:
    if isinstance(batch, pa.Table):
        return batch.to_pylist()
    keys = list(batch)
    n = len(batch[keys[0]]) if keys else 0
    return [{k: _plain(batch[k][i]) for k in keys} for i in range(n)]


def _plain(v):
    return v.item() if isinstance(v, np.generic) else v


class Decode:
    """CPU stage: one input row ("path", optional "stem", optional "bytes") -> a decoded row.

    Rows whose outputs are already current (same settings and vocabulary) come out "skipped"
    without being read; unreadable images come out "failed" with the reader's message.
    """

    def __init__(self, *, task, out, fmt, settings, classes, max_pixels, overwrite, record=None,
                 done=frozenset()):
        self.task, self.out, self.fmt, self.settings, self.record = task, out, fmt, settings, record
        self.classes, self.max_pixels, self.overwrite, self.done = classes, max_pixels, overwrite, done

    def __call__(self, batch) -> pa.Table:
        rows = []
        for row in _rows(batch):
            path = str(row["path"])
            stem = row.get("stem") or Path(path.split("?")[0]).stem
            base = {"path": path, "stem": stem, "status": "todo", "error": None, "image": b"",
                    "height": 0, "width": 0, "source_height": 0, "source_width": 0}
            if not self.overwrite and self._current(path, stem):
                rows.append({**base, "status": "skipped"})
                continue
            try:
                array, (h0, w0) = _sources.decode(path, row.get("bytes"), self.max_pixels)
            except _io.ImageReadError as err:
                rows.append({**base, "status": "failed", "error": str(err)})
                continue
            h, w = array.shape[:2]
            rows.append({**base, "image": np.ascontiguousarray(array).tobytes(), "height": h,
                         "width": w, "source_height": h0, "source_width": w0})
        return pa.Table.from_pylist(rows, schema=DECODED_SCHEMA)

    def _current(self, path: str, stem: str) -> bool:
        if self.out is None:
            return False
        if self.fmt == "parquet":
            return path in self.done
        outs = _sources.output_locations(self.out, stem, self.task)
        if not all(_exists(p) for p in (outs["png"], outs["overlay"])):
            return False
        # the local engine's rule (ovseg.pipeline._records): same settings, vocabulary and output format
        return record_status(_sources.read_text(outs["json"]), self.record) == "current"


def _exists(location: str) -> bool:
    if not _sources.is_uri(location):
        return Path(location).is_file()
    from pyarrow import fs

    filesystem, p = _sources._filesystem(location)
    return filesystem.get_file_info(p).type == fs.FileType.File


class Segment:
    """Actor stage: builds one `Segmenter` (models load once per actor, on its first image) and
    runs the single-machine pipeline (`Segmenter.label` / `segment`) on each batch of decoded
    images; with `out` and format "files" it also writes each image's three files.

    threads: torch's intra-op threads (the actor's CPUs), set before each batch: CPU float sums
    depend on the thread count, and neither Ray's OMP_NUM_THREADS nor a setting made once holds
    (a reused worker process; a call in another thread, where OpenMP keeps its own count)."""

    def __init__(self, *, config, vocab, out, fmt, threads=None):
        from ovseg.pipeline import Segmenter

        self.threads = threads
        self._set_threads()
        self.segmenter = Segmenter(config)
        self.vocab, self.out, self.fmt = vocab, out, fmt
        self.classes = None if vocab is None else list(vocab.names)
        self.task = "segment" if vocab is None else "label"

    def _set_threads(self) -> None:
        if self.threads:
            import torch

            if torch.get_num_threads() != self.threads:
                torch.set_num_threads(self.threads)

    def __call__(self, batch) -> pa.Table:
        self._set_threads()
        rows = _rows(batch)
        todo = [r for r in rows if r["status"] == "todo"]
        if todo:
            _maybe_crash()
        settings = self.segmenter.config.segment_settings()
        results = dict(zip((id(r) for r in todo), self._results(todo)))
        records = []
        for r in rows:
            if r["status"] != "todo":
                records.append(_records.empty_record(r["path"], r["stem"], self.task, status=r["status"],
                                                     error=r["error"], settings=settings,
                                                     classes=self.classes))
                continue
            result = results[id(r)]
            if isinstance(result, str):
                records.append(_records.empty_record(r["path"], r["stem"], self.task, status="failed",
                                                     error=result, settings=settings,
                                                     classes=self.classes))
                continue
            record = _records.result_to_record(result, r["stem"], self.segmenter.config.max_pixels)
            if self.out is not None and self.fmt == "files":
                from ovseg.pipeline._runner import write_one

                error = write_one(lambda: self._write(result, r["stem"]), r["path"])
                if error is not None:  # the local engine's rule: this image fails, the job goes on
                    record = _records.empty_record(r["path"], r["stem"], self.task, status="failed",
                                                   error=error, settings=settings, classes=self.classes)
            records.append(record)
        return pa.Table.from_pylist(records, schema=RECORD_SCHEMA)

    def _results(self, todo: list[dict]) -> list:
        """One SegmentationResult, or an error message, per row, by the local engine's retry
        policy (`ovseg.pipeline._runner.run_batch`): settings errors, missing weights and models
        that cannot load stop the job; any other error fails that image alone."""
        from ovseg.pipeline._runner import run_batch

        def fn(rows):
            arrays = [_io.as_rgb_array(np.frombuffer(r["image"], dtype=np.uint8).reshape(r["height"], r["width"], 3),
                                       max_pixels=self.segmenter.config.max_pixels) for r in rows]
            results = self.segmenter.run(arrays, self.vocab, sources=[r["path"] for r in rows],
                                         source_sizes=[(r["source_height"], r["source_width"]) for r in rows])
            return results  # sources and sizes: what read_image gave process_files

        return run_batch(fn, todo, [r["path"] for r in todo])

    def _write(self, result, stem: str) -> None:
        from ovseg.pipeline import Segmenter

        outs = _sources.output_locations(self.out, stem, self.task)
        if not _sources.is_uri(self.out):
            Segmenter.write_outputs(result, {k: Path(v) for k, v in outs.items()})
            return
        with tempfile.TemporaryDirectory(prefix="ovseg-") as tmp:
            local = {k: Path(tmp) / Path(v.rsplit("/", 1)[-1]) for k, v in outs.items()}
            Segmenter.write_outputs(result, local)
            for key in ("png", "overlay", "json"):  # JSON last: it marks the image done
                _sources.upload(local[key], outs[key])


def _maybe_crash() -> None:
    """Test hook: with OVSEG_RAY_CRASH_ONCE=FILE, the first worker to get work creates FILE and
    dies at once (os._exit), as a killed machine would; later workers run normally."""
    marker = os.environ.get(CRASH_ONCE_ENV)
    if not marker:
        return
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.close(fd)
    os._exit(17)
