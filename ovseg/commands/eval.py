"""`ovseg eval`: score ovseg on a benchmark with the published protocol. Parses and calls the API."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import click

from ovseg.commands.options import (K_HELP, KParam, LayersParam, SuggestingChoice, TauParam, alpha_option,
                                    method_option, min_area_option)
from ovseg.evaluation._datasets import list_datasets  # numpy and a small JSON file only


@contextmanager
def _clean_errors() -> Iterator[None]:
    """Ordinary mistakes (bad layout, missing --image-list, no weights) -> one clean line, exit 1."""
    from ovseg import WeightsNotFoundError

    try:
        yield
    except (ValueError, FileNotFoundError, WeightsNotFoundError) as err:
        raise click.ClickException(str(err)) from err


def dataset_samples(dataset: str, root, image_list, ctx=None) -> list:
    """The samples of `dataset` under `root`, listed before torch or any model loads (numpy only):
    a root without the dataset's layout is a usage error on --root, a dataset that needs
    --image-list without one a usage error too (exit 2, issue 31 item 5)."""
    from ovseg.evaluation._datasets import get_dataset

    try:
        return get_dataset(dataset).samples(root, image_list)
    except FileNotFoundError as err:  # the data is not where --root says
        raise click.BadParameter(str(err), ctx, param_hint="'--root'") from None
    except ValueError as err:  # the options do not fit the dataset (COCO without --image-list)
        raise click.UsageError(str(err), ctx) from None


def _device_dtype(device: str | None) -> tuple[str, str]:
    """The device the backbone runs on and its dtype (float16 on CUDA, float32 elsewhere), as text."""
    from ovseg.settings.devices import resolve_device, resolve_dtype  # the one rule, the backbones' too

    dev = resolve_device(device)
    return str(dev), resolve_dtype(None, dev)


_PROTOCOL_ONLY = {"matching": "unsupervised", "vocabulary": "open-vocabulary", "clip_weights": "open-vocabulary"}


def _check_protocol_options(ctx: click.Context, protocol: str) -> None:
    """An option the chosen protocol ignores, given explicitly, is a usage error (not a silent no-op)."""
    from click.core import ParameterSource

    for name, wanted in _PROTOCOL_ONLY.items():
        if protocol != wanted and ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT):
            flag = "--" + name.replace("_", "-")
            raise click.UsageError(f"{flag} applies to the {wanted} protocol only, not to {protocol}", ctx)


def _check_method_options(ctx: click.Context, method: str, backbone: str, layers, ks) -> None:
    """Another cut method's options (or ones this method ignores, as --tau with kway's fixed --k),
    or a backbone/layers the registry refuses: usage errors, before any model loads."""
    from ovseg.commands.options import check_method_options
    from ovseg.settings.methods import get_method

    check_method_options(ctx, method, {"k": "auto" if not ks or "auto" in ks else ks[0],
                                        "tau": list(ctx.params.get("tau") or ())})
    if get_method(method).needs != "attention":
        return
    from ovseg.commands import edge as _edge

    with _edge.settings_checked():  # torch-free for all layers (ovseg.settings.catalog)
        _edge.check_method(method, backbone, layers)


def _method_options(ctx: click.Context, backbone: str, method: str, layers) -> tuple[dict, dict]:
    """The cut method's options from the command line, defaults filled as label/segment fill them
    (`SegmenterConfig`: alpha and tau from the backbone) -> (options for the predictor, a repeated
    option as a list: swept; the settings the results record: `SegmenterConfig.method_settings`)."""
    from ovseg.commands import edge as _edge
    from ovseg.masks import get_method
    from ovseg.pipeline import SegmenterConfig

    entry = get_method(method)
    names = [n for n in entry.options if n in ctx.params]
    multi = {n: list(dict.fromkeys(ctx.params[n])) for n in names if isinstance(ctx.params[n], tuple)}
    single = {n: ctx.params[n] for n in names if n not in multi and ctx.params[n] is not None}
    if ctx.params.get("min_area") is not None:  # any method's (None: the backbone's)
        single["min_area"] = ctx.params["min_area"]
    with _edge.settings_checked():  # each value checked as label/segment check it: exit 2
        config = SegmenterConfig(backbone=backbone, method=method, attention_layers=layers, **single,
                                 **{n: v[0] for n, v in multi.items() if v})
        for n, values in multi.items():
            for v in values[1:]:
                SegmenterConfig(backbone=backbone, method=method, attention_layers=layers, **{n: v})
    recorded = config.method_settings()
    options = {n: recorded[n] for n in entry.options}
    if config.min_area:  # any method's; recorded when it merges (0: DiffCut's recipe, as before)
        options["min_area"] = recorded["min_area"] = config.min_area
    for n, values in multi.items():
        if len(values) > 1:
            options[n] = recorded[n] = values
    if "attention_layers" in recorded:
        recorded["attention_layers"] = "all" if layers is None else list(layers)
    return options, recorded


def _check_settings(ctx, dataset, protocol, taus, method, backbone, layers, alpha, weights,
                    clip_weights, vocabulary, device, ks=()):
    """Every setting, before any data or model is read (`ovseg.commands.edge`): exit 2 naming the option.
    Returns the dataset's spec."""
    from ovseg.commands import edge as _edge
    from ovseg.settings.checks import check_weights_path
    from ovseg.settings.devices import precheck_device
    from ovseg.evaluation._datasets import get_dataset

    with _edge.settings_checked():
        _edge.check_alpha(alpha)
        _edge.check_resolution(backbone, None)  # an unknown backbone, named with the valid ones
        _check_method_options(ctx, method, backbone, layers, ks)
        check_weights_path("weights", weights)
        check_weights_path("clip_weights", clip_weights)
        precheck_device(device)  # torch-free; `check_device` (torch) once the data is found
    spec = get_dataset(dataset)
    if protocol == "open-vocabulary":
        if len(set(taus)) > 1:
            raise click.UsageError("the open-vocabulary protocol takes a single --tau", ctx)
        if len(set(ks)) > 1:
            raise click.UsageError("the open-vocabulary protocol takes a single --k", ctx)
        if vocabulary is None and spec.vocabulary is None:
            raise click.UsageError("this dataset has no shipped vocabulary: pass --vocabulary FILE "
                                   "(one class per line, in the dataset's class order)", ctx)
        from ovseg.pipeline import Segmenter

        try:
            Segmenter.vocabulary(vocabulary or spec.vocabulary)
        except (ValueError, TypeError, OSError) as err:
            raise click.BadParameter(str(err), ctx, param_hint="'--vocabulary'") from None
    return spec


@click.command("eval")
@click.option("--dataset", required=True, type=SuggestingChoice(list_datasets()), help="Benchmark to score on.")
@click.option("--root", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The dataset's folder, in its standard layout (docs/evaluation.md).")
@click.option("--image-list", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="File of image ids; required for COCO (Coco164kFull_Stuff_Coarse_7.txt, 2,175 images).")
@click.option("--protocol", type=click.Choice(["unsupervised", "open-vocabulary"]), default="unsupervised",
              show_default=True, help="Hungarian-matched segments, or named classes (the labeler).")
@click.option("--tau", type=TauParam(), multiple=True,
              help="NCut threshold, or auto (per image); repeat (--tau 0.3 --tau 0.5 --tau auto) to "
                   "sweep, one hierarchy per image; kway: the merge threshold of --k auto "
                   "[default: the backbone's; 0.5 for ssd-1b].")
@method_option()
@click.option("--k", "k", type=KParam(), multiple=True,
              help=K_HELP.replace("The JSON records", "Repeat (--k 4 --k 8 --k auto) to sweep, one affinity per "
                                  "image; the report records") + " [default: auto]")
@click.option("--walk-steps", type=click.IntRange(min=1), default=1, show_default=True,
              help="random-walk: k-step walks P^k.")
@click.option("--attention-layers", type=LayersParam(), default="all", show_default=True,
              help="random-walk: self-attention layers (indices or names, comma-separated), or all.")
@alpha_option()
@min_area_option()
@click.option("--backbone", default="ssd-1b", show_default=True, help="Feature extractor (ovseg backbones).")
@click.option("--weights", default=None, help="Backbone weights: hub id or local folder.")
@click.option("--clip-weights", default=None, help="Labeler (CLIP) weights, open-vocabulary protocol.")
@click.option("--vocabulary", "--vocab", "vocabulary", default=None,
              help="Vocabulary in prompts/ (default: the dataset's); auto: the labeler picks its own "
                   "names from the name bank, mapped to the dataset's classes by synonyms "
                   "(docs/evaluation.md).")
@click.option("--matching", type=click.Choice(["present", "published"]), default=None,
              help="Unmatched segments: FP of no class (ovseg), or of an absent class (published code) "
                   "[default: present; published with --recipe published].")
@click.option("--recipe", type=click.Choice(["ovseg", "published"]), default="ovseg", show_default=True,
              help="published: DiffCut's crop (min side - 1), float bilinear resize, label rules and "
                   "per-image open-vocabulary mIoU, to reproduce the published table (docs/fidelity.md).")
@click.option("--refine/--no-refine", default=True, show_default=True, help="PAMR on the 128 px masks.")
@click.option("--device", default=None, help="torch device, e.g. cuda or cpu (default: cuda if available).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Score only the first N images.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder [default: eval/<dataset>, or eval/<dataset>-open-vocabulary]. "
                   "Reruns resume from per_image.jsonl there.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
@click.option("--verbose", "-v", is_flag=True,
              help="Show the warnings, logs and progress bars of the libraries loading models.")
def eval_command(dataset, root, image_list, protocol, tau, method, k, walk_steps, attention_layers, alpha, min_area,
                 backbone, weights, clip_weights, vocabulary, matching, recipe, refine, device, limit, out,
                 progress, verbose):
    """Score ovseg on a segmentation benchmark; write a table, CSV, JSON and a bar chart.

    \b
    ovseg eval --dataset voc --root data --out eval/voc
    ovseg eval --dataset cocostuff27 --root data/coco --image-list Coco164kFull_Stuff_Coarse_7.txt
    ovseg eval --dataset ade20k --root data/ADEChallengeData2016 --limit 50 --tau 0.3 --tau 0.5
    ovseg eval --dataset voc --root data --method random-walk --tau auto --tau 0.3
    ovseg eval --dataset voc --root data --method kway --k 4 --k 8 --k auto --tau 0.4 --tau 0.5
    ovseg eval --dataset voc --root data --recipe published   # the published rules, eval/voc-published
    ovseg eval --dataset ade20k --root data/ADEChallengeData2016 --protocol open-vocabulary --vocab auto
    """
    from ovseg.commands import edge as _edge

    _edge.start(verbose)
    ctx = click.get_current_context()
    _check_protocol_options(ctx, protocol)
    spec = _check_settings(ctx, dataset, protocol, tau, method, backbone, attention_layers, alpha,
                           weights, clip_weights, vocabulary, device, k)
    samples = dataset_samples(dataset, root, image_list, ctx)  # a bad layout: exit 2, before torch and models
    with _edge.settings_checked():
        _edge.check_device(device)
    from ovseg.evaluation import _adapter
    from ovseg.evaluation._report import markdown_table, write_report
    from ovseg.evaluation._runner import evaluate

    device, dtype = _device_dtype(device)
    out = out or Path("eval") / ((dataset if protocol == "unsupervised" else f"{dataset}-{protocol}")
                                 + ("-published" if recipe == "published" else ""))
    options, method_settings = _method_options(ctx, backbone, method, attention_layers)
    taus = tuple(dict.fromkeys(tau)) or (method_settings.pop("tau"),)  # None: the backbone's
    method_settings.pop("tau", None)  # recorded as taus
    auto = vocabulary == "auto"  # automatic names, scored through the dataset's own vocabulary
    if auto and protocol != "open-vocabulary":
        raise click.UsageError("--vocabulary auto applies to --protocol open-vocabulary")
    offset = 0 if vocabulary and not auto else spec.vocabulary_offset
    vocabulary = spec.vocabulary if auto or not vocabulary else vocabulary
    with _clean_errors():
        predictor = _adapter.make_predictor(
            protocol, vocabulary=vocabulary, vocabulary_offset=offset, taus=taus, backbone=backbone,
            weights=weights, clip_weights=clip_weights, device=device, refine=refine,
            method=method, attention_layers=attention_layers, dataset=dataset, recipe=recipe,
            **options, **({"auto_names": True} if auto else {}))
    settings = {"backbone": backbone, "weights": weights, "refine": refine,
                "taus": list(taus), "device": device, "dtype": dtype,  # fp16 vs fp32 results never mix
                "method": method, **method_settings}  # the method's own (random-walk: no alpha; kway: k)
    if protocol == "open-vocabulary":
        settings.update(vocabulary="auto" if auto else vocabulary, clip_weights=clip_weights)
    with _clean_errors():
        results = evaluate(spec, predictor, samples=samples, protocol=protocol, limit=limit, out=out,
                           settings=settings, matching=matching, progress=progress, recipe=recipe)
    paths = write_report(results, out)
    click.echo(markdown_table(results))
    stats = getattr(predictor, "stats", None)
    if auto and stats is not None:
        import json

        (Path(out) / "auto_names.json").write_text(json.dumps(stats, indent=1))
        click.echo(f"automatic names: {stats['unmatched_segments']} of {stats['segments']} segments and "
                   f"{stats['unmatched_names']} of {stats['names']} chosen names unmatched to a dataset class "
                   f"({stats['images']} image(s) run now; resumed ones are not recounted)")
    click.echo(f"wrote {', '.join(str(p) for p in paths.values())}")
