"""The `ovseg` command: a thin shell over the Python API.

Each stage keeps its command next to its code; this module only gathers them, and imports
nothing heavy, so `ovseg --help` answers at once.

Exit codes of `ovseg label` / `ovseg segment`: 0 every image done (or skipped as already done),
1 some images failed (each named in the summary) or a model could not be loaded, 2 usage error.
"""
from __future__ import annotations

from pathlib import Path

import click

from ovseg import __version__

_MAX_PIXELS = 2**25  # ovseg.io.DEFAULT_MAX_PIXELS, repeated here so --help imports nothing


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="ovseg")
def main() -> None:
    """Training-free, open-vocabulary image segmentation (DiffCut + CLIP).

    \b
    ovseg label photo.jpg --classes "cat,sofa,wall" --out out/
    ovseg segment photos/ --out masks/
    ovseg backbones
    ovseg eval --dataset voc --root data --out eval/voc
    ovseg coherence ref.jpg target.jpg --backbones ssd-1b,dinov2-b --point 0.5,0.4 --out fig.png
    """


def _pipeline_options(f):
    """Options shared by `label` and `segment` (applied bottom-up, so listed in reverse)."""
    options = [
        click.argument("inputs", nargs=-1, required=True,
                       type=click.Path(exists=True, path_type=Path)),
        click.option("--out", "-o", "out_dir", default="ovseg-out", show_default=True,
                     type=click.Path(file_okay=False, path_type=Path), help="Folder for outputs."),
        click.option("--backbone", default="ssd-1b", show_default=True,
                     help="Feature extractor; `ovseg backbones` lists them."),
        click.option("--weights", default=None, metavar="DIR|REPO",
                     help="Backbone weights: a local folder or a Hugging Face repo id "
                          "[default: the backbone's official repo]."),
        click.option("--resolution", type=click.IntRange(min=32), default=None,
                     help="Square backbone input size in pixels, a multiple of its stride "
                          "[default: the backbone's own; 1024 for ssd-1b, as in the paper]."),
        click.option("--alpha", type=click.FloatRange(min=0, min_open=True), default=10.0,
                     show_default=True, help="Affinity exponent W = C**alpha."),
        click.option("--tau", type=click.FloatRange(0, 2), default=0.5, show_default=True,
                     help="NCut threshold: lower gives fewer, larger segments."),
        click.option("--refine/--no-refine", default=True, show_default=True,
                     help="Refine mask edges with PAMR."),
        click.option("--refine-iterations", type=click.IntRange(min=0), default=20,
                     show_default=True, help="PAMR iterations."),
        click.option("--device", default=None, help="cpu, cuda, cuda:1, ... [default: cuda if available]"),
        click.option("--dtype", type=click.Choice(["auto", "float32", "float16", "bfloat16"]),
                     default="auto", show_default=True,
                     help="Backbone precision; auto: fp16 on GPU, fp32 on CPU (the backbone's choice)."),
        click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Images per backbone pass."),
        click.option("--max-pixels", type=click.IntRange(min=1), default=_MAX_PIXELS,
                     show_default=True, help="Larger images are scaled down to this many pixels."),
        click.option("--cache/--no-cache", default=True, show_default=True,
                     help="Reuse segments of images seen before with the same settings."),
        click.option("--overwrite", is_flag=True, help="Redo images whose outputs exist."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _config(**kw):
    from ovseg.pipeline import SegmenterConfig

    kw["dtype"] = None if kw["dtype"] == "auto" else kw["dtype"]
    kw["weights"] = None if kw["weights"] is None else str(kw["weights"])
    return SegmenterConfig(**kw)


def _run(config, inputs, out_dir, overwrite, classes=None) -> None:
    from ovseg._weights import WeightsNotFoundError
    from ovseg.pipeline import ModelLoadError, Segmenter

    try:
        segmenter = Segmenter(config)
        summary = segmenter.process_files(inputs, out_dir, classes=classes, overwrite=overwrite)
    except (WeightsNotFoundError, ModelLoadError) as err:
        raise click.ClickException(str(err)) from err
    except (ValueError, FileNotFoundError) as err:  # a bad vocabulary, bad settings
        raise click.UsageError(str(err)) from err
    verb = "labelled" if classes is not None else "segmented"
    click.echo(f"{verb} {len(summary.done)} image(s) into {out_dir}", err=True)
    if summary.skipped:
        click.echo(f"skipped {len(summary.skipped)} already done (use --overwrite to redo)", err=True)
    if summary.failed:
        click.echo(f"{len(summary.failed)} image(s) failed:", err=True)
        for _, message in summary.failed:
            click.echo(f"  {message}", err=True)
        raise SystemExit(1)


@main.command()
@_pipeline_options
@click.option("--classes", "-c", default=None, metavar="NAMES",
              help='Comma-separated class names; "person;people" gives synonyms.')
@click.option("--vocab", default=None, metavar="FILE|NAME",
              help="A vocabulary file (one class per line) or a shipped one, e.g. voc.")
@click.option("--clip-weights", default=None, metavar="DIR|REPO",
              help="Labeler (open_clip) weights: a local folder or a repo id.")
@click.option("--top-k", type=click.IntRange(min=1), default=3, show_default=True,
              help="Alternative classes kept per segment in the JSON.")
def label(inputs, out_dir, overwrite, classes, vocab, **kw) -> None:
    """Segment images and name every segment from a vocabulary.

    INPUTS are image files and folders (searched recursively for image files). Per image, OUT
    gets NAME.labels.png (palette PNG, value = class index, 255 = none), NAME.labels.overlay.png
    (the image with coloured regions and a legend) and NAME.labels.json (segments, classes,
    scores and COCO run-length-encoded masks). Images already done are skipped.

    \b
    ovseg label examples/chelsea.png --classes "cat,floor,wall" --out out/
    ovseg label photos/ --vocab voc --out out/ --device cuda --batch-size 4
    HF_HUB_OFFLINE=1 ovseg label a.jpg -c "dog,grass" --weights ./ssd-1b --clip-weights ./clip
    """
    if (classes is None) == (vocab is None):
        raise click.UsageError("give exactly one of --classes and --vocab")
    if classes is not None and not classes.strip(" ,"):
        raise click.UsageError("--classes is empty")
    from ovseg.labels import load_vocabulary
    from ovseg.pipeline import Segmenter

    try:  # checked before any model loads: blank, duplicate or unreadable names stop here
        names = load_vocabulary(vocab) if vocab is not None else Segmenter.vocabulary(classes.split(","))
    except (ValueError, KeyError, OSError) as err:
        raise click.UsageError(f"{'--vocab ' + vocab if vocab is not None else '--classes'}: {err}") from err
    clip = kw.pop("clip_weights")
    _run(_config(clip_weights=clip, **kw), inputs, out_dir, overwrite, classes=names)


@main.command()
@_pipeline_options
def segment(inputs, out_dir, overwrite, **kw) -> None:
    """Class-agnostic segments (no names): DiffCut masks only.

    Per image, OUT gets NAME.segments.png (palette PNG, value = segment id),
    NAME.segments.overlay.png and NAME.segments.json (COCO run-length-encoded masks, areas, boxes).

    \b
    ovseg segment photo.jpg --out masks/
    ovseg segment photos/ --tau 0.4 --no-refine --out masks/
    """
    _run(_config(**kw), inputs, out_dir, overwrite)


@main.command()
def backbones() -> None:
    """List the registered backbones: name, input resolution, download size, weights repo.

    \b
    ovseg backbones
    """
    from ovseg.features import backbone_info, list_backbones

    rows = [("name", "resolution", "stride", "download", "weights")]
    for name in list_backbones():
        info = backbone_info(name)
        rows.append((name, str(info.resolution or "?"), str(info.stride or "?"),
                     str(info.download_size), str(info.repo_id)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


# Commands that live beside their stage; importing them loads only click and small files.
from ovseg.coherence._command import coherence_command  # noqa: E402
from ovseg.demo._command import demo_command  # noqa: E402
from ovseg.evaluation._command import eval_command  # noqa: E402

main.add_command(eval_command)
main.add_command(coherence_command)
main.add_command(demo_command)

if __name__ == "__main__":
    main()
