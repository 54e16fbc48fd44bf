"""Click parameter types shared by `ovseg label/segment` and `ovseg eval` (click only: --help stays quick)."""
from __future__ import annotations

import click


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
