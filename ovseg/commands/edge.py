"""The command edge: what every `ovseg` command does before, and around, its work.

    ovseg label / segment / eval / coherence / cache / demo
      1. settings     each value checked before any model loads    -> exit 2, naming the option
      2. device       the torch device exists on this machine       -> exit 2 (--device)
      3. weights      every model's weights (backbone AND CLIP) on disk, in the cache or
                      downloadable, found before any model runs     -> exit 1, in seconds
      4. quiet        third-party warnings, logs and bars off unless --verbose; ovseg's own
                      warnings as one line each
      run             a bad image is one line (the command goes on where it can) -> exit 1
      Ctrl-C          anywhere, imports included                     -> exit 130

Exit codes: 0 done, 1 some images failed or a model could not be found/loaded, 2 usage error
(bad settings), 130 interrupted. Imports only click at module level, so `ovseg --help` is quick.
"""
from __future__ import annotations

import contextlib
import sys
from typing import Iterator

import click

EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


class Group(click.Group):
    """click.Group whose commands exit 130 on Ctrl-C, wherever it lands (click's own handling
    prints "Aborted!" and exits 1)."""

    def make_context(self, *args, **kwargs):  # parsing the command line
        try:
            return super().make_context(*args, **kwargs)
        except KeyboardInterrupt:
            interrupted()

    def invoke(self, ctx: click.Context):  # the command, its lazy imports included
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            interrupted()


def interrupted(message: str = "interrupted") -> None:
    """Say so on stderr and exit 130 (128 + SIGINT, what shells report for Ctrl-C)."""
    click.echo(message, err=True)
    raise SystemExit(EXIT_INTERRUPTED)


def setting_error(err) -> click.UsageError:
    """A SettingError as a usage error (exit 2) on the option it names: "alpha" -> '--alpha'; an
    environment variable ("OVSEG_CACHE_SIZE") is named as is."""
    name = err.setting if err.setting.isupper() else "--" + err.setting.replace("_", "-")
    return click.BadParameter(str(err), param_hint=f"'{name}'")


@contextlib.contextmanager
def settings_checked() -> Iterator[None]:
    """SettingError inside -> exit 2 naming the option."""
    from ovseg.settings.checks import SettingError

    try:
        yield
    except SettingError as err:
        raise setting_error(err) from None


@contextlib.contextmanager
def models_found(extra_hint: str = "") -> Iterator[None]:
    """WeightsNotFoundError inside -> one clean line, exit 1 (`extra_hint` appended)."""
    from ovseg.settings.weights import WeightsNotFoundError

    try:
        yield
    except WeightsNotFoundError as err:
        raise click.ClickException(f"{err}{extra_hint}") from None


def start(verbose: bool = False) -> None:
    """Step 4, first thing in every command: third-party noise off unless `verbose`, and
    warnings shown as one line ("warning: ..."), without the source line Python prints."""
    import warnings

    if not verbose:
        from ovseg.io.quiet import quiet_third_party

        quiet_third_party()

    def show(message, category, filename, lineno, file=None, line=None):
        click.echo(f"warning: {message}", err=True)

    warnings.showwarning = show


def check_device(device: str | None):
    """Step 2: the torch.device of `device` (None: cuda when available), or SettingError: at once,
    before torch is imported, where the answer is certain (`ovseg.settings.devices.precheck_device`)."""
    from ovseg.settings.devices import precheck_device, resolve_device

    precheck_device(device)
    return resolve_device(device)


def check_resolution(backbone: str, resolution: int | None) -> None:
    """Step 1 for a backbone's input size: at least 32 and a multiple of its stride; an unknown
    backbone names the valid ones. Torch-free (`ovseg.settings.catalog`)."""
    from ovseg.settings.catalog import backbone_facts
    from ovseg.settings.checks import SettingError

    try:
        facts = backbone_facts(backbone)
    except ValueError as err:
        raise SettingError("backbone", str(err)) from None
    if resolution is None:
        return
    if resolution < 32:
        raise SettingError("resolution", f"resolution must be at least 32, got {resolution}")
    if facts.stride and resolution % facts.stride:
        near = max(facts.stride, round(resolution / facts.stride) * facts.stride)
        raise SettingError("resolution", f"resolution {resolution} is not a multiple of the {backbone} "
                                         f"backbone's stride {facts.stride}; try {near}")


def check_method(method: str | None, backbone: str | None, attention_layers=None) -> None:
    """Step 1 for the cut method: a known name; one that needs self-attention maps, on a backbone
    that gives them (torch-free when the layers are all, else the registry checks them)."""
    from ovseg.settings.catalog import attention_backbones, backbone_facts, method_names, method_needs
    from ovseg.settings.checks import SettingError

    if method is None:
        return
    if method not in method_names():
        raise SettingError("method", f"method must be one of {', '.join(method_names())}, got {method!r}")
    if method_needs(method) != "attention" or backbone is None:
        return
    if attention_layers is None and backbone_facts(backbone).attention is not None:
        if not backbone_facts(backbone).attention:
            raise SettingError("method", f"backbone {backbone!r} gives no self-attention maps, which the "
                                         f"random-walk method needs; backbones that do: "
                                         f"{', '.join(attention_backbones())}")
        return
    from ovseg.features import check_attention_layers  # layer names: the registry (imports torch)

    try:
        check_attention_layers(backbone, attention_layers)
    except ValueError as err:
        raise SettingError("method" if "gives no self-attention" in str(err) else "attention_layers",
                           str(err)) from None


def check_tau(tau) -> None:
    """Step 1 for the NCut threshold: a number in [0, 2], or "auto"."""
    import math

    from ovseg.settings.checks import SettingError

    if tau is None or tau == "auto":
        return
    if isinstance(tau, (str, bool)) or not (isinstance(tau, (int, float)) and math.isfinite(tau) and 0 <= tau <= 2):
        raise SettingError("tau", f'tau must be a number in [0, 2] (the range of NCut) or "auto", got {tau!r}')


def check_finite(setting: str, value: float | None, *, positive: bool = False) -> None:
    """Step 1 for a number: finite (and > 0 with `positive`), else SettingError."""
    import math

    from ovseg.settings.checks import SettingError

    if value is None:
        return
    if not math.isfinite(value) or (positive and value <= 0):
        raise SettingError(setting, f"{setting} must be a finite{' positive' if positive else ''} "
                                    f"number, got {value}")


def precheck(*, backbone: str | None = None, resolution: int | None = None, alpha=None, tau=None,
             method: str | None = None, attention_layers=None, device=None, cache: bool = False,
             **_ignored) -> None:
    """Steps 1-2 before torch is imported (it takes 2-7 s): every check that needs no model and no
    torch, so that a bad setting answers at once. Raises SettingError; what needs torch (a device
    the pre-check cannot be sure of, dtype on that device) is left to `SegmenterConfig.validate`.
    cache: the segment cache is on, so $OVSEG_CACHE_SIZE must parse."""
    check_finite("alpha", alpha, positive=True)
    check_tau(tau)
    if backbone is not None:
        check_resolution(backbone, resolution)
    check_method(method, backbone, attention_layers)
    from ovseg.settings.devices import precheck_device

    precheck_device(device)
    if cache:
        from ovseg.io.cache import max_cache_bytes

        max_cache_bytes()


# -- step 3: weights, found before any model runs (ovseg/pipeline/_preflight.py, imported when used) --
def check_backbone_weights(backbone: str, weights, hint: str = "weights") -> None:
    from ovseg.pipeline import _preflight

    _preflight.check_backbone_weights(backbone, weights, hint)


def preflight(config, *, labels: bool):
    """`validate()`, then every model's weights (`ovseg.pipeline._preflight.preflight`)."""
    from ovseg.pipeline import _preflight

    return _preflight.preflight(config, labels=labels)


def check_has_images(inputs) -> None:
    """Inputs that hold no image file: a usage error (exit 2), not "done 0 image(s)"."""
    from ovseg.io import IMAGE_EXTENSIONS, find_images

    local = [p for p in inputs if not isinstance(p, str) or "://" not in p]
    if local and len(local) == len(inputs) and not find_images(local):
        raise click.UsageError(f"no image files in {', '.join(map(str, local))} (looked for "
                               f"{', '.join(IMAGE_EXTENSIONS)}, in folders recursively)")


def echo_failures(failed: list[tuple[object, str]]) -> None:
    """One line per failed image, then exit 1."""
    if failed:
        click.echo(f"{len(failed)} image(s) failed:", err=True)
        for _, message in failed:
            click.echo(f"  {message}", err=True)
        sys.exit(EXIT_FAILED)
