"""The cut-method registry: one backbone pass -> segments, by a method chosen by name.

Torch-free (it imports nothing), so the command line builds its ``--method`` choices, help texts
and per-method option checks from it without loading torch; ``ovseg.masks`` re-exports it. The
builders are imported on first use (``CutMethod.build``).

A method is one module plus one registration (STYLE.md habit 2, timm's ``@register_model``):

    register_method("kway", build="ovseg.masks.kway:build_kway", setting="tau",
                    options=("alpha", "k"), info=("k_chosen",), description="...")

or, for a builder already imported (a plug-in), as a decorator: ``@register_method("name", ...)``.

What an entry says:
  needs     "features": the backbone's features (B, C, h, w) only; "attention": also the
            self-attention transition matrices P (B, h*w, h*w) (``capture_transitions``).
  build     build(feats, transitions, *, top=None, **options) -> a list of B recut-able
            objects, one per image, built from the whole batch (a method may batch on the device).
            ``top``: the largest setting later cuts will ask for (the demo slider's top, the
            evaluation's largest tau); None: only the configured one.
  setting   the SegmenterConfig field a cut reads ("tau"): the demo's slider, the evaluation's sweep.
  options   the other SegmenterConfig fields ``build`` takes as keywords (recorded with outputs,
            in the cache key and the evaluation's settings; refused when given for another method).
  info      the keys a cut may add to an output's settings ("tau_chosen", "k_chosen").
  description  one line for ``--method``'s help.
  slider    the demo slider's label (what moving ``setting`` does).
  ignores   ignores(values) -> {field: reason}: fields this method's cut does not read for these
            values of its settings (kway with a fixed k ignores tau); given explicitly on the
            command line they are usage errors, and the demo's slider is frozen.

A recut-able object has ``cut(value) -> (segments (h, w) int64 ids 0..K-1, info dict)``,
``leaves(value)`` (a hashable identity of that cut), ``num_segments(value) -> int`` and
``num_cuts() -> int`` (the distinct cuts up to ``top``: the demo shows it); cutting it again at
another value (up to ``top``) recomputes nothing expensive.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

__all__ = ["CutMethod", "K_RULES", "get_method", "list_methods", "method_help", "register_method"]

_METHODS: dict[str, "CutMethod"] = {}

K_RULES = ("auto", "eigengap", "tree")  # kway's K rules besides a number (ovseg/masks/kway.py)


def _no_ignores(values: dict) -> dict:
    return {}


@dataclass(frozen=True)
class CutMethod:
    """A registered cut method (see the module docstring for each field)."""

    name: str
    target: Callable[..., list] | str  # the builder, or "module:function" imported on first use
    needs: str = "features"  # "features" | "attention"
    setting: str = "tau"
    options: tuple[str, ...] = ()
    info: tuple[str, ...] = ()
    description: str = ""
    slider: str = "tau: NCut threshold (lower: fewer, larger segments)"
    ignores: Callable[[dict], dict] = _no_ignores

    @property
    def build(self) -> Callable[..., list]:
        """The builder (imported now when registered by its "module:function" path)."""
        if callable(self.target):
            return self.target
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)

    @property
    def settings(self) -> tuple[str, ...]:
        """Every SegmenterConfig field this method reads: its options, then its setting (and the
        attention layers when it needs attention)."""
        extra = ("attention_layers",) if self.needs == "attention" else ()
        return (*self.options, self.setting, *extra)


def register_method(name: str, *, build: Callable | str | None = None, needs: str = "features",
                    setting: str = "tau", options: tuple[str, ...] = (), info: tuple[str, ...] = (),
                    description: str = "", slider: str | None = None,
                    ignores: Callable[[dict], dict] | None = None):
    """Register the cut method ``name`` (see the module docstring). With ``build`` (a callable or
    "module:function") -> the CutMethod; without it, a decorator on the builder."""
    if needs not in ("features", "attention"):
        raise ValueError(f"needs must be 'features' or 'attention', got {needs!r}")

    def register(target):
        if name in _METHODS:
            raise ValueError(f"cut method {name!r} is already registered")
        extra = {"slider": slider} if slider else {}
        _METHODS[name] = CutMethod(name, target, needs, setting, tuple(options), tuple(info), description,
                                   ignores=ignores or _no_ignores, **extra)
        return target

    if build is not None:
        register(build)
        return _METHODS[name]
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


def method_help(names=None) -> str:
    """``--method``'s help: each method's own description (of `names`, default all), from the registry."""
    names = list(_METHODS) if names is None else list(names)
    return "; ".join(f"{m}: {_METHODS[m].description}" for m in names if _METHODS[m].description) + "."


def _kway_ignores(values: dict) -> dict:
    k = values.get("k", "auto")
    tau = values.get("tau")
    taus = tau if isinstance(tau, (list, tuple)) else [tau]
    if k not in ("auto", "tree"):
        return {"tau": f"k={k} fixes K, so tau (the merge threshold of k=auto, the recursive cut's of "
                       "k=tree) plays no part"}
    if "auto" in taus:  # DiffCut's per-image threshold search has no K-way counterpart
        return {"tau": "kway has no automatic tau: k=auto already chooses K by merging at tau; give a number"}
    return {}


# The built-in methods (their builders live in ovseg/masks/; METHOD.md sections 2-5 and 9)
register_method("diffcut", build="ovseg.masks.diffcut:build_diffcut", options=("alpha",), info=("tau_chosen",),
                description="recursive two-way NCut of the feature affinity (the paper)")
register_method("random-walk", build="ovseg.masks.random_walk:build_random_walk", needs="attention",
                options=("walk_steps",), info=("tau_chosen",),
                description="NCut of a walk on the backbone's self-attention (docs/random-walk.md)")
register_method("kway", build="ovseg.masks.kway:build_kway", options=("alpha", "k"), info=("k_chosen",),
                description="discrete K-way NCut of the feature affinity, K fixed (--k N) or merged at tau "
                            "(--k auto; docs/kway.md)",
                slider="tau: merge threshold of the K-way cut (lower: fewer, larger segments)",
                ignores=_kway_ignores)
