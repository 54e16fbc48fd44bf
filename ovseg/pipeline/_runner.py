"""The file runner behind `Segmenter.process_files`, and the ONE retry policy (`run_batch`,
`write_one`) that both engines use (the Ray stage, `ovseg.distributed._stages`, calls them too).

    reader threads         main thread                               writer thread
    decode + resize  ->  backbone, cut, PAMR, CLIP (per batch)  ->  PNG/JSON encode + atomic write

With `SegmenterConfig.overlap` (the default) the next images are decoded and resized
(`Segmenter.prepare`) in reader threads while the models run, and finished images are encoded
and written by one writer thread, both through bounded queues, so memory stays at a few batches.
It is meant for GPUs and larger CPUs, where decoding large photos and encoding full-size PNGs
would otherwise wait for the models; on a small CPU, where the models already use every core, it
gains little (overlapped against serial: docs/benchmarks-pipeline.md).
Results are written, and recorded in the RunSummary, in input order. With overlap off the same
functions run inline, one after the other: the outputs are the same bytes either way (the same
code computes them; only the thread it runs in changes).

Errors, one policy for the local and the Ray engine (`run_batch`, `write_one`):
  * what concerns every image stops the run (`STOPS_THE_RUN`): a bad setting (SettingError), missing
    weights, a model that cannot load, fp16 overflow (FloatingPointError) and MemoryError;
  * any other Exception while processing fails that image only (a failing batch is retried image
    by image to find which); an image that cannot be read fails alone too;
  * any Exception but MemoryError while writing an image's outputs fails that image only.
Ctrl-C (or any other BaseException) drops the writes not yet started, lets the one under way
finish (every file is written atomically: whole or not at all) and re-raises.
"""
from __future__ import annotations

import os
import queue
import threading
from collections import deque
from contextlib import closing
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from tqdm.auto import tqdm

from ovseg import io as _io
from ovseg.settings.checks import SettingError
from ovseg.settings.weights import WeightsNotFoundError
from ovseg.pipeline import _notices
from ovseg.pipeline._models import ModelLoadError
from ovseg.pipeline._records import output_status
from ovseg.pipeline._results import RunSummary

# Errors that concern every image: they stop a run (local or Ray), never fail one image alone.
STOPS_THE_RUN = (SettingError, WeightsNotFoundError, ModelLoadError, FloatingPointError, MemoryError)

_END = object()  # sentinel closing a worker's queue


def prefetch(fn: Callable[[Any], Any], items: Iterable, *, workers: int = 2, depth: int = 4,
             enabled: bool = True) -> Iterator[tuple[Any, Any, Exception | None]]:
    """Yield (item, fn(item), None), or (item, None, error) when fn raised an Exception, in the
    order of `items`, computing fn in `workers` threads at most `depth` items ahead of the consumer.

    enabled=False: fn runs inline when the consumer asks for the item (no threads).
    Closing the generator (or an exception in the consumer) cancels what has not started and
    waits for the calls under way.
    """
    if not enabled:
        for item in items:
            try:
                yield item, fn(item), None
            except Exception as err:  # noqa: BLE001  (handed to the consumer, which decides)
                yield item, None, err
        return
    pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="ovseg-read")
    window: deque = deque()
    source = iter(items)
    try:
        for item in source:
            window.append((item, pool.submit(fn, item)))
            if len(window) >= max(1, depth):
                break
        while window:
            item, future = window.popleft()
            for nxt in source:  # keep the window full
                window.append((nxt, pool.submit(fn, nxt)))
                break
            try:
                yield item, future.result(), None
            except Exception as err:  # noqa: BLE001
                yield item, None, err
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class OrderedWorker:
    """Run fn(item) for every submitted item, in submission order, in one background thread.

    submit() blocks while `depth` items are waiting (bounded memory). An exception raised by fn
    stops the worker and is re-raised by the next submit() or by close(). enabled=False: fn runs
    inline in submit(). Use as a context manager: a normal exit waits for every item; an
    exception (Ctrl-C included) drops the items not started and waits for the one under way.
    """

    def __init__(self, fn: Callable[[Any], None], *, depth: int = 4, enabled: bool = True) -> None:
        self.fn, self.enabled = fn, enabled
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._thread = None
        if enabled:
            self._thread = threading.Thread(target=self._loop, name="ovseg-write", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if self._error is None:  # after a failure, drain without running
                try:
                    self.fn(item)
                except BaseException as err:  # noqa: BLE001  (re-raised in the submitting thread)
                    self._error = err

    def _raise(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def submit(self, item: Any) -> None:
        if not self.enabled:
            self.fn(item)
            return
        self._raise()
        while True:  # a timed put keeps Ctrl-C responsive while the queue is full
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                self._raise()

    def close(self, *, cancel: bool = False) -> None:
        if self._thread is None:
            return
        if cancel:  # drop what has not started
            try:
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
        self._queue.put(_END)
        while self._thread.is_alive():
            self._thread.join(timeout=0.1)
        self._thread = None
        if not cancel:
            self._raise()

    def __enter__(self) -> "OrderedWorker":
        return self

    def __exit__(self, kind, value, tb) -> None:
        self.close(cancel=kind is not None)


def run_batch(fn: Callable[[list], list], items: list, names: list[str]) -> list:
    """The retry policy: fn(items) -> one result per item; on an Exception that is not in
    `STOPS_THE_RUN`, a batch of several is retried item by item, and a single item gets the
    message "<name>: <Error>: <text>" (a str) in place of its result. Returns the results."""
    if not items:
        return []
    try:
        return list(fn(items))
    except STOPS_THE_RUN:
        raise
    except Exception as err:  # noqa: BLE001  (this image fails, the run goes on; Ctrl-C is no Exception)
        if len(items) > 1:  # find which image of the batch it was
            return [out for item, name in zip(items, names) for out in run_batch(fn, [item], [name])]
        return [f"{names[0]}: {type(err).__name__}: {err}"]


def write_one(write: Callable[[], Any], name: str) -> str | None:
    """Write one image's outputs: None when done, else the message that fails that image alone."""
    try:
        write()
    except MemoryError:
        raise
    except Exception as err:  # noqa: BLE001  (this image fails, the run goes on)
        return f"{name}: cannot write outputs: {err}"
    return None


@dataclass(frozen=True)
class FileStages:
    """What the file runner calls, and nothing else of a Segmenter's: the stages of one run.

    prepare(array (H, W, 3) uint8) -> prepared (backbone input, working image), in reader threads;
    run(arrays, sources=, source_sizes=, prepared=) -> one SegmentationResult per array (a batch);
    write(result, outs) -> None: one image's PNGs and JSON (the JSON last), in the writer thread.
    """

    prepare: Callable[[Any], Any]
    run: Callable[..., list]
    write: Callable[[Any, dict], None]


def process_files(jobs: list, stages: FileStages, record: dict, *, overwrite: bool = False,
                  progress: bool | None = None, overlap: bool = True, batch_size: int = 1,
                  max_pixels: int = _io.DEFAULT_MAX_PIXELS) -> RunSummary:
    """The plan `jobs` [(image path, {"png", "overlay", "json": output path})] run by `stages`:
    skip the images whose outputs record `record` (`_records.output_status`) unless `overwrite`,
    read, process and write the rest (`run_files`), then remove the outputs the naming rule gave
    these images before (`ovseg.io.stale_outputs`). Returns the RunSummary."""
    summary = RunSummary()
    bar = tqdm(total=len(jobs), unit="img", disable=None if progress is None else not progress)
    todo = []
    for path, outs in jobs:
        status = "missing" if overwrite else output_status(outs["json"], record, [outs["png"], outs["overlay"]])
        if status == "current":
            summary.skipped.append(path)
            bar.update()
            continue
        if status == "changed":
            summary.redone.append(path)
        todo.append((path, outs))
    try:  # read, process and write, overlapped when `overlap`
        run_files(stages, todo, summary, bar, overlap=overlap, batch_size=batch_size, max_pixels=max_pixels)
    finally:
        bar.close()
    done = set(summary.done)
    kept = done | set(summary.skipped)
    for path, outs in jobs:  # outputs of these images under a name the rule gave them before
        if path in kept:
            for stale in _io.stale_outputs(path, outs):
                _io.remove_outputs(stale)
    summary.redone = [p for p in summary.redone if p in done]
    return summary


def run_files(stages: FileStages, jobs: list, summary, bar, *, overlap: bool = True, batch_size: int = 1,
              max_pixels: int = _io.DEFAULT_MAX_PIXELS) -> None:
    """Read, process and write `jobs`, a list of (path, {"png", "overlay", "json": output path})
    still to do, by `stages`; fills `summary` and `bar`."""
    batch = batch_size

    def load(job):
        array, source_size = _io.read_image(job[0], max_pixels=max_pixels)
        return array, source_size, stages.prepare(array)

    def record(entry) -> None:  # writer thread: outputs of one image, or its failure
        path, outs, result, error = entry
        if error is None:  # the JSON last: it marks the image done
            error = write_one(lambda: stages.write(result, outs), str(path))
            if error is None:
                summary.done.append(path)
                _notices.add(summary.notices, path, result.settings, len(result.segments),
                             result.segment_map.shape, result.source_size)
            else:
                summary.failed.append((path, error))
        else:
            summary.failed.append((path, error))
        bar.update()

    readers = max(1, min(4, (os.cpu_count() or 2) // 2))
    # closing(): on an exception, reading ahead stops now, not when the traceback is freed
    with OrderedWorker(record, depth=2 * batch, enabled=overlap) as writer, \
            closing(prefetch(load, jobs, workers=readers, depth=2 * batch, enabled=overlap)) as loads:
        pending: list = []
        for (path, outs), loaded, err in loads:
            if err is not None:  # ImageReadError, or anything else a decoder raises
                if isinstance(err, MemoryError):
                    raise err
                writer.submit((path, outs, None, str(err) if isinstance(err, _io.ImageReadError)
                               else f"{path}: {type(err).__name__}: {err}"))
                continue
            pending.append((path, outs, *loaded))
            if len(pending) >= batch:
                _process(stages, pending, writer)
                pending = []
        _process(stages, pending, writer)


def _process(stages: FileStages, pending: list, writer: OrderedWorker) -> None:
    """Run the stages on a batch [(path, outs, array, source_size, prepared)] by `run_batch` and
    hand each result (or failure message) to the writer."""
    def fn(items):
        return stages.run([p[2] for p in items], sources=[str(p[0]) for p in items],
                          source_sizes=[p[3] for p in items], prepared=[p[4] for p in items])

    for (path, outs, *_), out in zip(pending, run_batch(fn, pending, [str(p[0]) for p in pending])):
        if isinstance(out, str):
            writer.submit((path, outs, None, out))
        else:
            writer.submit((path, outs, out, None))
