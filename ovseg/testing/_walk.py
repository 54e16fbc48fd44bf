"""A plug-in backbone with a planted answer, for the random-walk method and the cut registry.

    with register_planted_walk() as (built, calls):   # "planted-walk" and "no-attention" registered
        seg = ovseg.Segmenter(backbone="planted-walk", method="random-walk", tau="auto")
        seg.segment(quadrants(64, 64, noise=0))        # -> {TL, BR} and {TR, BL}

The image is four flat quadrants (`quadrants`); the features are the one-hot quadrant colour
(DiffCut finds four segments), and the attention maps, at two resolutions, are block chains
pairing the *diagonal* quadrants (a walk from top-left stays in top-left or bottom-right with
probability 0.9). Only a cut of that attention gives the two non-contiguous regions, so
recovering them exactly shows the attention went through every stage.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np
import torch

from ovseg.features import BackboneOutput, _registry, register_backbone

QUADRANT_COLOURS = ((220, 40, 40), (40, 40, 220), (40, 200, 40), (230, 230, 230))  # TL, TR, BL, BR
WALK_PAIRS = np.array([0, 1, 1, 0])  # colour -> planted walk block: TL with BR, TR with BL
WALK_LAYERS = ("walk.16", "walk.8")


def quadrants(h: int = 40, w: int = 56, seed: int = 0, noise: int = 8) -> np.ndarray:
    """Four flat quadrants (`QUADRANT_COLOURS`) with uniform noise in [-noise, noise]:
    (h, w, 3) uint8, something to cut with a known answer (four segments)."""
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 2, : w // 2], img[: h // 2, w // 2 :], img[h // 2 :, : w // 2], img[h // 2 :, w // 2 :] = QUADRANT_COLOURS
    if noise:
        img = np.clip(img.astype(int) + np.random.default_rng(seed).integers(-noise, noise + 1, img.shape), 0, 255)
    return img.astype(np.uint8)


def planted_pairs(side: int = 64) -> np.ndarray:
    """The planted partition of `quadrants(side, side)`: 0 on TL and BR, 1 on TR and BL, (side, side) int64."""
    h = side // 2
    out = np.ones((side, side), np.int64)
    out[:h, :h] = out[h:, h:] = 0
    return out


class PlantedWalk(torch.nn.Module):
    """Features: one-hot colour per 8 px cell. Attention: block chains over the diagonal pairs."""

    name, stride, resolution, feature_dim = "planted-walk", 8, 64, 4
    attention_layer_names = list(WALK_LAYERS)

    def __init__(self, calls: list, leak: float = 0.1):
        super().__init__()
        self.calls, self.leak = calls, leak
        self.dummy = torch.nn.Parameter(torch.zeros(1))  # gives the module a device

    @property
    def device(self):
        return self.dummy.device

    def _colours(self, images: torch.Tensor, grid: int) -> torch.Tensor:
        cells = torch.nn.functional.adaptive_avg_pool2d(images * 255, grid)  # (B, 3, g, g)
        pal = torch.tensor(QUADRANT_COLOURS, dtype=torch.float32)
        d = ((cells.permute(0, 2, 3, 1)[..., None, :] - pal) ** 2).sum(-1)  # (B, g, g, 4)
        return d.argmin(-1).flatten(1)  # (B, g*g) colour index per cell

    def _walk(self, colours: torch.Tensor) -> torch.Tensor:
        block = torch.as_tensor(WALK_PAIRS)[colours]  # (B, N)
        same = (block[:, :, None] == block[:, None, :]).float()
        P = (1 - self.leak) * same / same.sum(-1, keepdim=True)
        return P + self.leak * (1 - same) / (1 - same).sum(-1, keepdim=True).clamp_min(1)

    def forward(self, images):
        return self.extract(images).features

    def extract(self, images, *, attention_layers=None):
        self.calls.append(list(attention_layers or []))
        grid = images.shape[-1] // self.stride
        colours = self._colours(images, grid)
        feats = torch.nn.functional.one_hot(colours, 4).float().transpose(1, 2)
        feats = feats.reshape(images.shape[0], 4, grid, grid)
        maps = {}
        for layer in attention_layers or []:
            name = WALK_LAYERS[layer] if isinstance(layer, int) else layer
            maps[name] = self._walk(self._colours(images, int(name.split(".")[1]) * grid // 8))
        return BackboneOutput(feats, maps)


@contextlib.contextmanager
def register_planted_walk() -> Iterator[tuple[list, list]]:
    """Register "planted-walk" (and "no-attention", which has no attention maps) for the block;
    yield (the build calls' keyword arguments, the extract calls' layers); unregister after."""
    built, calls = [], []

    def build(**kw):
        built.append(kw)
        return PlantedWalk(calls)

    register_backbone("planted-walk", repo_id="test", download_size="0", resolution=64, stride=8,
                      feature_dim=4, attention_layers=WALK_LAYERS)(build)
    register_backbone("no-attention", repo_id="test", download_size="0", resolution=64, stride=8,
                      feature_dim=4)(build)
    try:
        yield built, calls
    finally:
        _registry._REGISTRY.pop("planted-walk", None)
        _registry._REGISTRY.pop("no-attention", None)
