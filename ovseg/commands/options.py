"""The command-line options of every setting, built from `SegmenterConfig`'s fields: the flag,
type, default and help are the field's (`ovseg.settings.config.setting`), and the click types call
the field's check (`ovseg.settings.checks`), so `ovseg label --tau 3`, `Segmenter(tau=3)` and
`ovseg eval --tau 3` say the same words. Imports click and the torch-free settings only.

    option("tau")                          the field's option, as label and segment offer it
    option("tau", multiple=True, help=...) eval's sweep: the same flag, type and check
    config_options("pipeline")             every field of a group, in field order (label, segment)
    given(ctx)                             the settings set explicitly on the command line
"""
from __future__ import annotations

import difflib
from dataclasses import fields

import click
from click.core import ParameterSource

from ovseg.commands.edge import setting_error
from ovseg.settings import checks
from ovseg.settings.checks import SettingError
from ovseg.settings.config import K_HELP, SegmenterConfig  # noqa: F401  (K_HELP: the commands' --k help)
from ovseg.settings.methods import get_method, list_methods, method_help

FIELDS = {f.name: f for f in fields(SegmenterConfig) if f.init}


class SuggestingChoice(click.Choice):
    """click.Choice whose refusal also names the closest choice ("'vco' ... did you mean 'voc'?")."""

    def convert(self, value, param, ctx):
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter as err:
            close = difflib.get_close_matches(str(value).strip().lower(), [str(c) for c in self.choices],
                                              n=1, cutoff=0.6)
            if close:
                err.message = f"{err.message.rstrip('.')}; did you mean {close[0]!r}?"
            raise err


class SettingType(click.ParamType):
    """A setting's text from the command line, read as a number when the field holds one
    (`checks.from_text`), then checked and normalised by its field's check; `none`: the word that
    means None ("auto", "all")."""

    def __init__(self, setting: str, check, metavar: str, none: str | None = None, numeric: bool = False) -> None:
        self.setting, self.check, self.name, self.none, self.numeric = setting, check, metavar, none, numeric

    def convert(self, value, param, ctx):
        if value is None or self.none is not None and value == self.none:
            return None
        if self.numeric:
            value = checks.from_text(value)
        try:
            return value if self.check is None else self.check(value)
        except SettingError as err:
            self.fail(str(err), param, ctx)


class SettingChoice(SuggestingChoice):
    """The choice of a setting's words (a close one suggested); `none`: the word that means None (dtype "auto")."""

    def __init__(self, choices, none: str | None = None) -> None:
        super().__init__([none, *choices] if none else list(choices))
        self.none = none

    def convert(self, value, param, ctx):
        value = super().convert(value, param, ctx)
        return None if self.none is not None and value == self.none else value


def _value(entry):
    return entry() if callable(entry) else entry


def flag(name: str) -> str:
    """The option of setting `name`: "walk_steps" -> "--walk-steps"."""
    return "--" + (FIELDS[name].metadata.get("flag") or name).replace("_", "-")


def option(name: str, **overrides):
    """The click option of SegmenterConfig field `name` (its flag, type, default, help); overrides:
    what one command says differently (`multiple=True`, another `help`, a narrower `type`)."""
    f = FIELDS[name]
    meta, default, decl = f.metadata, f.default, flag(name)
    kw: dict = {"help": _value(meta.get("help"))}
    if isinstance(default, bool):
        decl = f"{decl}/--no-{decl[2:]}"
    elif meta.get("choices") is not None:
        kw["type"] = SettingChoice(_value(meta["choices"]), meta.get("none"))
    else:
        numeric = any(kind in str(f.type).split(" | ") for kind in ("int", "float"))  # int | None, float | str, ...
        kw["type"] = SettingType(name, meta.get("check"), meta.get("metavar") or "TEXT", meta.get("none"), numeric)
    if default is None and meta.get("none"):
        default = meta["none"]  # shown as the word: [default: auto]
    kw.update(default=default, show_default=default is not None)
    if overrides.get("multiple"):
        kw.update(default=None, show_default=False)
    kw.update(overrides)
    return click.option(decl, name, **kw)


def config_options(*groups: str) -> list:
    """The options of every field whose `cli` is one of `groups`, in field order."""
    return [option(name) for name, f in FIELDS.items() if f.metadata.get("cli") in groups]


def apply(options: list):
    """A decorator applying `options` so that --help lists them in this order."""
    def decorate(f):
        for o in reversed(options):
            f = o(f)
        return f

    return decorate


def method_option(*, needs: str | None = None, **overrides):
    """``--method``: the registry's methods (`ovseg.settings.methods`, torch-free), help from each
    method's own description; needs="features": only the methods that cut features alone."""
    names = [m for m in list_methods() if needs is None or get_method(m).needs == needs]
    return option("method", type=click.Choice(names), **{"help": method_help(names), **overrides})


def given(ctx: click.Context) -> set[str]:
    """The parameters of `ctx` set explicitly (command line or environment), not by default."""
    return {name for name in ctx.params if ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT)}


def check_method_options(ctx: click.Context, method: str, values: dict | None = None) -> None:
    """Another cut method's options given explicitly (or settings the chosen one ignores for
    these values, e.g. --tau with kway's --k 6): a usage error naming the option, before any
    model loads (the one check, `ovseg.settings.checks.check_method_settings`). values: the
    method's settings as given ({name: value}), for ``ignores``."""
    try:
        checks.check_method_settings(method, dict(values or {}), given(ctx))
    except SettingError as err:
        raise setting_error(err) from None
