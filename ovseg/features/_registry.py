"""The backbone registry: a dict filled by a decorator, plus third-party entry points.

A third-party package adds a backbone without touching ovseg by declaring, in its pyproject.toml,

    [project.entry-points."ovseg.backbones"]
    my-backbone = "my_pkg.module:build_my_backbone"

where the builder takes the keyword arguments of :func:`create_backbone`. Entry points are read
once, on the first registry lookup.
"""
from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from typing import Any, Callable

from ovseg.io.quiet import quiet_loading  # no accelerate advice, no "Loading weights" bars
from ovseg.settings import catalog as _catalog
from ovseg.settings import checks as _checks
from ovseg.settings.checks import check_resolution
from ovseg.settings import defaults as _defaults
from ovseg.settings.catalog import ENTRY_POINT_GROUP  # noqa: F401  (the names, torch-free: ovseg.settings.catalog)


@dataclass(frozen=True)
class BackboneInfo:
    name: str
    repo_id: str               # official Hugging Face repo id (or the plugin's entry point)
    download_size: str         # approximate size of the files ovseg actually downloads
    resolution: int | None     # preferred square input size in pixels
    stride: int | None         # input pixels per feature cell
    feature_dim: int | None    # C of the (B, C, h, w) features
    description: str = ""
    # self-attention maps `extract(..., attention_layers=)` can record, in pass order (names of the
    # official architecture); None: this backbone gives no attention maps (no random-walk method)
    attention_layers: tuple[str, ...] | None = None
    # the cut's defaults for this backbone (used when the user sets none; docs/benchmarks-real.md):
    # a built-in's are `ovseg.settings.defaults.BACKBONE_CUT`'s, the calibrated rule (alpha "auto",
    # METHOD.md 10) for a backbone without a published recipe; `defaults_from` says where they come from
    alpha: float | str = _defaults.BACKBONE_CUT_FALLBACK[0]
    tau: float = _defaults.BACKBONE_CUT_FALLBACK[1]
    min_area: float = _defaults.BACKBONE_CUT_FALLBACK[2]  # fraction of the image (ovseg.masks.min_area)
    defaults_from: str = _defaults.BACKBONE_CUT_FALLBACK[3]
    # what the features get before the cut (ovseg.features.conditioning): "raw" = as the model gives them
    conditioning: str = "raw"
    # the globs a first run downloads from repo_id (docs/weights.md), for the offline message's
    # `hf download` command; None: the whole repository (or not a hub repository)
    download_files: tuple[str, ...] | None = None


_REGISTRY: dict[str, tuple[Callable[..., Any], BackboneInfo]] = {}
_plugins_loaded = False


def register_backbone(name: str, **info: Any) -> Callable:
    """Decorator: register `builder(*, weights, device, dtype, **options) -> Backbone` as `name`."""

    def decorate(builder: Callable) -> Callable:
        if name in _REGISTRY:
            raise ValueError(f"A backbone named {name!r} is already registered.")
        known = _catalog.BACKBONES.get(name)  # a built-in: its cut defaults are the catalog's
        cut = {} if known is None else dict(alpha=known.alpha, tau=known.tau, min_area=known.min_area,
                                            defaults_from=known.defaults_from)
        entry = BackboneInfo(name=name, **{**cut, **info})
        _catalog.check_registered(entry)  # the torch-free table the settings checks read
        _REGISTRY[name] = (builder, entry)
        return builder

    return decorate


def _load_plugins() -> None:
    """Register the builders third-party packages declare in the `ovseg.backbones` group."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _REGISTRY:
            continue  # built-ins win; a plugin cannot silently replace one

        def builder(*args, _ep=ep, **kwargs):
            return _ep.load()(*args, **kwargs)

        info = BackboneInfo(ep.name, ep.value, "unknown", None, None, None, f"plugin ({ep.value})")
        _REGISTRY[ep.name] = (builder, info)


def _lookup(name: str) -> tuple[Callable[..., Any], BackboneInfo]:
    _load_plugins()
    if name not in _REGISTRY:
        raise ValueError(f"Unknown backbone {name!r}. Valid backbones: {', '.join(list_backbones())}.")
    return _REGISTRY[name]


def list_backbones() -> list[str]:
    """Names of every registered backbone (built-ins and plugins), sorted."""
    _load_plugins()
    return sorted(_REGISTRY)


def backbone_info(name: str) -> BackboneInfo:
    """Repo id, download size, resolution, stride, feature dim and description of `name`."""
    return _lookup(name)[1]


def attention_backbones() -> list[str]:
    """Names of the registered backbones that can give self-attention maps, sorted."""
    return [n for n in list_backbones() if backbone_info(n).attention_layers is not None]


def check_attention_layers(name: str, layers=None) -> tuple[int | str, ...] | None:
    """Validate attention layers for backbone `name` before any model loads: None (every layer the
    backbone records: the default recipe), or indices into ``backbone_info(name).attention_layers``
    (negative allowed) and/or their names. Returns the layers as a tuple, or None. Raises
    ValueError (a SettingError): the one check, `ovseg.settings.checks.check_attention_layers`."""
    _lookup(name)  # an unknown name: the registry's message
    return _checks.check_attention_layers(name, layers)


def create_backbone(name: str, *, weights=None, device=None, dtype=None, **options):
    """Build the backbone `name`; options set to None are dropped, so the builder defaults win.

    weights: None (the official repo id), another Hugging Face repo id, or a local directory.
    device: default "cuda" when available, else "cpu". dtype: default float16 on CUDA, float32
    on CPU. resolution (an option): the preferred square input, a multiple of the backbone's stride
    (`ovseg.settings.checks.check_resolution`: SettingError, the message `ovseg label` gives).
    """
    builder, info = _lookup(name)
    if options.get("resolution") is not None:
        options["resolution"] = check_resolution(options["resolution"], name, stride=info.stride)
    kwargs = dict(weights=weights, device=device, dtype=dtype, **options)
    with quiet_loading():
        return builder(**{k: v for k, v in kwargs.items() if v is not None})
