"""method="kway" through the registry: Segmenter, the CLI and a tiny checkpoint (CPU, offline)."""
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from ovseg.cli import main
from ovseg.pipeline import Segmenter, SegmenterConfig
from ovseg.settings.checks import SettingError
from ovseg.testing import quadrants

pytestmark = pytest.mark.usefixtures("cache_home")  # `planted`, `cache_home`: tests/conftest.py


def _picture(side: int = 64) -> np.ndarray:
    return quadrants(side, side, noise=0)  # the planted-walk backbone's four flat quadrants


def _four_quadrants(seg: np.ndarray) -> bool:
    h = seg.shape[0] // 2
    quads = [seg[:h, :h], seg[:h, h:], seg[h:, :h], seg[h:, h:]]
    return all(len(np.unique(q)) == 1 for q in quads) and len({int(q.flat[0]) for q in quads}) == 4


def test_segmenter_kway_finds_the_four_colours_and_records_k(planted):
    result = Segmenter(backbone="planted-walk", method="kway", refine=False, cache=False).segment(_picture())
    assert _four_quadrants(result.segment_map)
    assert result.settings["method"] == "kway" and result.settings["k_chosen"] == 4


def test_cli_segment_kway_writes_k_chosen(planted, tmp_path):
    Image.fromarray(_picture()).save(tmp_path / "quad.png")
    res = CliRunner().invoke(main, ["segment", str(tmp_path / "quad.png"), "--backbone", "planted-walk",
                                    "--method", "kway", "--no-refine", "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    settings = json.loads((tmp_path / "out" / "quad.segments.json").read_text())["settings"]
    assert settings["method"] == "kway" and settings["k_chosen"] == 4


def test_tiny_checkpoint_label_kway(tiny_weights, tmp_path):
    Image.fromarray(_picture(48)).save(tmp_path / "p.png")
    res = CliRunner().invoke(main, ["label", str(tmp_path / "p.png"), "-c", "cat,dog", "--method", "kway",
                                    "--weights", tiny_weights["weights"], "--clip-weights", tiny_weights["clip_weights"],
                                    "--resolution", "64", "--refine-iterations", "2", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    settings = json.loads((tmp_path / "o" / "p.labels.json").read_text())["settings"]
    assert settings["method"] == "kway" and settings["k_chosen"] >= 1


# -- --k / SegmenterConfig.k, and the registry between the methods and the user (issues 19, 20) ---


@pytest.mark.parametrize("k", [0, -2, 2.5, True, "many", "3", None])
def test_bad_k_is_a_setting_error(k):
    with pytest.raises(SettingError) as err:
        SegmenterConfig(method="kway", k=k)
    assert err.value.setting == "k" and "number of segments" in str(err.value)


def test_k_is_a_kway_setting_only():
    for k in (1, 7, "auto", "eigengap", "tree"):
        assert SegmenterConfig(method="kway", k=k).method_settings()["k"] == k
    with pytest.raises(ValueError, match="kway"):
        SegmenterConfig(k=4)  # diffcut
    assert "k" not in SegmenterConfig().segment_settings()  # diffcut's record is unchanged


def test_segmenter_fixed_k_records_k_and_keys_the_cache(planted):
    _, calls = planted
    run = lambda **kw: Segmenter(backbone="planted-walk", method="kway", refine=False, **kw).segment(_picture())  # noqa: E731
    two = run(k=2)
    assert two.settings["method"] == "kway" and two.settings["k"] == 2 and two.settings["k_chosen"] == 2
    assert len(np.unique(two.segment_map)) == 2 and len(calls) == 1
    again = run(k=2)  # same k: the cached segments, no backbone pass
    assert len(calls) == 1 and again.settings["k_chosen"] == 2
    np.testing.assert_array_equal(again.segment_map, two.segment_map)
    three = run(k=3)  # another k: not the cached result
    assert len(calls) == 2 and three.settings["k"] == 3 and three.settings["k_chosen"] == 3
    auto = run()
    assert len(calls) == 3 and auto.settings["k"] == "auto" and auto.settings["k_chosen"] == 4
    keys = {str(Segmenter(backbone="planted-walk", method="kway", k=k).cache_settings()) for k in (2, 3, "auto")}
    assert len(keys) == 3


@pytest.mark.parametrize("k", [3, "eigengap", "tree"])
def test_fixed_k_build_is_kway_segments_per_image(k):
    """The registry's kway builder with a fixed k (or another rule) gives, for a batch, exactly
    `kway_segments` of each image: one batched solve, the same partition at every tau; the "tree"
    rule (K of the recursive cut at tau) gives kway_segments at that tau ("auto": the config's)."""
    from ovseg.masks import KWayConfig, kway_segments
    from ovseg.pipeline import stages

    feats = torch.randn(2, 8, 6, 6, generator=torch.Generator().manual_seed(0))
    trees = stages.build_tree(feats, method="kway", alpha=10.0, k=k)
    for f, tree in zip(feats, trees):
        for tau in (0.2, 0.9, "auto"):
            at = KWayConfig.tau if k != "tree" or tau == "auto" else tau
            want = kway_segments(f, KWayConfig(k=k, tau=at))[0]
            got, info = stages.cut(tree, tau)
            assert torch.equal(got, want) and info == {"k_chosen": int(want.max()) + 1}
        assert tree.num_cuts() == 1
    if k == "tree":  # tau matters: the recursive cut at 0.2 and at 0.9 give different K here
        assert stages.cut(trees[0], 0.2)[0].max() != stages.cut(trees[0], 0.9)[0].max()


def test_cli_k_reaches_the_json(planted, tmp_path):
    Image.fromarray(_picture()).save(tmp_path / "quad.png")
    res = CliRunner().invoke(main, ["segment", str(tmp_path / "quad.png"), "--backbone", "planted-walk",
                                    "--method", "kway", "--k", "2", "--no-refine", "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    settings = json.loads((tmp_path / "out" / "quad.segments.json").read_text())["settings"]
    assert settings["method"] == "kway" and settings["k"] == 2 and settings["k_chosen"] == 2


@pytest.mark.parametrize("command", ["segment", "label", "eval", "demo", "coherence"])
@pytest.mark.parametrize("args, message", [
    (["--method", "kway", "--k", "0"], "number of segments"),
    (["--method", "kway", "--k", "six"], "number of segments"),
    (["--k", "4"], "'--k': k applies to method kway only"),
    (["--method", "kway", "--k", "4", "--tau", "0.3"], "'--tau': tau: k=4 fixes K"),
    (["--method", "kway", "--tau", "auto"], "kway has no automatic tau"),
    (["--method", "kway", "--walk-steps", "2"], "'--walk-steps': walk_steps applies to method random-walk only"),
])
def test_cli_k_checked_before_any_model(no_models, tmp_path, command, args, message):
    Image.fromarray(_picture()).save(tmp_path / "a.png")
    if command == "coherence" and "--walk-steps" in args:
        message = "No such option '--walk-steps'"  # coherence's methods cut features: it has no such option
    if command in ("demo", "coherence") and "auto" in args:
        message = "not a valid float range"  # their --tau takes numbers only (a slider / a fixed cut)
    head = {"segment": ["segment", str(tmp_path / "a.png"), "--out", str(tmp_path / "o")],
            "label": ["label", str(tmp_path / "a.png"), "-c", "cat,dog", "--out", str(tmp_path / "o")],
            "eval": ["eval", "--dataset", "voc", "--root", str(tmp_path)],
            "demo": ["demo"],
            "coherence": ["coherence", "--pairs", str(tmp_path), "--out", str(tmp_path / "o")]}[command]
    res = CliRunner().invoke(main, head + args)
    assert res.exit_code == 2 and message in res.output, res.output
    assert not (tmp_path / "o").exists()


def test_method_choices_and_help_come_from_the_registry():
    from ovseg.settings.methods import get_method, list_methods
    from ovseg.commands.coherence import coherence_command
    from ovseg.commands.demo import demo_command
    from ovseg.commands.eval import eval_command

    commands = [main.commands["label"], main.commands["segment"], eval_command, demo_command, coherence_command]
    assert "kway" in list_methods()
    for command in commands:
        option = next(p for p in command.params if p.name == "method")
        names = [m for m in list_methods() if command is not coherence_command or get_method(m).needs == "features"]
        assert list(option.type.choices) == names and "kway" in names, command.name
        text = " ".join(option.help.split())
        for name in names:
            assert " ".join(get_method(name).description.split()) in text, (command.name, name)
        k = next(p for p in command.params if p.name == "k")
        assert "a number of segments, or auto" in k.help


def test_a_new_method_is_one_registration(planted):
    """A method registered at run time (a plug-in): Segmenter and the eval sweep use it, its
    options are recorded and refused for the other methods; nothing outside the registry changes."""
    from ovseg.settings import methods as _cut_methods
    from ovseg.evaluation._adapter import sweep_predictor

    class Halves:
        def __init__(self, f, parts):
            self.f, self.parts = f, parts

        def cut(self, tau):
            seg = (torch.arange(self.f.shape[-1]) * self.parts // self.f.shape[-1]).expand(self.f.shape[1:])
            return seg.to(torch.int64), {"k_chosen": self.parts}

        def leaves(self, tau):
            return (self.parts,)

        def num_segments(self, tau):
            return self.parts

        def num_cuts(self):
            return 1

    def build(feats, transitions=None, *, top=None, k="auto"):
        return [Halves(f, 2 if k == "auto" else int(k)) for f in feats]

    _cut_methods.register_method("stripes", build=build, options=("k",), info=("k_chosen",), description="stripes")
    try:
        result = Segmenter(backbone="planted-walk", method="stripes", k=2, refine=False, cache=False).segment(_picture())
        assert result.settings["method"] == "stripes" and result.settings["k"] == 2
        assert result.settings["k_chosen"] == 2 and len(np.unique(result.segment_map)) == 2
        with pytest.raises(ValueError, match="alpha"):
            SegmenterConfig(backbone="planted-walk", method="stripes", alpha=3.0)
        predict = sweep_predictor(taus=(0.5,), backbone="planted-walk", method="stripes", refine=False, k=[2, 4],
                                  alpha=10.0)
        out = predict(torch.from_numpy(_picture()).permute(2, 0, 1).float() / 255)
        assert sorted(out) == ["k=2,tau=0.5", "k=4,tau=0.5"] and out.info["k=4,tau=0.5"] == {"k_chosen": 4}
    finally:
        _cut_methods._METHODS.pop("stripes", None)
