"""`ovseg label|segment --engine ray`: the CLI side of `ovseg.distributed` (imports click, and
ray only inside `run_cli`)."""
from __future__ import annotations

import click

MAX_LISTED_FAILURES = 20


def run_cli(config, inputs, out, overwrite, classes, *, address, workers, gpus_per_worker, fmt):
    """Run the job; print a summary like the local engine's; exit 1 when any image failed."""
    from ovseg import distributed

    try:
        distributed.require_ray()
    except ImportError as err:
        raise click.ClickException(str(err)) from None
    from ovseg._weights import WeightsNotFoundError
    from ovseg.distributed import _job
    from ovseg.pipeline import ModelLoadError

    _job.connect(address)
    kwargs = dict(out=str(out), config=config, format=fmt, workers=workers,
                  gpus_per_worker=gpus_per_worker, overwrite=overwrite)
    try:
        if classes is None:
            records = distributed.segment_dataset(list(map(str, inputs)), **kwargs)
        else:
            records = distributed.label_dataset(list(map(str, inputs)), classes, **kwargs)
    except (WeightsNotFoundError, ModelLoadError) as err:
        raise click.ClickException(str(err)) from err
    except (ValueError, FileNotFoundError) as err:
        raise click.UsageError(str(err)) from err
    counts = {"done": 0, "skipped": 0, "failed": 0}
    failures = []
    for row in records.select_columns(["status", "error"]).iter_rows():
        counts[row["status"]] = counts.get(row["status"], 0) + 1
        if row["status"] == "failed" and len(failures) < MAX_LISTED_FAILURES:
            failures.append(row["error"])
    verb = "labelled" if classes is not None else "segmented"
    click.echo(f"{verb} {counts['done']} image(s) into {out} ({fmt}, Ray, {workers} worker(s))", err=True)
    if counts["skipped"]:
        click.echo(f"skipped {counts['skipped']} already done (use --overwrite to redo)", err=True)
    if counts["failed"]:
        click.echo(f"{counts['failed']} image(s) failed:", err=True)
        for message in failures:
            click.echo(f"  {message}", err=True)
        if counts["failed"] > len(failures):
            click.echo(f"  ... and {counts['failed'] - len(failures)} more (see the records)", err=True)
        raise SystemExit(1)
