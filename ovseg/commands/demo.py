"""`ovseg demo`: serve the web page (imports only click here, so `ovseg --help` stays quick)."""
from __future__ import annotations

import click

from ovseg.commands import edge as _edge
from ovseg.commands.options import K_HELP, check_method_options, method_option, option
from ovseg.settings.catalog import BACKBONES
from ovseg.settings.defaults import SLIDER_TAU_MAX
from ovseg.settings.methods import method_help

INSTALL_HINT = 'the demo needs gradio: pip install "ovseg[demo]"'
_SSD = BACKBONES["ssd-1b"]  # the paper's backbone, whose cut defaults the help quotes


def gradio_missing() -> str | None:
    """None when gradio is installed, else what to do. A folder named gradio/ on the path (one
    left in the current folder) makes Python find a namespace package where gradio is missing:
    that is named too, instead of `module 'gradio' has no attribute 'Blocks'` later."""
    import importlib.util

    spec = importlib.util.find_spec("gradio")
    if spec is None:
        return INSTALL_HINT
    if spec.origin is None or spec.origin == "namespace":  # no __init__.py: not the package
        where = ", ".join(str(p) for p in (spec.submodule_search_locations or []))
        return f"{INSTALL_HINT} (the folder {where} is not gradio; it only looks like it to Python)"
    return None


@click.command("demo")
@option("backbone")
@option("weights")
@option("clip_weights")
@option("resolution")
@option("alpha")
@option("min_area")
@option("tau", type=click.FloatRange(0, 2),  # a number: the slider's first position
        help=f"The slider's starting NCut threshold [default: the backbone's; {_SSD.tau:g} for ssd-1b].")
@click.option("--max-tau", type=click.FloatRange(0, 2, min_open=True), default=SLIDER_TAU_MAX,
              show_default=True, help="Top of the slider: each image's tree is built there once.")
@option("refine_iterations", help="PAMR iterations (0: no refinement); 15 is DiffCut's open-vocabulary setting.")
@method_option(help=method_help().rstrip(".") + ". The slider recuts the method's tree (kway: the "
                                                 "merge threshold of --k auto).")
@option("k", help=K_HELP + " A fixed K freezes the slider.")
@option("walk_steps")
@option("device")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to serve on (0.0.0.0: every interface).")
@click.option("--port", type=click.IntRange(1, 65535), default=7860, show_default=True)
@click.option("--share", is_flag=True, help="Also open a public gradio.live link.")
@click.option("--verbose", "-v", is_flag=True,
              help="Show the warnings, logs and progress bars of the libraries loading models.")
def demo_command(host, port, share, max_tau, refine_iterations, verbose, **kw) -> None:
    """A web page: upload an image, name classes, move a threshold slider.

    The slider recuts the image's kept normalized-cut tree: no backbone pass per move. Models
    load once, on the first Run. Named API endpoints /label and /segment serve scripts
    (README, "Try it in the browser").

    \b
    ovseg demo
    ovseg demo --device cuda --port 8080
    ovseg demo --method random-walk
    ovseg demo --method kway              (the slider moves the K-way cut's merge threshold)
    HF_HUB_OFFLINE=1 ovseg demo --weights ./ssd-1b --clip-weights ./clip
    """
    missing = gradio_missing()  # without importing it (seconds)
    if missing:
        raise click.ClickException(missing)
    _edge.start(verbose)
    check_method_options(click.get_current_context(), kw["method"], kw)  # another method's options: exit 2
    from ovseg.settings.config import SegmenterConfig

    try:  # settings before torch is imported (exit 2); the device, then every model's weights (exit 1)
        with _edge.settings_checked():
            config = SegmenterConfig(refine=refine_iterations > 0, refine_iterations=max(refine_iterations, 0), **kw)
        from ovseg.pipeline import Segmenter

        segmenter = Segmenter(config)
        with _edge.settings_checked(), _edge.models_found():
            segmenter.preflight(labels=True)  # before gradio loads
    except (ValueError, KeyError) as err:  # a check that names no single option
        raise click.UsageError(str(err)) from err
    from ovseg.demo import build_app, launch_app

    app = build_app(segmenter, max_tau=max_tau)
    click.echo(f"ovseg demo on http://{host}:{port} (Ctrl+C stops it)", err=True)
    launch_app(app, host=host, port=port, share=share)
