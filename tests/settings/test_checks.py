"""One check per setting (ovseg/settings/checks.py): what each accepts, how it normalises, what it
says; torch-free."""
import math

import pytest

from ovseg.settings import checks
from ovseg.settings.checks import SettingError


def _refused(fn, *args, setting=None, match=None):
    with pytest.raises(SettingError, match=match) as err:
        fn(*args)
    if setting is not None:
        assert err.value.setting == setting
    return str(err.value)


def test_resolution_suggests_the_nearest_multiple():
    assert checks.check_resolution(1024, "ssd-1b") == 1024 and checks.check_resolution(None, "ssd-1b") is None
    assert _refused(checks.check_resolution, 1010, "ssd-1b").endswith("stride 32; try 1024")  # not 992
    assert _refused(checks.check_resolution, 1000, "ssd-1b").endswith("try 992")
    assert _refused(checks.check_resolution, 33, "ssd-1b").endswith("try 32")
    assert "at least" not in _refused(checks.check_resolution, 31, setting="resolution")  # >= 32, one wording
    several = _refused(checks.check_resolution, 64, ["ssd-1b", "dinov2-b"])
    assert "every backbone's stride (ssd-1b: 32, dinov2-b: 14)" in several and several.endswith("try 224")
    assert checks.check_resolution(100, "ssd-1b", stride=20) == 100  # a built backbone's own stride wins
    for bad in ("64", 64.5, True):
        _refused(checks.check_resolution, bad, setting="resolution")


def test_numbers_are_numbers_not_text():
    assert checks.check_alpha(4) == 4.0 and checks.check_alpha(None) is None
    assert checks.check_tau("auto") == "auto" and checks.check_tau(0) == 0.0 and checks.check_tau(2) == 2.0
    assert checks.check_k(4) == 4 and checks.check_k(4.0) == 4 and checks.check_k("tree") == "tree"
    for fn, bad in [(checks.check_alpha, "10"), (checks.check_alpha, math.inf), (checks.check_alpha, 0),
                    (checks.check_tau, "0.5"), (checks.check_tau, 2.5), (checks.check_tau, math.nan),
                    (checks.check_k, "3"), (checks.check_k, True), (checks.check_k, 2.5), (checks.check_k, 0)]:
        _refused(fn, bad)
    assert checks.from_text("4") == 4 and checks.from_text("0.4") == 0.4 and checks.from_text(" auto ") == "auto"
    assert math.isnan(checks.from_text("nan"))


def test_attention_layers_from_the_catalog_without_torch():
    assert checks.check_attention_layers("dinov2-s", None) is None
    assert checks.check_attention_layers("dinov2-s", "0,-1,layer.3") == (0, -1, "layer.3")
    assert _refused(checks.check_attention_layers, "dinov2-s", (12,), setting="attention_layers").startswith(
        "attention layer 12 out of range: dinov2-s records 12 layers")
    _refused(checks.check_attention_layers, "dinov2-s", ("layer.99",), setting="attention_layers")
    _refused(checks.check_attention_layers, "dinov2-s", "0,,1", setting="attention_layers")
    assert "backbones that do" in _refused(checks.check_attention_layers, "efficientnet-lite0", None, setting="method")


def test_another_methods_settings_and_ignored_ones():
    checks.check_method_settings("diffcut", {}, given=["alpha", "tau"])
    assert _refused(checks.check_method_settings, "diffcut", {}, ["k"], setting="k") == "k applies to method kway only"
    assert _refused(checks.check_method_settings, "kway", {}, ["walk_steps"]) == \
        "walk_steps applies to method random-walk only"
    assert _refused(checks.check_method_settings, "kway", {"k": 4, "tau": 0.3}, ["tau"]).startswith("tau: k=4 fixes K")
    checks.check_method_settings("kway", {"k": 4, "tau": 0.3}, ["tau"], ignored=False)  # the API: lies unused


def test_the_vocabulary_rule_is_one():
    assert checks.automatic_names(None, None) and checks.automatic_names(None, "auto")
    assert not checks.automatic_names("cat", None) and not checks.automatic_names(None, "voc")
    assert checks.check_names(None, None, given=["max_classes"])
    assert _refused(checks.check_names, "cat", None, ["bank"], setting="bank").startswith("bank applies to automatic")
    _refused(checks.check_names, "cat", "voc", setting="classes")
    _refused(checks.check_names, " , ", None, setting="classes")


def test_cache_size(monkeypatch):
    monkeypatch.setenv("OVSEG_CACHE_SIZE", "2G")
    assert checks.check_cache_size() == 2 * 2**30
    for bad in ("banana", "-5", "inf"):
        monkeypatch.setenv("OVSEG_CACHE_SIZE", bad)
        _refused(checks.check_cache_size, setting="OVSEG_CACHE_SIZE")
