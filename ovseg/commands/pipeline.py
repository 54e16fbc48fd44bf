"""`ovseg label` and `ovseg segment`: images in, label maps / segment maps, overlays and JSON out.

The options of both commands (SegmenterConfig's fields, `ovseg.commands.options`), the checks
before torch is imported (`_config`), and the run on the local engine or on Ray (`_run`).
Imports click and torch-free modules only.
"""
from __future__ import annotations

from pathlib import Path

import click

from ovseg.commands import edge as _edge
from ovseg.commands.export import check_export, export_option, run_export
from ovseg.commands.options import apply, check_method_options, config_options, given
from ovseg.settings.checks import SettingError, check_names, check_output_dir
from ovseg.settings.weights import WeightsNotFoundError

def _pipeline_options(f):
    """Options shared by `label` and `segment`: the inputs and --out, every "pipeline" setting of
    `SegmenterConfig` (built from its fields, `ovseg.commands.options`), then the run's own flags."""
    return apply([
        click.argument("inputs", nargs=-1, required=True, type=_OrUri(exists=True, path_type=Path)),
        click.option("--out", "-o", "out_dir", default="ovseg-out", show_default=True,
                     type=_OrUri(file_okay=False, path_type=Path),
                     help="Folder for outputs (a URI such as s3://bucket/out with --engine ray)."),
        *config_options("pipeline"),
        click.option("--overwrite", is_flag=True,
                     help="Redo every image (by default only those whose outputs are missing or "
                          "were made with other settings or classes)."),
        click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary; errors only."),
        click.option("--verbose", "-v", is_flag=True,
                     help="Show the warnings, logs and progress bars of the libraries loading models "
                          "(and Ray's, with --engine ray)."),
    ])(f)


def _engine_options(f):
    """--engine and the Ray options, listed last in --help (newcomers need them least)."""
    options = [
        # --engine ray: ovseg.distributed (docs/scale-out.md)
        click.option("--engine", type=click.Choice(["local", "ray"]), default="local",
                     show_default=True, help="local: this process; ray: a Ray cluster (Ray Data)."),
        click.option("--ray-address", default=None, metavar="auto|HOST:PORT",
                     help="[ray] Cluster to join; auto: the one this machine belongs to [default: "
                          "$RAY_ADDRESS, else a local Ray started for this run, never the last "
                          "`ray start` cluster]."),
        click.option("--ray-timeout", type=click.FloatRange(min=0, min_open=True), default=30,
                     show_default=True, metavar="SECONDS",
                     help="[ray] Give up (exit 2) when the named cluster does not answer in this time."),
        click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
                     help="[ray] Actors, each holding one copy of the models."),
        click.option("--gpus-per-worker", type=click.FloatRange(min=0), default=None,
                     help="[ray] GPUs per actor, e.g. 0.5 [default: 1 if the cluster has GPUs, else 0]."),
        click.option("--format", "out_format", type=click.Choice(["files", "parquet"]),
                     default="files", show_default=True,
                     help="[ray] files: three files per image, as --engine local; parquet: a table."),
    ]
    return apply(options)(f)


class _OrUri(click.Path):
    """A local path as click.Path checks it, or a URI (scheme://...) kept as text for --engine ray."""

    def convert(self, value, param, ctx):
        if isinstance(value, str) and "://" in value:
            return value
        return super().convert(value, param, ctx)


_ENGINE_OPTIONS = ("engine", "ray_address", "ray_timeout", "workers", "gpus_per_worker", "out_format")


def _config(out_dir, **kw):
    """SegmenterConfig from the options, checked before torch is imported: each value (the click
    types), another method's options given explicitly, then the config (`SegmenterConfig`: what
    ties the values together) and the output folder (a write probe)."""
    from ovseg.settings.config import SegmenterConfig

    check_method_options(click.get_current_context(), kw["method"], kw)  # another method's options: exit 2
    try:
        with _edge.settings_checked():
            if not (isinstance(out_dir, str) and "://" in out_dir):  # a URI is written by --engine ray
                check_output_dir(out_dir)
            return SegmenterConfig(**kw)
    except ValueError as err:  # a check that names no single option
        raise click.UsageError(str(err)) from None


def _run(config, inputs, out_dir, overwrite, classes=None, quiet=False, engine=None, export=None) -> None:
    engine = engine or {"engine": "local"}
    task = "segment" if classes is None else "label"
    if engine["engine"] == "ray":
        from ovseg.commands.ray import run_cli

        try:
            run_cli(config, inputs, out_dir, overwrite, classes, address=engine["ray_address"],
                    workers=engine["workers"], gpus_per_worker=engine["gpus_per_worker"],
                    fmt=engine["out_format"], timeout=engine.get("ray_timeout"), quiet=quiet)
        except SystemExit as stop:  # some images failed (1): the others are still exported
            if export and stop.code == _edge.EXIT_FAILED:
                run_export(out_dir, export, task=task, quiet=quiet)
            raise
        if export:
            run_export(out_dir, export, task=task, quiet=quiet)
        return
    if engine.get("out_format", "files") != "files" or any(isinstance(p, str) for p in [*inputs, out_dir]):
        raise click.UsageError("--format parquet and URI inputs/outputs need --engine ray")

    _edge.check_has_images(inputs)
    from ovseg.pipeline import ModelLoadError, Segmenter  # torch: every setting is checked by now

    try:
        segmenter = Segmenter(config)
        with _edge.models_found():  # the device, then every model's weights, before any model runs (seconds)
            segmenter.preflight(labels=classes is not None)
        summary = segmenter.process_files(inputs, out_dir, classes=classes, overwrite=overwrite,
                                          progress=False if quiet else None)
    except KeyboardInterrupt:
        click.echo("interrupted: images done so far are kept; rerun to finish", err=True)
        raise SystemExit(130) from None
    except (WeightsNotFoundError, ModelLoadError, FloatingPointError) as err:  # FloatingPointError: fp16 overflow
        raise click.ClickException(str(err)) from err
    except SettingError as err:
        raise _edge.setting_error(err) from None
    except (ValueError, FileNotFoundError) as err:  # a bad vocabulary, bad settings
        raise click.UsageError(str(err)) from err
    verb = "labelled" if classes is not None else "segmented"
    if not quiet:
        click.echo(f"{verb} {len(summary.done)} image(s) into {out_dir}", err=True)
        if summary.redone:
            click.echo(f"redid {len(summary.redone)} made with other settings or classes", err=True)
        if summary.skipped:
            click.echo(f"skipped {len(summary.skipped)} already done (use --overwrite to redo)", err=True)
        from ovseg.pipeline._notices import lines

        for line in lines(summary.notices):  # not errors: what may not be what was meant
            click.echo(line, err=True)
    if export and (summary.done or summary.skipped):
        run_export(out_dir, export, task=task, quiet=quiet)
    _edge.echo_failures(summary.failed)


@click.command()
@click.option("--classes", "-c", multiple=True, metavar="NAMES|FILE|NAME",
              help='Comma-separated class names ("person;people" gives synonyms), a vocabulary file '
                   '(classes.txt), or a shipped vocabulary (voc); "voc," is one class named voc. The '
                   'same rule as Segmenter.label (prompts/README.md). Repeat to add classes: -c cat -c dog.')
@click.option("--vocab", default=None, metavar="FILE|NAME|auto",
              help="A vocabulary file (one class per line) or a shipped one, e.g. voc; auto (or "
                   "neither --classes nor --vocab): names chosen per image from the name bank.")
@apply(config_options("names"))
@_pipeline_options
@apply(config_options("labeler"))
@_engine_options
@export_option
def label(inputs, out_dir, overwrite, classes, vocab, quiet, verbose, export_format, **kw) -> None:
    """Segment images and name every segment from a vocabulary, or with names of its own.

    INPUTS are image files and folders (searched recursively for image files). Per image, OUT
    gets NAME.labels.png (palette PNG, value = class index, 255 = none; 16-bit PNG with
    65535 = none beyond 255 classes), NAME.labels.overlay.png
    (the image with coloured regions and a legend) and NAME.labels.json (segments, classes,
    scores and COCO run-length-encoded masks). Images already done with the same settings and
    classes are skipped; those done otherwise are redone. OUT may be an input folder: ovseg's own
    outputs found there are not taken as inputs.

    With neither --classes nor --vocab, each image's names are chosen from a bank of 2,135 names
    (LVIS, COCO-Stuff, ADE20K-full, Objects365, OpenImages): those that are the best name of a
    large enough segment or rank high for the whole image, at most --max-classes; the JSON lists
    them with their scores under "auto_vocabulary" (docs/auto-vocabulary.md).

    \b
    ovseg label examples/chelsea.png --out out/          (automatic names)
    ovseg label examples/chelsea.png --classes "cat,floor,wall" --out out/
    ovseg label photos/ --vocab voc --out out/ --device cuda --batch-size 4
    ovseg label photo.jpg -c "cat,sofa" --method random-walk --tau auto --walk-steps 2
    ovseg label photo.jpg -c "cat,sofa" --method kway --k auto --tau 0.4
    ovseg label photos/ -c "cat,dog,grass" --export coco --out out/   (out/coco/instances.json)
    HF_HUB_OFFLINE=1 ovseg label a.jpg -c "dog,grass" --weights ./ssd-1b --clip-weights ./clip
    ovseg label s3://bkt/photos/ --vocab voc --engine ray --ray-address auto --workers 8 \\
        --format parquet --out s3://bkt/labels/      (pip install "ovseg[ray]"; docs/scale-out.md)
    """
    _edge.start(verbose)
    check_export(export_format, out_dir)
    classes = classes or None  # --classes given n times: a tuple of n strings
    with _edge.settings_checked():  # automatic names or not: the one rule (ovseg.settings.checks)
        auto = check_names(classes, vocab, given(click.get_current_context()))
    engine = {k: kw.pop(k) for k in _ENGINE_OPTIONS}
    config = _config(out_dir, **kw)
    from ovseg.labels._classes import as_vocabulary, joined_vocabulary  # torch-free

    try:  # checked before any model loads (and, for a class list, before torch): blank, duplicate or unreadable names
        if auto:
            from ovseg.labels._auto import auto_vocabulary  # imports torch

            names = auto_vocabulary(config.bank, max_classes=config.max_classes)
        else:
            names = as_vocabulary(vocab=vocab) if vocab is not None else joined_vocabulary(classes)  # the API's rule
    except (ValueError, KeyError, OSError) as err:
        where = "--bank" if auto else "--vocab " + vocab if vocab is not None else "--classes"
        raise click.UsageError(f"{where}: {err}") from err
    if auto and engine["engine"] == "ray":
        raise click.UsageError("automatic names (no --classes or --vocab) are not available with --engine ray yet")
    _run(config, inputs, out_dir, overwrite, classes=names, quiet=quiet, engine=engine, export=export_format)


@click.command()
@_pipeline_options
@_engine_options
@export_option
def segment(inputs, out_dir, overwrite, quiet, verbose, export_format, **kw) -> None:
    """Class-agnostic segments (no names): DiffCut masks only.

    Per image, OUT gets NAME.segments.png (palette PNG, value = segment id; 16-bit beyond 255),
    NAME.segments.overlay.png and NAME.segments.json (COCO run-length-encoded masks, areas, boxes).

    \b
    ovseg segment photo.jpg --out masks/
    ovseg segment photos/ --tau 0.4 --no-refine --out masks/
    ovseg segment photo.jpg --method random-walk --tau auto --out masks/
    ovseg segment photo.jpg --method kway --k 6 --out masks/     (K-way cut, six segments)
    """
    _edge.start(verbose)
    check_export(export_format, out_dir)
    engine = {k: kw.pop(k) for k in _ENGINE_OPTIONS}
    _run(_config(out_dir, **kw), inputs, out_dir, overwrite, quiet=quiet, engine=engine, export=export_format)
