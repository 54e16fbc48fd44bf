"""`ovseg export`: a COCO or YOLO dataset from a run's outputs (`ovseg.export`), and the
`--export` option of `ovseg label` / `ovseg segment`, which runs it at the end. No model, no torch."""
from __future__ import annotations

from pathlib import Path

import click

FORMATS = ("coco", "yolo")  # ovseg.export.FORMATS, repeated here so --help imports nothing


def export_option(f):
    """`--export coco|yolo` for label and segment."""
    return click.option(
        "--export", "export_format", type=click.Choice(FORMATS), default=None,
        help="At the end, write a dataset of every result in OUT: coco (OUT/coco/instances.json "
             "and results.json) or yolo (OUT/yolo/); as `ovseg export OUT --format ...` "
             "(docs/export.md).")(f)


def check_export(export_format, out_dir) -> None:
    """Before any model loads: an export needs a local OUT (exit 2)."""
    if export_format is not None and isinstance(out_dir, str) and "://" in out_dir:
        raise click.UsageError(f"--export writes to a local folder; OUT is {out_dir}: run "
                               "`ovseg export` on a local copy of it")


def run_export(out, export_format: str, *, task: str | None = None, quiet: bool = False, **options) -> None:
    """Export and print one line (and the notes), unless quiet; ExportError -> usage error (exit 2)."""
    from ovseg.export import ExportError, export

    try:
        summary = export(out, export_format, task=task, **options)
    except ExportError as err:
        raise click.UsageError(str(err)) from None
    if not quiet:
        click.echo(summary.line(), err=True)
        for note in summary.notes:
            click.echo(f"note: {note}", err=True)


@click.command("export")
@click.argument("out", type=click.Path(exists=True, path_type=Path))
@click.option("--format", "-f", "export_format", type=click.Choice(FORMATS), required=True,
              help="coco: an instances file and a results file; yolo: ultralytics' segmentation layout.")
@click.option("--to", type=click.Path(path_type=Path), default=None, metavar="PATH",
              help="COCO: a folder, or a .json file (its results file beside it); YOLO: a folder "
                   "[default: OUT/coco or OUT/yolo].")
@click.option("--task", type=click.Choice(["label", "segment"]), default=None,
              help="Which outputs, when OUT holds both *.labels.json and *.segments.json.")
@click.option("--ids-from", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              metavar="GT.json", help="COCO: the image and category ids of this COCO file (your ground "
                                     "truth, for COCOeval), matched by file_name and name.")
@click.option("--images", type=click.Choice(["link", "copy", "none"]), default="link", show_default=True,
              help="YOLO: put each image into images/ as a symbolic link, a copy, or not at all.")
@click.option("--min-area", type=click.IntRange(min=0), default=0, show_default=True, metavar="PIXELS",
              help="YOLO: leave out parts of a segment smaller than this (0: every part).")
@click.option("--quiet", "-q", is_flag=True, help="No summary; errors only.")
def export_command(out, export_format, to, task, ids_from, images, min_area, quiet) -> None:
    """Write a COCO or YOLO dataset from the results in OUT (no model loads).

    OUT is the output folder of `ovseg label` or `ovseg segment` (its JSONs; or the Parquet
    files of `--engine ray --format parquet`), or one .parquet file. The rules (categories and
    their ids, "no class" segments, sizes, polygons, holes) are in docs/export.md.

    \b
    ovseg export out/ --format coco                 out/coco/instances.json, results.json
    ovseg export out/ --format yolo --to datasets/pets
    ovseg export out/ --format coco --to pred.json --ids-from gt.json     (for COCOeval)
    """
    if export_format == "coco" and (images != "link" or min_area):
        raise click.UsageError("--images and --min-area apply to --format yolo")
    if export_format == "yolo" and ids_from is not None:
        raise click.UsageError("--ids-from applies to --format coco")
    run_export(out, export_format, task=task, quiet=quiet, to=to,
               **({"ids_from": ids_from} if export_format == "coco" else {"images": images, "min_area": min_area}))
