"""`ovseg coherence`: similarity heatmaps of backbones, or their coherence scores."""
from __future__ import annotations

import os
from pathlib import Path

import click

from ovseg.commands import edge as _edge
from ovseg.commands.options import K_HELP, SuggestingChoice, check_method_options, method_option, option
from ovseg.evaluation._datasets import list_datasets  # numpy and a small JSON file only
from ovseg.settings import checks
from ovseg.settings.catalog import BACKBONES
from ovseg.settings.checks import SettingError
from ovseg.settings.devices import resolve_device
from ovseg.settings.methods import get_method, list_methods, method_help
from ovseg.settings.weights import WeightsNotFoundError

_SSD = BACKBONES["ssd-1b"]  # the paper's backbone, whose cut defaults the help quotes


def _parse_weights(values: tuple[str, ...]) -> dict[str, str]:
    weights = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise click.BadParameter(f"{value!r}: write NAME=DIR, e.g. ssd-1b=/models/SSD-1B",
                                     param_hint="--weights")
        weights[name.strip()] = path.strip()
    return weights


def _fail(error: Exception) -> click.ClickException:
    message = str(error)
    if isinstance(error, WeightsNotFoundError):
        message += " Here, name the backbone: --weights NAME=DIR (repeatable)."
    return click.ClickException(message)


def _refuse_overwrite(outputs, inputs) -> None:
    """A usage error if an output would replace one of the inputs (same file, links resolved)."""
    ins = {Path(p).resolve() for p in inputs if isinstance(p, (str, os.PathLike))}
    for out in outputs:
        if Path(out).resolve() in ins:
            raise click.UsageError(f"--out {out} is one of the inputs; it would be overwritten. "
                                   f"Choose another path.")


def _check_point(ctx, param, value: str) -> str:
    from ovseg.coherence._inputs import parse_point

    try:
        parse_point(value)
    except (ValueError, TypeError) as error:
        raise click.BadParameter(str(error)) from None
    return value


def _check_settings(backbones: str, weights: dict, resolution) -> list[str]:
    """Every setting, before any image or model is read (`ovseg.settings.checks`; alpha and tau:
    their option types): exit 2 naming the option. Returns the backbone names."""
    names = [b.strip() for b in backbones.split(",") if b.strip()]
    with _edge.settings_checked():
        if not names:
            raise SettingError("backbones", "no backbone given")
        for name in names:
            try:
                checks.check_backbone(name)  # a known name (the valid ones listed if not)
            except SettingError as err:
                raise SettingError("backbones", str(err)) from None
        checks.check_resolution(resolution, names)  # one input size, a multiple of every stride
        for name, path in weights.items():
            if name not in names:
                raise SettingError("weights", f"--weights {name}=...: {name} is not among the backbones (--backbones)")
            checks.check_weights_path("weights", path)
    return names  # the device: its option's check now (torch-free); torch's answer in `_check_weights`


def _check_files(paths) -> None:
    """Read every input image and mask before any model loads: one line per bad file, exit 1."""
    from ovseg.io import ImageReadError, open_image

    bad = []
    for path in dict.fromkeys(p for p in paths if isinstance(p, (str, os.PathLike))):
        try:
            with open_image(path):
                pass
        except ImageReadError as err:
            bad.append((path, str(err)))
    if bad:
        _edge.echo_failures(bad)


def _check_point_inside(image, point: str) -> None:
    """--point inside REF_IMAGE (its upright size, as the heatmaps read it): else exit 2, before
    torch or any model (issue 31 item 5)."""
    from PIL import ImageOps

    from ovseg.coherence._inputs import parse_point
    from ovseg.io import open_image

    with open_image(image) as im:
        width, height = ImageOps.exif_transpose(im).size
    try:
        parse_point(point).to_pixels(width, height)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="'--point'") from None


def _check_weights(names: list[str], weights: dict, device=None) -> None:
    """The device (torch), then every backbone's weights found (local, cached or downloadable)
    before the first loads."""
    with _edge.settings_checked():
        resolve_device(device)  # imports torch: after every torch-free check
    with _edge.models_found(" Here, name the backbone: --weights NAME=DIR (repeatable)."):
        for name in names:
            _edge.check_backbone_weights(name, weights.get(name))


@click.command("coherence")
@click.argument("ref_image", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("target_image", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--backbones", "-b", default="ssd-1b,dinov2-b,clip-b16", show_default=True,
              help="Comma-separated backbone names (see `ovseg backbones`).")
@click.option("--point", "-p", default="0.5,0.5", show_default=True, callback=_check_point,
              help="Reference patch: X,Y in pixels (120,80) or as fractions (0.5,0.4 or 50%,40%).")
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path),
              help="Heatmaps: the PNG to write. Score mode: the folder for the CSV/JSON/PNG.")
@click.option("--pairs", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Score mode: a folder of name.jpg + name.png (class map) pairs.")
@click.option("--dataset", type=SuggestingChoice(list_datasets()),
              help="Score mode: a dataset the evaluation reads (voc, ade20k, ...), with --root.")
@click.option("--root", "--data-root", "data_root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Score mode: the dataset's root folder, in its standard layout.")
@click.option("--image-list", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Score mode: ids of the dataset images to use [default: its val list].")
@click.option("--weights", "-w", multiple=True, metavar="NAME=DIR",
              help="Local weights of a backbone; repeatable.")
@option("resolution", help="Square input size for every backbone, a multiple of each one's stride "
                          "[default: each backbone's own].")
@option("device", help="torch device, e.g. cpu or cuda [default: the backbone's].")
@click.option("--num-pairs", default=2000, show_default=True, type=click.IntRange(min=1),
              help="Score mode: patch pairs drawn per image.")
@click.option("--seed", default=0, show_default=True, type=int, help="Score mode: sampling seed.")
@click.option("--ignore-index", default=255, show_default=True, type=int,
              help="Score mode with --pairs: ground-truth label to ignore (datasets: their own).")
@click.option("--max-images", type=click.IntRange(min=1), help="Score mode: use the first N pairs.")
@click.option("--miou/--no-miou", default=True, show_default=True,
              help="Score mode: also measure the unsupervised mIoU through the cut.")
@method_option(needs="features", help="Score mode, the cut behind mIoU (the methods that cut features): "
                                      + method_help([m for m in list_methods() if get_method(m).needs == "features"]))
@option("k", help="Cut: " + K_HELP)
@option("alpha", help=f"Cut: affinity exponent [default: each backbone's; {_SSD.alpha:g} for ssd-1b].")
@option("min_area", help="Cut: merge segments under this fraction of the image into their most similar "
                        "neighbour [default: each backbone's; 0 for ssd-1b].")
@option("tau", type=click.FloatRange(0, 2),  # a number: the cut behind mIoU is fixed
        help=f"Cut: NCut threshold (kway: the merge threshold of --k auto) [default: each backbone's; "
             f"{_SSD.tau:g} for ssd-1b].")
@click.option("--verbose", "-v", is_flag=True,
              help="Show the warnings, logs and progress bars of the libraries loading models.")
def coherence_command(ref_image, target_image, backbones, point, out, pairs, dataset, data_root,
                      image_list, weights, resolution, device, num_pairs, seed, ignore_index,
                      max_images, miou, method, k, alpha, min_area, tau, verbose) -> None:
    """Compare backbones on semantic coherence.

    Heatmaps: for each backbone, the cosine similarity between the patch under --point in
    REF_IMAGE and every patch of REF_IMAGE (and of TARGET_IMAGE, if given), one row per backbone.

    Scores (--pairs DIR, or --dataset NAME --root DIR): on images with ground-truth class maps, how well patch similarity
    separates same-class from other-class patch pairs (ROC AUC, 0.5 = chance, 1 = perfect) and
    the unsupervised mIoU of the cut on each backbone's features. Prints a table and writes
    coherence.csv, coherence.json and coherence.png into --out.

    \b
    ovseg coherence dog.jpg dogs.jpg --point 0.5,0.4 --out coherence.png
    ovseg coherence dog.jpg --point 320,200 -b ssd-1b,dinov2-b -w ssd-1b=/models/SSD-1B --out c.png
    ovseg coherence --pairs my_pairs/ -b ssd-1b,dinov2-b,clip-b16 --out results/
    ovseg coherence --dataset voc --root data/VOCdevkit --max-images 200 --out results/
    ovseg coherence --pairs my_pairs/ -b ssd-1b --method kway --k 6 --out results/
    """
    _edge.start(verbose)
    weights_map = _parse_weights(weights)
    names = _check_settings(backbones, weights_map, resolution)
    ctx = click.get_current_context()
    check_method_options(ctx, method, {"k": k})  # another method's options (or ignored ones): exit 2
    if get_method(method).needs != "features":
        raise click.UsageError(f"--method {method} needs the backbone's self-attention; coherence scores "
                               "feature maps only", ctx)
    cut_options = {n: ctx.params[n] for n in get_method(method).options  # the method's own options, by name
                   if n in ctx.params and n != "alpha" and ctx.params[n] is not None}
    if min_area is not None:  # any method's cut (None: each backbone's)
        cut_options["min_area"] = min_area
    if (dataset is None) != (data_root is None):
        raise click.UsageError("--dataset and --root go together")
    if pairs is not None or dataset is not None:
        if ref_image is not None:
            raise click.UsageError("give either images (heatmaps) or --pairs/--dataset (scores), not both")
        if pairs is not None and dataset is not None:
            raise click.UsageError("give --pairs DIR or --dataset NAME, not both")
        if dataset is not None:  # the layout, before torch or any model: exit 2 on --root
            from ovseg.commands.eval import dataset_samples

            dataset_samples(dataset, data_root, image_list, ctx)
        _score(pairs, dataset, data_root, image_list, backbones, out, weights_map, resolution,
               device, num_pairs, seed, ignore_index, max_images, miou, alpha, tau, method, cut_options)
        return
    if ref_image is None:
        raise click.UsageError("give REF_IMAGE (heatmaps), or --pairs DIR or --dataset NAME (scores)")
    if out.suffix.lower() != ".png":
        raise click.BadParameter(f"{out}: the figure is written as PNG; name it *.png",
                                 param_hint="--out")
    _refuse_overwrite([out], [ref_image, target_image])
    _check_files([ref_image, target_image])
    _check_point_inside(ref_image, point)
    from ovseg.coherence import plot_similarity, similarity_maps

    _check_weights(names, weights_map, device)
    try:
        maps = similarity_maps(ref_image, target_image, backbones, point, resolution=resolution,
                               weights=weights_map, device=device)
    except (ValueError, TypeError, FileNotFoundError, WeightsNotFoundError) as error:
        raise _fail(error) from None
    plot_similarity(maps, ref_image, target_image, out=out)
    for label, m in maps.items():
        click.echo(f"{label}: cell {m.cell} of a {tuple(m.reference.shape)} grid")
    click.echo(f"wrote {out}")


def _score(folder, dataset, data_root, image_list, backbones, out, weights, resolution, device,
           num_pairs, seed, ignore_index, max_images, miou, alpha, tau, method="diffcut",
           cut_options=None) -> None:
    from ovseg.coherence import coherence_scores, dataset_pairs, format_table, read_pairs, save_scores

    try:
        if dataset is not None:
            items, options = dataset_pairs(dataset, data_root, image_list=image_list)
        else:
            items, options = read_pairs(folder), {"ignore_index": ignore_index}
        items = items[:max_images]
        files = [p for item in items for p in (item if isinstance(item, tuple) else (item,))]
        _refuse_overwrite([Path(out) / f"coherence.{kind}" for kind in ("csv", "json", "png")], files)
    except (ValueError, TypeError, FileNotFoundError) as error:
        raise _fail(error) from None
    _check_files(files)
    _check_weights([b.strip() for b in backbones.split(",") if b.strip()], weights, device)
    try:
        scores = coherence_scores(
            items, backbones, num_pairs=num_pairs, seed=seed, resolution=resolution, miou=miou,
            alpha=alpha, tau=tau, method=method, method_options=cut_options, weights=weights, device=device,
            progress=lambda msg: click.echo(msg, err=True), **options,
        )
    except (ValueError, TypeError, FileNotFoundError, WeightsNotFoundError) as error:
        raise _fail(error) from None
    settings = {"source": str(folder or f"{dataset}:{data_root}"), "images": len(items),
                "backbones": backbones, "num_pairs": num_pairs, "seed": seed,
                "ignore_index": options["ignore_index"], "resolution": resolution,
                "method": method, **(cut_options or {}),  # alpha/tau None: each backbone's (scores' "cut")
                "alpha": alpha, "tau": tau}
    paths = save_scores(scores, out, meta=settings)
    click.echo(format_table(scores))
    click.echo("wrote " + ", ".join(str(p) for p in paths.values()))
