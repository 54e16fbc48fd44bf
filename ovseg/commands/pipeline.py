"""`ovseg label` and `ovseg segment`: images in, label maps / segment maps, overlays and JSON out.

The options of both commands, the checks before any model loads (`_config`), and the run on the
local engine or on Ray (`_run`). Imports click and torch-free modules only.
"""
from __future__ import annotations

from pathlib import Path

import click

from ovseg.commands import edge as _edge
from ovseg.commands.export import check_export, export_option, run_export
from ovseg.commands.options import (K_HELP, KParam, LayersParam, TauParam, alpha_option, check_method_options,
                                    method_option, min_area_option)

_MAX_PIXELS = 2**25  # ovseg.io.DEFAULT_MAX_PIXELS, repeated here so --help imports nothing


def _pipeline_options(f):
    """Options shared by `label` and `segment` (applied bottom-up, so listed in reverse)."""
    options = [
        click.argument("inputs", nargs=-1, required=True,
                       type=_OrUri(exists=True, path_type=Path)),
        click.option("--out", "-o", "out_dir", default="ovseg-out", show_default=True,
                     type=_OrUri(file_okay=False, path_type=Path),
                     help="Folder for outputs (a URI such as s3://bucket/out with --engine ray)."),
        click.option("--backbone", default="ssd-1b", show_default=True,
                     help="Feature extractor; `ovseg backbones` lists them."),
        click.option("--weights", default=None, metavar="DIR|REPO",
                     help="Backbone weights: a local folder or a Hugging Face repo id "
                          "[default: the backbone's official repo]."),
        click.option("--resolution", type=click.IntRange(min=32), default=None,
                     help="Square backbone input size in pixels, a multiple of its stride "
                          "[default: the backbone's own; 1024 for ssd-1b, as in the paper]."),
        alpha_option(),
        min_area_option(),
        method_option(),
        click.option("--tau", type=TauParam(), default=None,
                     help="NCut threshold in [0, 2]: lower gives fewer, larger segments; auto: chosen "
                          "per image (recorded in the JSON as tau_chosen) [default: the backbone's; "
                          "0.5 for ssd-1b, as in the paper]; kway: the merge threshold of --k auto."),
        click.option("--k", "k", type=KParam(), default="auto", show_default=True, help=K_HELP),
        click.option("--walk-steps", type=click.IntRange(min=1), default=1, show_default=True,
                     help="random-walk: k-step walks P^k (larger merges more)."),
        click.option("--attention-layers", type=LayersParam(), default="all", show_default=True,
                     help="random-walk: self-attention layers to combine, comma-separated indices "
                          "(negative allowed) or names; all: every one the pass runs through."),
        click.option("--refine/--no-refine", default=True, show_default=True,
                     help="Refine mask edges with PAMR."),
        click.option("--refine-iterations", type=click.IntRange(min=0), default=15,
                     show_default=True, help="PAMR iterations (DiffCut's open-vocabulary setting)."),
        click.option("--refine-filter", type=click.Choice(["median", "mode", "none"]), default="median",
                     show_default=True, help="3x3 label filter after PAMR: median (DiffCut) or mode (majority)."),
        click.option("--work-aspect", type=click.Choice(["square", "image"]), default="square",
                     show_default=True, help="Assign, refine and name segments on the backbone's square "
                                             "input (DiffCut) or at the image's own aspect."),
        click.option("--device", default=None, help="cpu, cuda, cuda:1, ... [default: cuda if available]"),
        click.option("--dtype", type=click.Choice(["auto", "float32", "float16", "bfloat16"]),
                     default="auto", show_default=True,
                     help="Backbone precision; auto: fp16 on GPU, fp32 on CPU (the backbone's choice)."),
        click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Images per backbone pass."),
        click.option("--max-pixels", type=click.IntRange(min=1), default=_MAX_PIXELS,
                     show_default=True, help="Larger images (any format) are scaled down to this many "
                     "pixels; files above 179 MP are refused as possible decompression bombs."),
        click.option("--cache/--no-cache", default=True, show_default=True,
                     help="Reuse segments of images seen before with the same settings."),
        click.option("--overwrite", is_flag=True,
                     help="Redo every image (by default only those whose outputs are missing or "
                          "were made with other settings or classes)."),
        click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary; errors only."),
        click.option("--verbose", "-v", is_flag=True,
                     help="Show the warnings, logs and progress bars of the libraries loading models "
                          "(and Ray's, with --engine ray)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


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
    for option in reversed(options):
        f = option(f)
    return f


class _OrUri(click.Path):
    """A local path as click.Path checks it, or a URI (scheme://...) kept as text for --engine ray."""

    def convert(self, value, param, ctx):
        if isinstance(value, str) and "://" in value:
            return value
        return super().convert(value, param, ctx)


_ENGINE_OPTIONS = ("engine", "ray_address", "ray_timeout", "workers", "gpus_per_worker", "out_format")


_setting_error = _edge.setting_error  # a SettingError as a usage error on its option (exit 2)


def _config(out_dir, **kw):
    """SegmenterConfig from the options, checked before any model loads: each value (construction),
    the output folder (a write probe), then what needs the backbone registry (`validate`)."""
    from ovseg.settings.checks import SettingError, check_output_dir

    kw["dtype"] = None if kw["dtype"] == "auto" else kw["dtype"]
    kw["weights"] = None if kw["weights"] is None else str(kw["weights"])
    check_method_options(click.get_current_context(), kw["method"], kw)  # another method's options: exit 2
    try:
        _edge.precheck(**kw)  # what needs no torch, before it is imported (2-7 s)
        if not (isinstance(out_dir, str) and "://" in out_dir):  # a URI is written by --engine ray
            check_output_dir(out_dir)  # torch-free too: before the config, which reads the backbone's defaults
        from ovseg.pipeline import SegmenterConfig

        config = SegmenterConfig(**kw)
        return config.validate()
    except SettingError as err:
        raise _setting_error(err) from None
    except ValueError as err:  # a check that names no single option
        raise click.UsageError(str(err)) from None


def _run(config, inputs, out_dir, overwrite, classes=None, quiet=False, engine=None, export=None) -> None:
    from ovseg.settings.checks import SettingError
    from ovseg.settings.weights import WeightsNotFoundError
    from ovseg.pipeline import ModelLoadError, Segmenter

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
    try:
        with _edge.models_found():  # every model's weights, before any model runs (seconds)
            _edge.preflight(config, labels=classes is not None)
        segmenter = Segmenter(config)
        summary = segmenter.process_files(inputs, out_dir, classes=classes, overwrite=overwrite,
                                          progress=False if quiet else None)
    except KeyboardInterrupt:
        click.echo("interrupted: images done so far are kept; rerun to finish", err=True)
        raise SystemExit(130) from None
    except (WeightsNotFoundError, ModelLoadError, FloatingPointError) as err:  # FloatingPointError: fp16 overflow
        raise click.ClickException(str(err)) from err
    except SettingError as err:
        raise _setting_error(err) from None
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
@click.option("--max-classes", type=click.IntRange(min=1), default=None,
              help="Automatic names: at most this many per image [default: 12].")
@click.option("--bank", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              metavar="FILE", help="Automatic names: your own name bank (one class per line, synonyms "
                                   "by commas) [default: the shipped bank, 2,135 names].")
@_pipeline_options
@click.option("--clip-weights", default=None, metavar="DIR|REPO",
              help="Labeler (open_clip) weights: a local folder or a repo id.")
@click.option("--top-k", type=click.IntRange(min=1), default=3, show_default=True,
              help="Alternative classes kept per segment in the JSON.")
@click.option("--clip-resolution", type=click.IntRange(min=32), default=None,
              help="CLIP input short side; 320 is ~10x faster on CPU [default: the backbone's square "
                   "input, as DiffCut].")
@click.option("--clip-normalize/--no-clip-normalize", default=False, show_default=True,
              help="Apply CLIP's mean/std to its input (DiffCut feeds raw [0, 1]).")
@click.option("--clip-pooling", type=click.Choice(["binary", "area"]), default="binary", show_default=True,
              help="Segment masks on the CLIP grid: binary nearest-exact (DiffCut) or area weights.")
@_engine_options
@export_option
def label(inputs, out_dir, overwrite, classes, vocab, max_classes, bank, quiet, verbose, export_format,
          **kw) -> None:
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
    if classes is not None and vocab is not None:
        raise click.UsageError("give at most one of --classes and --vocab")
    if classes is not None and any(not c.strip(" ,") for c in classes):
        raise click.UsageError("--classes is empty")
    auto = classes is None and vocab in (None, "auto")
    if not auto and (max_classes is not None or bank is not None):
        raise click.UsageError("--max-classes and --bank apply to automatic names only "
                               "(neither --classes nor --vocab, or --vocab auto)")
    from ovseg.labels._classes import as_vocabulary, joined_vocabulary

    clip = kw.pop("clip_weights")
    engine = {k: kw.pop(k) for k in _ENGINE_OPTIONS}
    extra = {"max_classes": max_classes, "bank": None if bank is None else str(bank)} if auto else {}
    config = _config(out_dir, clip_weights=clip, **{k: v for k, v in extra.items() if v is not None}, **kw)
    try:  # checked before any model loads: blank, duplicate or unreadable names stop here
        if auto:
            from ovseg.labels._auto import auto_vocabulary

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
