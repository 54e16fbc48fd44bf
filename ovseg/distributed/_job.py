"""Building and running the Ray Data job (imports ray; only `ovseg.distributed` loads this)."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import ray

from ovseg.distributed import _records, _sources, _stages

FORMATS = ("files", "parquet")


def build(inputs, vocab, *, out, fmt, config, workers, gpus_per_worker, cpus_per_worker,
          overwrite, ray_remote_args):
    """The lazy Dataset of records (see `ovseg.distributed.label_dataset`)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    out = None if out is None else str(out)
    settings = config.segment_settings()  # an unknown backbone fails here, before Ray starts work
    classes = None if vocab is None else list(vocab.names)
    task = "segment" if vocab is None else "label"
    if isinstance(inputs, ray.data.Dataset):
        source = inputs
        if "path" not in source.columns():
            raise ValueError("an input Dataset needs a 'path' column (e.g. ray.data.read_binary_files"
                             "(..., include_paths=True)), optionally 'bytes' and 'stem'")
    else:
        found = _sources.list_inputs(inputs, exclude=[] if out is None else [out])
        if not found:
            raise FileNotFoundError(f"no images found in {inputs}")
        source = ray.data.from_items([{"path": p, "stem": s} for p, s in found],
                                     override_num_blocks=min(len(found), 8 * workers))
    done, failed = frozenset(), frozenset()
    if out is not None and fmt == "parquet" and not overwrite:
        done, failed = (frozenset(x) for x in rows_in_table(out, settings, classes))
    from ovseg.pipeline import Segmenter  # run_record needs no model

    record = Segmenter(dataclasses.replace(config, cache=False)).run_record(vocab)
    decode = _stages.Decode(task=task, out=out, fmt=fmt, settings=settings, classes=classes,
                            max_pixels=config.max_pixels, overwrite=overwrite, record=record, done=done)
    decoded = source.map_batches(decode, batch_size=1, batch_format="pyarrow", num_cpus=1)
    # Ray Data's actor pools default to max_restarts=-1, max_task_retries=-1: a dead actor is
    # replaced and its batch redone (pass max_restarts=0 in ray_remote_args to fail instead).
    remote = dict(ray_remote_args or {})
    gpus = _gpus(gpus_per_worker)
    records = decoded.map_batches(
        _stages.Segment,
        fn_constructor_kwargs={"config": config, "vocab": vocab, "out": out, "fmt": fmt,
                               "threads": actor_threads(cpus_per_worker)},
        batch_size=config.batch_size, batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_gpus=gpus, num_cpus=cpus_per_worker, **remote,
    )
    return records, failed


def actor_threads(cpus_per_worker: float) -> int:
    """torch threads per actor: its reserved CPUs, rounded up, at least 1 (docs/scale-out.md,
    "Byte-identical, when": the local engine at this many threads gives the same bytes)."""
    return max(1, math.ceil(cpus_per_worker or 1))


def remove_stale_sets(records, out) -> int:
    """The local engine's rename cleanup (`ovseg.pipeline._runner.process_files`, issue 22 item
    13) for a local `out` in format "files": an image done or skipped now whose outputs an earlier
    run wrote under its other name (`cat.labels.*` vs `cat.png.labels.*`) loses that old set.
    Runs on the driver once the job is done. Returns the number of sets removed."""
    from ovseg import io as _io

    removed = 0
    for row in records.select_columns(["path", "stem", "task", "status"]).iter_rows():
        if row["status"] not in ("done", "skipped") or _sources.is_uri(row["path"]):
            continue
        image = Path(row["path"])
        for stale in _io.stale_outputs(image, _io.output_paths(image, Path(out), row["task"], row["stem"])):
            _io.remove_outputs(stale)
            removed += 1
    return removed


def _gpus(gpus_per_worker):
    """None: one GPU per actor when the cluster has GPUs, else CPU actors."""
    if gpus_per_worker is not None:
        return float(gpus_per_worker)
    return 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0


def run(records, *, out, fmt, known_failures=frozenset()):
    """Execute: files are written by the actors; Parquet is written from the finished records,
    leaving out skipped rows and failures the table already has (same path, same error), and
    nothing is written when nothing is new. Returns the materialized Dataset of this run's records."""
    records = records.materialize()
    if out is not None and fmt == "files" and not _sources.is_uri(out):
        remove_stale_sets(records, out)
    if out is not None and fmt == "parquet":
        new = records.map_batches(_only_new, fn_args=(known_failures,), batch_format="pyarrow")
        if new.count():
            new.write_parquet(str(out))
    return records


def _only_new(table, known_failures):
    import pyarrow as pa

    keep = [s != "skipped" and not (s == "failed" and (p, e) in known_failures)
            for p, s, e in zip(table["path"].to_pylist(), table["status"].to_pylist(),
                               table["error"].to_pylist())]
    return table.filter(pa.array(keep, type=pa.bool_()))  # a filter keeps the schema


def rows_in_table(out, settings: dict, classes) -> tuple[set[str], set[tuple[str, str]]]:
    """In the Parquet table at `out`, rows made with these settings and this vocabulary:
    (paths done, (path, error) of failures)."""
    import pyarrow.dataset as pads

    try:
        if _sources.is_uri(out):
            filesystem, root = _sources._filesystem(str(out))
            table = pads.dataset(root, filesystem=filesystem, format="parquet").to_table(
                columns=["path", "status", "error", "settings", "vocabulary"])
        else:
            if not Path(out).is_dir() or not any(Path(out).glob("*.parquet")):
                return set(), set()
            table = pads.dataset(str(out), format="parquet").to_table(
                columns=["path", "status", "error", "settings", "vocabulary"])
    except FileNotFoundError:
        return set(), set()
    done, failed = set(), set()
    for r in table.to_pylist():
        if r["vocabulary"] == classes and _records.same_settings(r["settings"], settings):
            if r["status"] == "done":
                done.add(r["path"])
            elif r["status"] == "failed":
                failed.add((r["path"], r["error"]))
    return done, failed

