"""What the settings checks need to know of backbones and cut methods, without importing torch.

`import torch` takes 2-7 s on a 2-core machine, longer than a usage error should: with this
table `ovseg eval --backbone nope`, `--resolution 33` or `--method random-walk --backbone
efficientnet-lite0` are refused at once (`SegmenterConfig`'s checks), before torch or any model.

    backbone_names()          built-ins, third-party entry points (by name: none is imported) and
                              what was registered in this process, when the registry is loaded
    backbone_facts(name)      BackboneFacts: resolution, stride, attention, alpha, tau (the cut's
                              defaults, `ovseg.settings.defaults.BACKBONE_CUT`) and their source;
                              ValueError naming the valid backbones for an unknown name
    attention_layers(name)    the self-attention layers a backbone records, in pass order (names
                              of the official architecture, read from its shipped JSON), or None
    attention_backbones()     those known to give self-attention maps (the random-walk method's)
    load_config(name)         the architecture shipped for a built-in (ovseg/features/configs/)

The backbone registry (`ovseg.features._registry`) stays the truth: a built-in registered with
other facts than these raises at import (`check_registered`), and
tests/settings/test_catalog.py compares both ways.
"""
from __future__ import annotations

import functools
import importlib.metadata
import json
import sys
from importlib import resources
from typing import NamedTuple

from ovseg.settings import defaults as _defaults
from ovseg.settings import methods as _methods

ENTRY_POINT_GROUP = "ovseg.backbones"  # third-party backbones (`ovseg.features._registry`)


class BackboneFacts(NamedTuple):
    resolution: int | None  # preferred square input, pixels
    stride: int | None  # input pixels per feature cell
    attention: bool | None  # gives self-attention maps (random-walk needs them); None: unknown
    alpha: float | str = _defaults.BACKBONE_CUT_FALLBACK[0]  # the cut's defaults on this backbone
    tau: float = _defaults.BACKBONE_CUT_FALLBACK[1]  # (`defaults.BACKBONE_CUT`; "auto": the calibrated rule)
    min_area: float = _defaults.BACKBONE_CUT_FALLBACK[2]
    defaults_from: str = _defaults.BACKBONE_CUT_FALLBACK[3]


def _facts(resolution: int, stride: int, attention: bool, name: str) -> BackboneFacts:
    return BackboneFacts(resolution, stride, attention, *_defaults.BACKBONE_CUT.get(name, _defaults.BACKBONE_CUT_FALLBACK))


_TABLE = {  # name: (resolution, stride, gives self-attention maps)
    "clip-b16": (224, 16, True),
    "dinov2-s": (518, 14, True),
    "dinov2-b": (518, 14, True),
    "dinov2-l": (518, 14, True),
    "dinov2-g": (518, 14, True),
    "efficientnet-lite0": (448, 16, False),
    "efficientnet-lite1": (448, 16, False),
    "efficientnet-lite2": (448, 16, False),
    "sd14": (512, 32, True),
    "sd15": (512, 32, True),
    "sdxl": (1024, 32, True),
    "siglip-b16": (224, 16, True),
    "ssd-1b": (1024, 32, True),
    "vega": (1024, 32, True),
}
BACKBONES = {name: _facts(*row, name) for name, row in _TABLE.items()}


def load_config(name: str) -> dict:
    """The architecture shipped with ovseg for backbone `name` (ovseg/features/configs/NAME.json)."""
    return json.loads(resources.files("ovseg").joinpath("features", "configs", f"{name}.json").read_text())


def encoder_attention_names(unet_config: dict) -> tuple[str, ...]:
    """Names of every encoder self-attention (attn1), in pass order, from a UNet's config alone
    (no weights): the layers a pass up to `last_encoder_attention` runs through."""
    depth = unet_config.get("transformer_layers_per_block", 1)
    names = []
    for i, kind in enumerate(unet_config["down_block_types"]):
        if "CrossAttn" in kind:
            blocks = depth[i] if isinstance(depth, (list, tuple)) else depth
            names += [f"down_blocks.{i}.attentions.{a}.transformer_blocks.{t}.attn1"
                      for a in range(unet_config.get("layers_per_block", 2)) for t in range(int(blocks))]
    return tuple(names)


@functools.cache
def _shipped_layers(name: str) -> tuple[str, ...] | None:
    if not BACKBONES[name].attention:
        return None
    config = load_config(name)
    if "unet" in config:
        return encoder_attention_names(config["unet"])
    return tuple(f"layer.{i}" for i in range(config["vision"]["num_hidden_layers"]))


def _live(module: str, attr: str) -> dict:
    """A registry's dict when its module is loaded (what this process registered), else {}."""
    loaded = sys.modules.get(module)
    return getattr(loaded, attr, {}) if loaded is not None else {}


def _registered() -> dict:
    return _live("ovseg.features._registry", "_REGISTRY")


def plugin_backbones() -> list[str]:
    """Names third-party packages declare in the entry-point group; none is imported."""
    return sorted({ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)})


def backbone_names() -> list[str]:
    """Every backbone name `create_backbone` takes, sorted."""
    return sorted(set(BACKBONES) | set(plugin_backbones()) | set(_registered()))


def _alpha(alpha):
    return alpha if alpha == _defaults.AUTO else float(alpha)


def backbone_facts(name: str) -> BackboneFacts:
    """The facts of `name` (resolution, stride and attention None for a plugin not loaded yet;
    its cut defaults DiffCut's); ValueError naming the valid backbones for an unknown name (the
    registry's message)."""
    live = _registered()
    if isinstance(name, str) and name in live:
        info = live[name][1]
        return BackboneFacts(info.resolution, info.stride, info.attention_layers is not None,
                             _alpha(info.alpha), float(info.tau), float(info.min_area), info.defaults_from)
    if name in BACKBONES:
        return BACKBONES[name]
    if isinstance(name, str) and name in plugin_backbones():
        return BackboneFacts(None, None, None)
    raise ValueError(f"Unknown backbone {name!r}. Valid backbones: {', '.join(backbone_names())}.")


def attention_layers(name: str) -> tuple[str, ...] | None:
    """The self-attention layers backbone `name` records, in pass order; None: it gives none
    (or it is a plugin not loaded yet, `backbone_facts(name).attention` None)."""
    live = _registered()
    if name in live:
        return live[name][1].attention_layers
    if name in BACKBONES:
        return _shipped_layers(name)
    backbone_facts(name)  # an unknown name: ValueError
    return None


def attention_backbones() -> list[str]:
    """The backbones known to give self-attention maps, sorted."""
    return [n for n in backbone_names() if backbone_facts(n).attention]


def method_names() -> list[str]:
    """The cut methods' names (the registry, `ovseg.settings.methods`, is torch-free itself)."""
    return _methods.list_methods()


def method_needs(name: str) -> str | None:
    """"features" or "attention"; None for a name the registry does not know."""
    return _methods.get_method(name).needs if name in _methods.list_methods() else None


def check_registered(info) -> None:
    """Called by `register_backbone`: a built-in registered with other facts than the table's is
    a bug here, raised at import rather than a check that passes what the model refuses."""
    want = BACKBONES.get(info.name)
    got = BackboneFacts(info.resolution, info.stride, info.attention_layers is not None,
                        info.alpha, info.tau, info.min_area, info.defaults_from)
    if want is not None and want != got:
        raise RuntimeError(f"ovseg.settings.catalog.BACKBONES[{info.name!r}] is {want}, but the backbone "
                           f"registers {got}: update the table")
