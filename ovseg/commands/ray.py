"""`ovseg label|segment --engine ray`: the CLI side of `ovseg.distributed` (imports click, and
ray only inside `run_cli`)."""
from __future__ import annotations

import click

MAX_LISTED_FAILURES = 20


def run_cli(config, inputs, out, overwrite, classes, *, address, workers, gpus_per_worker, fmt,
            timeout=None, quiet=False):
    """Run the job; print a summary like the local engine's; exit 1 when any image failed, 2
    when the named cluster does not answer within `timeout` s, 130 on Ctrl-C."""
    try:
        _run(config, inputs, out, overwrite, classes, address=address, workers=workers,
             gpus_per_worker=gpus_per_worker, fmt=fmt, timeout=timeout, quiet=quiet)
    except KeyboardInterrupt:
        click.echo("interrupted: images done so far are kept; rerun to finish", err=True)
        raise SystemExit(130) from None


def _run(config, inputs, out, overwrite, classes, *, address, workers, gpus_per_worker, fmt,
         timeout, quiet):
    from ovseg import distributed

    try:
        distributed.require_ray()
    except ImportError as err:
        raise click.ClickException(str(err)) from None
    from ovseg.settings.weights import WeightsNotFoundError
    from ovseg.distributed import _connect
    from ovseg.pipeline import ModelLoadError

    ctx = click.get_current_context(silent=True)
    verbose = bool(ctx is not None and ctx.params.get("verbose"))
    timeout = distributed.DEFAULT_CONNECT_TIMEOUT if timeout is None else timeout
    try:
        _connect.connect(address, timeout=timeout, verbose=verbose, option="--ray-address")
    except distributed.ClusterUnreachable as err:
        click.echo(f"Error: {err}", err=True)  # one line, no usage text: the command was right
        raise SystemExit(2) from None
    if quiet:
        import ray.data

        ray.data.DataContext.get_current().enable_progress_bars = False
    kwargs = dict(out=str(out), config=config, format=fmt, workers=workers,
                  gpus_per_worker=gpus_per_worker, overwrite=overwrite, address=address,
                  connect_timeout=timeout)
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
    if not quiet:
        for line in _notice_lines(records):  # as the local engine's (ovseg.pipeline._notices)
            click.echo(line, err=True)
    if counts["failed"]:
        click.echo(f"{counts['failed']} image(s) failed:", err=True)
        for message in failures:
            click.echo(f"  {message}", err=True)
        if counts["failed"] > len(failures):
            click.echo(f"  ... and {counts['failed'] - len(failures)} more (see the records)", err=True)
        raise SystemExit(1)


def _notice_lines(records) -> list[str]:
    """The local engine's notices (one segment with --tau auto, many segments, scaled down) from
    the done records."""
    import json

    from ovseg.pipeline import _notices

    notices: dict[str, list] = {}
    columns = ["path", "status", "settings", "segments", "height", "width", "source_height", "source_width"]
    for row in records.select_columns(columns).iter_rows():
        if row["status"] == "done":
            _notices.add(notices, row["path"], json.loads(row["settings"] or "{}"), len(row["segments"] or []),
                         (row["height"], row["width"]), (row["source_height"], row["source_width"]))
    return _notices.lines(notices)
