"""The command edge: what every `ovseg` command does before, and around, its work.

    ovseg label / segment / eval / coherence / cache / demo
      1. settings     each value checked before torch is imported: the click types call the
                      settings checks, then `SegmenterConfig(...)` ties them together
                      (ovseg.settings; ovseg.commands.options)   -> exit 2, naming the option
      2. device       the torch device exists on this machine (`SegmenterConfig.validate`,
                      once per run)                                -> exit 2 (--device)
      3. weights      every model's weights (backbone AND CLIP) on disk, in the cache or
                      downloadable, found before any model runs
                      (`Segmenter.preflight`)                       -> exit 1, in seconds
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

from ovseg.settings.checks import SettingError
from ovseg.settings.weights import WeightsNotFoundError

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
    try:
        yield
    except SettingError as err:
        raise setting_error(err) from None


@contextlib.contextmanager
def models_found(extra_hint: str = "") -> Iterator[None]:
    """WeightsNotFoundError inside -> one clean line, exit 1 (`extra_hint` appended)."""
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


# -- step 3: weights, found before any model runs (`Segmenter.preflight`; ovseg/pipeline/_preflight.py) --
def check_backbone_weights(backbone: str, weights, hint: str = "weights") -> None:
    """A backbone's weights on disk, cached or downloadable (WeightsNotFoundError): for the
    commands that build backbones without a Segmenter (coherence)."""
    from ovseg.pipeline import _preflight  # imports torch: after every settings check

    _preflight.check_backbone_weights(backbone, weights, hint)


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
