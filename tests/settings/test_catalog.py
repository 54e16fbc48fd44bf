"""The torch-free backbone catalog (ovseg/settings/catalog.py) says what the registries hold, and
knows third-party backbones by name without importing them."""
import sys

import pytest


def test_the_catalogue_matches_the_registries():
    """ovseg.settings.catalog (what the torch-free checks read) says what the registries hold."""
    from ovseg.settings import catalog as _catalog
    from ovseg.features import BackboneInfo, _registry, backbone_info
    from ovseg.settings import methods as _methods

    def module(fn):
        return getattr(fn, "func", fn).__module__

    builtin = {n for n, (builder, _) in _registry._REGISTRY.items() if module(builder).startswith("ovseg.")}
    assert builtin == set(_catalog.BACKBONES), "add the backbone to ovseg.settings.catalog.BACKBONES"
    for name in builtin:
        info = backbone_info(name)
        assert _catalog.backbone_facts(name) == (info.resolution, info.stride, info.attention_layers is not None,
                                                 info.alpha, info.tau, info.min_area, info.defaults_from)
        assert _catalog.attention_layers(name) == info.attention_layers  # read from the shipped JSON
    # the methods: the torch-free registry itself (ovseg.settings.methods) answers, no copy to keep in step
    assert _catalog.method_names() == _methods.list_methods()
    assert {n: _catalog.method_needs(n) for n in _methods.list_methods()} == {
        n: _methods.get_method(n).needs for n in _methods.list_methods()}
    assert _catalog.method_needs("random-walk") == "attention" and _catalog.method_needs("nope") is None
    assert set(_catalog.backbone_names()) >= builtin
    with pytest.raises(RuntimeError, match="update the table"):  # a registration that drifted
        _catalog.check_registered(BackboneInfo("ssd-1b", "x", "0", 512, 32, 1280, attention_layers=("a",)))
    with pytest.raises(ValueError, match="Unknown backbone 'no-such'. Valid backbones: clip-b16"):
        _catalog.backbone_facts("no-such")


def test_plugin_backbones_are_known_by_name_without_importing_them(monkeypatch):
    import importlib.metadata

    from ovseg.settings import catalog as _catalog
    from ovseg.settings.config import SegmenterConfig

    ep = importlib.metadata.EntryPoint("my-net", "no_such_module_xyz:build", _catalog.ENTRY_POINT_GROUP)
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group=None: [ep] if group == _catalog.ENTRY_POINT_GROUP else [])
    assert "my-net" in _catalog.backbone_names()
    config = SegmenterConfig(backbone="my-net", resolution=100)  # stride unknown: the loader decides
    assert (config.alpha, config.tau) == (_catalog.backbone_facts("my-net").alpha, _catalog.backbone_facts("my-net").tau)
    assert "no_such_module_xyz" not in sys.modules
