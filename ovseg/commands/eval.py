"""`ovseg eval`: score ovseg on a benchmark with the published protocol. Parses and calls the API."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import click

from ovseg.commands import edge as _edge
from ovseg.commands.options import K_HELP, SuggestingChoice, check_method_options, given, method_option, option
from ovseg.evaluation._datasets import list_datasets  # numpy and a small JSON file only
from ovseg.settings.catalog import BACKBONES
from ovseg.settings.methods import get_method
from ovseg.settings.devices import resolve_device, resolve_dtype  # the one rule, the backbones' too
from ovseg.settings.weights import WeightsNotFoundError

_SSD = BACKBONES["ssd-1b"]  # the paper's backbone, whose cut defaults the help quotes


@contextmanager
def _clean_errors() -> Iterator[None]:
    """Ordinary mistakes (bad layout, missing --image-list, no weights) -> one clean line, exit 1."""
    try:
        yield
    except (ValueError, FileNotFoundError, WeightsNotFoundError) as err:
        raise click.ClickException(str(err)) from err


def _device_dtype(device: str | None) -> tuple[str, str]:
    """The device the backbone runs on and its dtype (float16 on CUDA, float32 elsewhere), as text."""
    dev = resolve_device(device)
    return str(dev), resolve_dtype(None, dev)


_PROTOCOL_ONLY = {"matching": "unsupervised", "vocabulary": "open-vocabulary", "clip_weights": "open-vocabulary"}


def _check_protocol_options(ctx: click.Context, protocol: str) -> None:
    """An option the chosen protocol ignores, given explicitly, is a usage error (not a silent no-op)."""
    for name, wanted in _PROTOCOL_ONLY.items():
        if protocol != wanted and name in given(ctx):
            flag = "--" + name.replace("_", "-")
            raise click.UsageError(f"{flag} applies to the {wanted} protocol only, not to {protocol}", ctx)


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


def _check_settings(ctx, dataset, protocol, taus, ks, vocabulary, **settings):
    """Every setting, before any data or model is read: each value (the option types), another
    method's options, then the config that ties them together (`SegmenterConfig`, once per swept
    value): exit 2 naming the option. Returns (the dataset's spec, the config of the first value)."""
    from ovseg.evaluation._datasets import get_dataset
    from ovseg.settings.config import SegmenterConfig

    check_method_options(ctx, settings["method"], {"k": "auto" if not ks or "auto" in ks else ks[0], "tau": list(taus)})
    with _edge.settings_checked():  # each tau: its option type; with the method: just above
        config = SegmenterConfig(**settings, k=ks[0] if ks else "auto", cache=False)  # no segment cache here
        for k in ks[1:]:
            config.replace(k=k)
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
    return spec, config


def _method_options(config, taus, ks) -> tuple[dict, dict]:
    """The cut method's options, defaults filled as label/segment fill them (`SegmenterConfig`:
    alpha and tau from the backbone) -> (options for the predictor, a repeated option as a list:
    swept; the settings the results record: `SegmenterConfig.method_settings`)."""
    entry = get_method(config.method)
    recorded = config.method_settings()
    swept = {"k": list(dict.fromkeys(ks))} if "k" in entry.options and len(set(ks)) > 1 else {}
    options = {n: recorded[n] for n in entry.options}
    for n, values in swept.items():
        options[n] = recorded[n] = values
    if "attention_layers" in recorded:
        recorded["attention_layers"] = "all" if config.attention_layers is None else list(config.attention_layers)
    if config.min_area:  # any method's; recorded when it merges (0: DiffCut's recipe, as before)
        options["min_area"] = recorded["min_area"] = config.min_area
    return options, recorded


@click.command("eval")
@click.option("--dataset", required=True, type=SuggestingChoice(list_datasets()), help="Benchmark to score on.")
@click.option("--root", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The dataset's folder, in its standard layout (docs/evaluation.md).")
@click.option("--image-list", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="File of image ids; required for COCO (Coco164kFull_Stuff_Coarse_7.txt, 2,175 images).")
@click.option("--protocol", type=click.Choice(["unsupervised", "open-vocabulary"]), default="unsupervised",
              show_default=True, help="Hungarian-matched segments, or named classes (the labeler).")
@option("tau", multiple=True,
        help="NCut threshold, or auto (per image); repeat (--tau 0.3 --tau 0.5 --tau auto) to sweep, one "
             "hierarchy per image; kway: the merge threshold of --k auto [default: the backbone's; "
             f"{_SSD.tau:g} for ssd-1b].")
@method_option()
@option("k", multiple=True,
        help=K_HELP.replace("The JSON records", "Repeat (--k 4 --k 8 --k auto) to sweep, one affinity per "
                            "image; the report records") + " [default: auto]")
@option("walk_steps")
@option("attention_layers")
@option("alpha")
@option("min_area")
@option("backbone")
@option("weights")
@option("clip_weights", help="Labeler (CLIP) weights, open-vocabulary protocol: a local folder or a repo id.")
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
@option("refine", help="PAMR on the 128 px masks.")
@option("device")
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
    _edge.start(verbose)
    ctx = click.get_current_context()
    _check_protocol_options(ctx, protocol)
    spec, config = _check_settings(ctx, dataset, protocol, tau, k, vocabulary, method=method, backbone=backbone,
                                   weights=weights, clip_weights=clip_weights, alpha=alpha, min_area=min_area,
                                   walk_steps=walk_steps,
                                   attention_layers=attention_layers, refine=refine, device=device)
    samples = dataset_samples(dataset, root, image_list, ctx)  # a bad layout: exit 2, before torch and models
    with _edge.settings_checked():  # the device exists (torch): once the data is found
        device, dtype = _device_dtype(device)
    from ovseg.evaluation import _adapter
    from ovseg.evaluation._report import markdown_table, write_report
    from ovseg.evaluation._runner import evaluate

    out = out or Path("eval") / ((dataset if protocol == "unsupervised" else f"{dataset}-{protocol}")
                                 + ("-published" if recipe == "published" else ""))
    options, method_settings = _method_options(config, tau, k)
    taus = tuple(dict.fromkeys(tau)) or (method_settings.pop("tau"),)  # none given: the backbone's
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
