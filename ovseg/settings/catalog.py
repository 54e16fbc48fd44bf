"""What the settings checks need to know of backbones and cut methods, without importing torch.

`import torch` takes 2-7 s on a 2-core machine, longer than a usage error should: with this
table `ovseg eval --backbone nope`, `--resolution 33` or `--method random-walk --backbone
efficientnet-lite0` are refused at once (`ovseg.commands.edge.precheck`), before torch or any model.

    backbone_names()      built-ins, third-party entry points (by name: none is imported) and
                          what was registered in this process, when the registry is loaded
    backbone_facts(name)  (resolution, stride, attention) of a backbone; ValueError: unknown
    attention_backbones() those known to give self-attention maps (the random-walk method's)
    method_names()        the cut methods (read from `ovseg.settings.methods`, torch-free itself)

The backbone registry (`ovseg.features._registry`) stays the truth: a built-in
backbone registered with other facts than these raises at import (`check_registered`), and
tests/commands/test_new_user.py::test_the_catalogue_matches_the_registries compares both ways.
"""
from __future__ import annotations

import importlib.metadata
import sys
from typing import NamedTuple

ENTRY_POINT_GROUP = "ovseg.backbones"  # third-party backbones (`ovseg.features._registry`)


class BackboneFacts(NamedTuple):
    resolution: int | None  # preferred square input, pixels
    stride: int | None  # input pixels per feature cell
    attention: bool | None  # gives self-attention maps (random-walk needs them); None: unknown


BACKBONES = {
    "clip-b16": BackboneFacts(224, 16, True),
    "dinov2-s": BackboneFacts(518, 14, True),
    "dinov2-b": BackboneFacts(518, 14, True),
    "dinov2-l": BackboneFacts(518, 14, True),
    "dinov2-g": BackboneFacts(518, 14, True),
    "efficientnet-lite0": BackboneFacts(448, 16, False),
    "efficientnet-lite1": BackboneFacts(448, 16, False),
    "efficientnet-lite2": BackboneFacts(448, 16, False),
    "sd14": BackboneFacts(512, 32, True),
    "sd15": BackboneFacts(512, 32, True),
    "sdxl": BackboneFacts(1024, 32, True),
    "siglip-b16": BackboneFacts(224, 16, True),
    "ssd-1b": BackboneFacts(1024, 32, True),
    "vega": BackboneFacts(1024, 32, True),
}



def _live(module: str, attr: str) -> dict:
    """A registry's dict when its module is loaded (what this process registered), else {}."""
    loaded = sys.modules.get(module)
    return getattr(loaded, attr, {}) if loaded is not None else {}


def plugin_backbones() -> list[str]:
    """Names third-party packages declare in the entry-point group; none is imported."""
    return sorted({ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)})


def backbone_names() -> list[str]:
    """Every backbone name `create_backbone` takes, sorted."""
    return sorted(set(BACKBONES) | set(plugin_backbones()) | set(_live("ovseg.features._registry", "_REGISTRY")))


def backbone_facts(name: str) -> BackboneFacts:
    """The facts of `name` (all None for a plugin not loaded yet); ValueError naming the valid
    backbones for an unknown name (the registry's message)."""
    live = _live("ovseg.features._registry", "_REGISTRY")
    if name in live:
        info = live[name][1]
        return BackboneFacts(info.resolution, info.stride, info.attention_layers is not None)
    if name in BACKBONES:
        return BACKBONES[name]
    if isinstance(name, str) and name in plugin_backbones():
        return BackboneFacts(None, None, None)
    raise ValueError(f"Unknown backbone {name!r}. Valid backbones: {', '.join(backbone_names())}.")


def attention_backbones() -> list[str]:
    """The backbones known to give self-attention maps, sorted."""
    return [n for n in backbone_names() if backbone_facts(n).attention]


def method_names() -> list[str]:
    """The cut methods' names (the registry, `ovseg.settings.methods`, is torch-free itself)."""
    from ovseg.settings.methods import list_methods

    return list_methods()


def method_needs(name: str) -> str | None:
    """"features" or "attention"; None for a name the registry does not know."""
    from ovseg.settings.methods import _METHODS

    return _METHODS[name].needs if name in _METHODS else None


def check_registered(info) -> None:
    """Called by `register_backbone`: a built-in registered with other facts than the table's is
    a bug here, raised at import rather than a check that passes what the model refuses."""
    want = BACKBONES.get(info.name)
    got = BackboneFacts(info.resolution, info.stride, info.attention_layers is not None)
    if want is not None and want != got:
        raise RuntimeError(f"ovseg.settings.catalog.BACKBONES[{info.name!r}] is {want}, but the backbone "
                           f"registers {got}: update the table")
