"""SegmenterConfig (ovseg/settings/config.py): every setting declared once, checked once, with one
message whoever asks (the CLI, `Segmenter`, `create_backbone`); construction needs no torch;
`validate()` runs once per run; backbone defaults are a recorded field, not a hidden attribute."""
import dataclasses
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner
from PIL import Image

from ovseg.cli import main
from ovseg.settings import catalog
from ovseg.settings.checks import SettingError
from ovseg.settings.config import SegmenterConfig
from ovseg.testing import quadrants

ONE_MESSAGE = "resolution 1010 is not a multiple of the ssd-1b backbone's stride 32; try 1024"


def test_resolution_1010_says_the_same_from_the_cli_the_segmenter_and_create_backbone(tmp_path, no_models):
    import ovseg.features._registry as registry
    from ovseg.pipeline import Segmenter

    with pytest.raises(SettingError) as api:
        Segmenter(resolution=1010)
    with pytest.raises(SettingError) as built:  # before any weights are looked for
        registry.create_backbone("ssd-1b", resolution=1010, weights=str(tmp_path / "none"))
    Image.fromarray(quadrants()).save(tmp_path / "a.png")
    cli = CliRunner().invoke(main, ["segment", str(tmp_path / "a.png"), "--resolution", "1010",
                                    "--out", str(tmp_path / "o")])
    assert str(api.value) == str(built.value) == ONE_MESSAGE
    assert cli.exit_code == 2 and f"Invalid value for '--resolution': {ONE_MESSAGE}" in cli.output
    assert api.value.setting == built.value.setting == "resolution"


def test_one_validate_per_label_run(tiny_weights, tmp_path, monkeypatch, cache_home):
    calls = []
    real = SegmenterConfig.validate

    def counting(self):
        calls.append(self)
        return real(self)

    monkeypatch.setattr(SegmenterConfig, "validate", counting)
    Image.fromarray(quadrants()).save(tmp_path / "a.png")
    Image.fromarray(quadrants(seed=1)).save(tmp_path / "b.png")
    result = CliRunner().invoke(main, ["label", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "-c", "cat,dog",
                                       "--resolution", "64", "--refine-iterations", "1", "--out", str(tmp_path / "o"),
                                       "--weights", tiny_weights["weights"], "--clip-weights", tiny_weights["clip_weights"]])
    assert result.exit_code == 0, result.output
    assert len(calls) == 1  # was up to five: the CLI, the pre-check, the vocabulary, the runner, the run


def test_construction_checks_without_torch():
    code = ("import sys\n"
            "from ovseg.settings.config import SegmenterConfig\n"
            "from ovseg.settings.checks import SettingError\n"
            "c = SegmenterConfig(backbone='dinov2-s', method='random-walk', attention_layers='0,-1', tau='auto',\n"
            "                    resolution=518, device='cpu', dtype='float32')\n"
            "assert c.attention_layers == (0, -1) and c.alpha == 'auto', c  # no published recipe: calibrated\n"
            "for bad in (dict(resolution=1010), dict(backbone='efficientnet-lite0', method='random-walk'),\n"
            "            dict(backbone='dinov2-s', method='random-walk', attention_layers=(99,)),\n"
            "            dict(walk_steps=2), dict(tau=3), dict(alpha=float('nan')), dict(k='many', method='kway'),\n"
            "            dict(device='banana'), dict(dtype='float64'), dict(bank='/no/such/bank.txt'),\n"
            "            dict(alpha='banana'), dict(min_area=2), dict(min_area=-0.1)):\n"
            "    try:\n"
            "        SegmenterConfig(**bad)\n"
            "    except SettingError:\n"
            "        pass\n"
            "    else:\n"
            "        raise AssertionError(bad)\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=120)


def test_backbone_defaults_are_a_field_and_follow_a_new_backbone():
    from ovseg.pipeline import Segmenter

    base = SegmenterConfig()
    assert base.backbone_defaults == ("alpha", "tau", "min_area") and (base.alpha, base.tau, base.min_area) == (10.0, 0.5, 0.0)
    assert SegmenterConfig(tau=0.3).backbone_defaults == ("alpha", "min_area")
    sd14 = catalog.backbone_facts("sd14")
    assert (base.replace(backbone="sd14").alpha, base.replace(backbone="sd14").tau) == (sd14.alpha, sd14.tau)
    assert Segmenter(base, backbone="sd14", cache=False).config.tau == sd14.tau == 0.2
    assert Segmenter(SegmenterConfig(tau=0.3), backbone="sd14", cache=False).config.tau == 0.3  # given: kept
    assert dataclasses.replace(base, backbone="sd14").tau == 0.5  # a plain replace keeps the values
    assert base == SegmenterConfig(alpha=10.0, tau=0.5)  # the same effective settings, the same config
    lite = SegmenterConfig(backbone="efficientnet-lite0")  # no published recipe: the calibrated rule
    facts = catalog.backbone_facts("efficientnet-lite0")
    assert (lite.alpha, lite.tau, lite.min_area) == (facts.alpha, facts.tau, facts.min_area) == ("auto", 0.4, 0.03)


def test_records_of_the_default_settings_are_unchanged():
    """The JSON's settings and the cache key's input, byte for byte, for the default config."""
    settings = SegmenterConfig().segment_settings()
    assert json.dumps(settings) == (
        '{"backbone": "ssd-1b", "weights": null, "resolution": 1024, "alpha": 10.0, "tau": 0.5, "refine": true, '
        '"dtype": null, "method": "diffcut", "work_aspect": "square", "refine_iterations": 15, '
        '"refine_dilations": [1, 2, 4, 8, 12, 24, 32, 64], "refine_filter": "median"}')
    assert SegmenterConfig(alpha=10.0, tau=0.5).segment_settings() == settings


def test_every_field_documents_itself_and_every_option_is_a_field():
    from ovseg.commands.options import FIELDS

    for f in dataclasses.fields(SegmenterConfig):
        assert f.metadata.get("doc"), f"SegmenterConfig.{f.name}: give it a doc (setting(..., doc))"
        assert f"  {f.name} (" in SegmenterConfig.__doc__
        if f.metadata.get("cli"):
            assert f.metadata.get("help"), f"{f.name} is on the command line: give it a help text"
    label = main.commands["label"]
    for name, f in FIELDS.items():  # label and segment offer each "pipeline" field, with its default
        if f.metadata.get("cli") in ("pipeline", "names", "labeler"):
            param = next(p for p in label.params if p.name == name)
            assert param.default == (f.metadata.get("none") if f.default is None and f.metadata.get("none")
                                     else f.default), name


def test_the_option_types_call_the_checks(tmp_path):
    """A setting's command-line error is its check's message (one per setting)."""
    from ovseg.settings import checks

    Image.fromarray(quadrants()).save(tmp_path / "a.png")

    for args, check in [(["--tau", "3"], lambda: checks.check_tau(3)), (["--k", "0"], lambda: checks.check_k(0)),
                        (["--alpha", "-1"], lambda: checks.check_alpha(-1)),
                        (["--walk-steps", "0"], lambda: checks.check_integer("walk_steps", 0))]:
        with pytest.raises(SettingError) as err:
            check()
        result = CliRunner().invoke(main, ["segment", str(tmp_path / "a.png"), *args])
        assert result.exit_code == 2 and str(err.value) in result.output, (args, result.output)
