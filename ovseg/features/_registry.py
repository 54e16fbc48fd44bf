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

ENTRY_POINT_GROUP = "ovseg.backbones"


@dataclass(frozen=True)
class BackboneInfo:
    name: str
    repo_id: str               # official Hugging Face repo id (or the plugin's entry point)
    download_size: str         # approximate size of the files ovseg actually downloads
    resolution: int | None     # preferred square input size in pixels
    stride: int | None         # input pixels per feature cell
    feature_dim: int | None    # C of the (B, C, h, w) features
    description: str = ""


_REGISTRY: dict[str, tuple[Callable[..., Any], BackboneInfo]] = {}
_plugins_loaded = False


def register_backbone(name: str, **info: Any) -> Callable:
    """Decorator: register `builder(*, weights, device, dtype, **options) -> Backbone` as `name`."""

    def decorate(builder: Callable) -> Callable:
        if name in _REGISTRY:
            raise ValueError(f"A backbone named {name!r} is already registered.")
        _REGISTRY[name] = (builder, BackboneInfo(name=name, **info))
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


def create_backbone(name: str, *, weights=None, device=None, dtype=None, **options):
    """Build the backbone `name`; options set to None are dropped, so the builder defaults win.

    weights: None (the official repo id), another Hugging Face repo id, or a local directory.
    device: default "cuda" when available, else "cpu". dtype: default float16 on CUDA, float32
    on CPU.
    """
    builder, _ = _lookup(name)
    kwargs = dict(weights=weights, device=device, dtype=dtype, **options)
    return builder(**{k: v for k, v in kwargs.items() if v is not None})
