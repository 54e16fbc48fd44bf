"""Click parameter types shared by `ovseg label/segment` and `ovseg eval` (click only: --help stays quick)."""
from __future__ import annotations

import click

from ovseg.settings import defaults as _defaults  # torch-free: the help shows the defaults


class SuggestingChoice(click.Choice):
    """click.Choice whose refusal also names the closest choice ("'vco' ... did you mean 'voc'?")."""

    def convert(self, value, param, ctx):
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter as err:
            import difflib

            close = difflib.get_close_matches(str(value).strip().lower(), [str(c) for c in self.choices],
                                              n=1, cutoff=0.6)
            if close:
                err.message = f"{err.message.rstrip('.')}; did you mean {close[0]!r}?"
            raise err


class TauParam(click.ParamType):
    """An NCut threshold in [0, 2], or "auto" (chosen per image; docs/random-walk.md)."""

    name = "FLOAT|auto"

    def convert(self, value, param, ctx):
        if isinstance(value, float) or value == "auto":
            return value
        try:
            tau = float(value)
        except (TypeError, ValueError):
            self.fail(f'{value!r} is neither a number nor "auto"', param, ctx)
        if not 0 <= tau <= 2:
            self.fail(f"{tau:g} is not in the range 0<=x<=2 (the range of NCut)", param, ctx)
        return tau


class AlphaParam(click.ParamType):
    """The affinity exponent: a finite number > 0, or "auto" (chosen per image, METHOD.md 10)."""

    name = "FLOAT|auto"

    def convert(self, value, param, ctx):
        import math

        if value == "auto" or (isinstance(value, float) and math.isfinite(value) and value > 0):
            return value
        try:
            alpha = float(value)
        except (TypeError, ValueError):
            self.fail(f'{value!r} is neither a number nor "auto"', param, ctx)
        if not (math.isfinite(alpha) and alpha > 0):
            self.fail(f'{alpha:g} is not a finite number > 0 (or "auto")', param, ctx)
        return alpha


ALPHA_HELP = (f"Affinity exponent W = C**alpha, or auto: chosen per image so that W's mean off-diagonal "
              f"entry is {_defaults.DEGREE_TARGET:g}, self-loops removed (recorded in the JSON as alpha_chosen) "
              f"[default: the backbone's; {_defaults.ALPHA:g} for ssd-1b, as in the paper; auto for backbones "
              f"without a published recipe; `ovseg backbones` lists them].")
MIN_AREA_HELP = (f"Merge segments under this fraction of the image into their most similar adjacent "
                 f"segment, before PAMR; 0: none [default: the backbone's; 0 for ssd-1b, "
                 f"{_defaults.MIN_AREA:g} for backbones whose default alpha is auto].")


def alpha_option(**kwargs):
    """``--alpha``: a number > 0 or auto (usage errors in click, before torch)."""
    return click.option("--alpha", type=AlphaParam(), default=None, help=ALPHA_HELP, **kwargs)


def min_area_option(**kwargs):
    """``--min-area``: a fraction of the image in [0, 1)."""
    return click.option("--min-area", type=click.FloatRange(min=0, max=1, max_open=True), default=None,
                        help=MIN_AREA_HELP, **kwargs)


class LayersParam(click.ParamType):
    """Comma-separated attention layer indices (negative allowed) or names; "all" = None."""

    name = "all|LAYERS"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, tuple):
            return value
        if value.strip() == "all":
            return None
        parts = [p.strip() for p in value.split(",")]
        if not all(parts):
            self.fail(f"{value!r}: empty layer in the list", param, ctx)
        return tuple(int(p) if p.lstrip("-").isdigit() else p for p in parts)


class KParam(click.ParamType):
    """kway's K: a number of segments (an int >= 1), or a K rule (auto, eigengap, tree)."""

    name = "N|auto"

    def convert(self, value, param, ctx):
        from ovseg.settings.methods import K_RULES

        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
        if isinstance(value, str) and value.strip() in K_RULES:
            return value.strip()
        try:
            k = int(str(value).strip())
        except (TypeError, ValueError):
            self.fail(f"{value!r} is neither a number of segments nor one of {', '.join(K_RULES)}", param, ctx)
        if k < 1:
            self.fail(f"{k} is not a number of segments (an int >= 1)", param, ctx)
        return k


K_HELP = ("kway: a number of segments, or auto: K chosen per image by merging the clusters of a "
          "16-way cut while a pair's two-way NCut is >= tau (as the recursive cut would not split "
          "them); eigengap and tree are the other rules (docs/kway.md). The JSON records k and the "
          "K chosen (k_chosen).")


def method_option(*, needs: str | None = None, **kwargs):
    """``--method``: the registry's methods (`ovseg.settings.methods`, torch-free), help from each
    method's own description; needs="features": only the methods that cut features alone."""
    from ovseg.settings.methods import get_method, list_methods, method_help

    names = [m for m in list_methods() if needs is None or get_method(m).needs == needs]
    help_text = kwargs.pop("help", None) or method_help(names)
    return click.option("--method", type=click.Choice(names), default="diffcut", show_default=True,
                        help=help_text, **kwargs)


def check_method_options(ctx: click.Context, method: str, values: dict | None = None) -> None:
    """Options of another cut method given explicitly (or settings the chosen one ignores for
    these values, e.g. --tau with kway's --k 6): a usage error naming the option, before any
    model loads. values: the method's settings as given ({name: value}), for ``ignores``."""
    from click.core import ParameterSource

    from ovseg.settings.methods import get_method, list_methods

    def given(name: str) -> bool:
        return name in ctx.params and ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT)

    entry = get_method(method)
    for name in dict.fromkeys(f for m in list_methods() for f in get_method(m).settings):
        if name not in entry.settings and given(name):
            users = [m for m in list_methods() if name in get_method(m).settings]
            raise click.UsageError(f"--{name.replace('_', '-')} applies to --method {' or '.join(users)} only", ctx)
    for name, reason in entry.ignores(dict(values or {})).items():
        if given(name):
            raise click.UsageError(f"--{name.replace('_', '-')}: {reason}", ctx)
