"""Label or segment large image collections on a Ray cluster (Ray Data), with the outputs of
one machine. Needs the extra: `pip install "ovseg[ray]"`.

    from ovseg import SegmenterConfig
    from ovseg.distributed import label_dataset

    records = label_dataset("s3://bucket/photos/", "cat,dog,grass,sky",
                            out="s3://bucket/labels/", format="parquet",
                            config=SegmenterConfig(batch_size=4), workers=8,
                            address="auto")     # None: RAY_ADDRESS, else a local Ray for the job
    print(records.filter(lambda r: r["error"] is not None).to_pandas()[["path", "error"]])

Which Ray: a Ray already initialized in this process (`ray.init(...)`), else `address`, else
the RAY_ADDRESS environment variable, else a fresh local Ray (never the cluster `ray start` last
recorded on this machine); a named cluster that does not answer within `connect_timeout` seconds
raises `ClusterUnreachable` (a `SettingError`).

How it runs: the inputs (local files, folders and globs, URIs that pyarrow can read, or a
`ray.data.Dataset` with a "path" column and optionally "bytes") are decoded by CPU tasks with
`ovseg.io.read_image`'s rules; an actor pool of `workers` actors, each holding one `Segmenter`
built from `config` (models loaded once per actor, one GPU each when the cluster has GPUs),
runs the single-machine pipeline on batches of `config.batch_size` images. Decoding and the
model overlap (Ray Data streams blocks between the stages; with CPU-only actors it may fuse
the decode into the actor, see docs/scale-out.md).

Outputs: format "files" writes `<stem>.labels.png`, `.labels.overlay.png` and `.labels.json`
per image (`.segments.*` when segmenting), byte-identical to `Segmenter.process_files` with the
same settings; format "parquet" writes one row per image (see `ovseg.distributed._records` for
the columns), and `parquet_to_files` turns such a table back into the per-image files.

Faults: an unreadable image becomes a record with status "failed" and its error; a dead actor is
restarted by Ray and its batch redone (outputs are written atomically, so a retried image is
written again whole, never half); images whose outputs are current (same segment settings and
vocabulary) are skipped unless `overwrite`.
"""
from __future__ import annotations

import os
from pathlib import Path

from ovseg.settings.checks import SettingError

INSTALL_HINT = 'the Ray engine needs Ray: pip install "ovseg[ray]"'

__all__ = ["INSTALL_HINT", "ClusterUnreachable", "label_dataset", "parquet_to_files", "require_ray", "segment_dataset"]

DEFAULT_CONNECT_TIMEOUT = 30.0  # seconds a named cluster has to answer (ovseg.distributed._connect)


class ClusterUnreachable(SettingError):
    """A named Ray cluster did not answer in time, or none was found for "auto" (a setting:
    the CLI exits 2); the message names the address and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__("ray_address", message)


def require_ray():
    """Import and return `ray`, or raise ImportError with the install command."""
    try:
        import pyarrow  # noqa: F401
        import ray
        import ray.data  # noqa: F401
    except ImportError as err:
        raise ImportError(INSTALL_HINT) from err
    return ray


def label_dataset(inputs, classes, *, out=None, config=None, format: str = "files",
                  workers: int = 1, gpus_per_worker: float | None = None,
                  cpus_per_worker: float = 1, overwrite: bool = False, ray_remote_args=None,
                  address: str | None = None, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT):
    """Label every image of `inputs` with the classes of `classes` on a Ray cluster.

    Arguments:
        inputs: a path, folder, glob or URI (s3://, gs://, file://, ...), a list of them, or a
            `ray.data.Dataset` with a "path" column (and optionally "bytes", "stem").
        classes: as `Segmenter.label` takes them: names, a comma string ("cat,dog"), a
            vocabulary file, a shipped vocabulary name ("voc"), or a `Vocabulary`.
        out: a folder or URI for the outputs; None: nothing is written and the lazy Dataset of
            records is returned (execute it yourself, e.g. `.write_parquet(...)`).
        config: a `SegmenterConfig` (default settings when None); every actor builds its own
            `Segmenter` from it. `config.batch_size` images go through the model per call.
        format: "files" (three files per image, as `ovseg label`) or "parquet" (a table).
        workers: actors in the pool (one model copy each).
        gpus_per_worker: GPUs per actor; None: 1 when the cluster has GPUs, else 0 (CPU actors).
            Fractions (0.5) put several actors on one GPU.
        cpus_per_worker: CPUs reserved per actor.
        overwrite: redo images whose outputs are current.
        ray_remote_args: extra Ray options for the actors (e.g. {"accelerator_type": "A10G"},
            {"runtime_env": {...}}); the defaults retry a dead actor's batch without limit.
        address: the cluster when this process has no Ray yet: "auto" (the one this machine
            belongs to), "HOST:PORT", "ray://HOST:PORT", "local"; None: the RAY_ADDRESS
            environment variable, else a fresh local Ray (see the module docstring).
        connect_timeout: seconds a named cluster has to answer before `ClusterUnreachable`.

    Returns:
        With `out`: the materialized `ray.data.Dataset` of this run's records, one per image,
        with "status" ("done", "skipped", "failed") and "error". Without: the lazy Dataset.
    """
    from ovseg.pipeline import Segmenter

    return _dataset(inputs, Segmenter.vocabulary(classes), out=out, config=config, format=format,
                    workers=workers, gpus_per_worker=gpus_per_worker,
                    cpus_per_worker=cpus_per_worker, overwrite=overwrite,
                    ray_remote_args=ray_remote_args, address=address, connect_timeout=connect_timeout)


def segment_dataset(inputs, *, out=None, config=None, format: str = "files", workers: int = 1,
                    gpus_per_worker: float | None = None, cpus_per_worker: float = 1,
                    overwrite: bool = False, ray_remote_args=None, address: str | None = None,
                    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT):
    """Class-agnostic segments of every image of `inputs` (as `ovseg segment`); the arguments
    and the result are those of `label_dataset` without `classes`."""
    return _dataset(inputs, None, out=out, config=config, format=format, workers=workers,
                    gpus_per_worker=gpus_per_worker, cpus_per_worker=cpus_per_worker,
                    overwrite=overwrite, ray_remote_args=ray_remote_args, address=address,
                    connect_timeout=connect_timeout)


def _dataset(inputs, vocab, *, out, config, format, workers, gpus_per_worker, cpus_per_worker,
             overwrite, ray_remote_args, address, connect_timeout):
    from ovseg.pipeline import SegmenterConfig

    config = (config or SegmenterConfig()).validate()  # settings errors before Ray or any model starts
    require_ray()
    from ovseg.distributed import _connect, _job

    # verbose: Ray's own logging defaults in Python (the CLI connects first, quiet unless --verbose)
    _connect.connect(address, timeout=connect_timeout, verbose=True)
    records, known_failures = _job.build(
        inputs, vocab, out=out, fmt=format, config=config, workers=workers,
        gpus_per_worker=gpus_per_worker, cpus_per_worker=cpus_per_worker, overwrite=overwrite,
        ray_remote_args=ray_remote_args)
    if out is None:
        return records
    return _job.run(records, out=out, fmt=format, known_failures=known_failures)


def parquet_to_files(table, out: str | os.PathLike, *, overwrite: bool = False,
                     read_images: bool = True) -> list[Path]:
    """Write the per-image files (`<stem>.labels.png`, `.overlay.png`, `.json`) of a results
    table, as `--format files` would have written them.

    Arguments:
        table: a Parquet file or folder written by `--format parquet`, a `pyarrow.Table`, or a
            pandas DataFrame of such rows.
        out: the output folder.
        overwrite: rewrite files that exist.
        read_images: re-read each source image (the "path" column, with the row's max_pixels)
            for the overlay; False, or an unreadable source, gives a grey overlay background.

    Returns: the JSON paths written. Failed rows write nothing; where a path has both a failed
    and a done row (a later re-run succeeded), the done row is used.
    """
    import pyarrow as pa

    from ovseg import io as _io
    from ovseg.distributed import _records, _sources
    from ovseg.pipeline import Segmenter

    if isinstance(table, (str, os.PathLike)):
        import pyarrow.dataset as pads

        table = pads.dataset(str(table), format="parquet").to_table()
    rows = table.to_pylist() if isinstance(table, pa.Table) else table.to_dict("records")
    written = []
    for row in rows:
        if row.get("status") != "done" or row.get("error"):
            continue
        outs = _io.output_paths(Path(row["path"]), Path(out), row["task"], row["stem"])
        if not overwrite and all(p.is_file() for p in outs.values()):
            continue
        image = None
        if read_images:
            try:
                image, _ = _sources.decode(row["path"], None, int(row["max_pixels"]))
            except _io.ImageReadError:
                image = None
        result = _records.record_to_result(row, image)
        Segmenter.write_outputs(result, outs)
        written.append(outs["json"])
    return written
