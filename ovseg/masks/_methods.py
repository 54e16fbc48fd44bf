"""The cut-method registry: one backbone pass -> segments, by a method chosen by name.

A method is one module plus one registration (STYLE.md habit 2, timm's ``@register_model``):

    @register_method("kway", needs="features", setting="k", options=("alpha",), info=("k_chosen",))
    def build_kway(feats, transitions, *, top=None, alpha=ALPHA):
        ...  # -> one recut-able object per image

What an entry says:
  needs     "features": the backbone's features (B, C, h, w) only; "attention": also the
            self-attention transition matrices P (B, h*w, h*w) (``capture_transitions``).
  build     build(feats, transitions, *, top=None, **options) -> a list of B recut-able
            objects, one per image, built from the whole batch (a method may batch on the device).
            ``top``: the largest setting later cuts will ask for (the demo slider's top, the
            evaluation's largest tau); None: only the configured one.
  setting   the SegmenterConfig field a cut reads ("tau"; "k" for a K-way cut): the demo's slider.
  options   the other SegmenterConfig fields ``build`` takes as keywords (recorded with outputs).
  info      the keys a cut may add to an output's settings ("tau_chosen", "k_chosen").

A recut-able object has ``cut(value) -> (segments (h, w) int64 ids 0..K-1, info dict)``,
``leaves(value)`` (a hashable identity of that cut), ``num_segments(value) -> int`` and
``num_cuts() -> int`` (the distinct cuts up to ``top``: the demo shows it); cutting it again at
another value (up to ``top``) recomputes nothing expensive.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

__all__ = ["CutMethod", "get_method", "list_methods", "register_method"]

_METHODS: dict[str, "CutMethod"] = {}


@dataclass(frozen=True)
class CutMethod:
    """A registered cut method (see the module docstring for each field)."""

    name: str
    build: Callable[..., list]
    needs: str = "features"  # "features" | "attention"
    setting: str = "tau"
    options: tuple[str, ...] = ()
    info: tuple[str, ...] = ()

    @property
    def settings(self) -> tuple[str, ...]:
        """Every SegmenterConfig field this method reads: its options, then its setting (and the
        attention layers when it needs attention)."""
        extra = ("attention_layers",) if self.needs == "attention" else ()
        return (*self.options, self.setting, *extra)


def register_method(name: str, *, needs: str = "features", setting: str = "tau",
                    options: tuple[str, ...] = (), info: tuple[str, ...] = ()) -> Callable:
    """Decorator: register ``build`` (see the module docstring) as the cut method ``name``."""
    if needs not in ("features", "attention"):
        raise ValueError(f"needs must be 'features' or 'attention', got {needs!r}")

    def register(build: Callable) -> Callable:
        if name in _METHODS:
            raise ValueError(f"cut method {name!r} is already registered")
        _METHODS[name] = CutMethod(name, build, needs, setting, tuple(options), tuple(info))
        return build

    return register


def get_method(name: str) -> CutMethod:
    """The registered method ``name``; an unknown name raises ValueError listing the valid ones."""
    try:
        return _METHODS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown cut method {name!r}; choose one of {', '.join(list_methods())}") from None


def list_methods() -> list[str]:
    """Names of the registered cut methods, in registration order."""
    return list(_METHODS)
