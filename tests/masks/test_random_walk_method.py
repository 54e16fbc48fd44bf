"""The random-walk method and tau="auto" wired through Segmenter, the CLI and eval (CPU, offline).

A plug-in backbone, registered through the registry (`planted`, `ovseg.testing.PlantedWalk`),
plants the answer: the image is four flat quadrants; its features are the one-hot quadrant colour
(DiffCut finds four segments), and its attention maps, at two resolutions, are block chains pairing
the *diagonal* quadrants. Only a cut of that attention gives the two non-contiguous regions
{TL, BR} and {TR, BL}, so recovering them exactly shows the attention went through every stage.
"""
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from ovseg.cli import main
from ovseg.pipeline import Segmenter, SegmenterConfig
from ovseg.testing import WALK_LAYERS, planted_pairs, quadrants

LAYERS = WALK_LAYERS


def _picture(side: int = 64) -> np.ndarray:
    return quadrants(side, side, noise=0)


def _planted(side: int = 64) -> np.ndarray:
    """The planted partition: 0 on TL and BR, 1 on TR and BL."""
    return planted_pairs(side)


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = {(int(x), int(y)) for x, y in zip(a.reshape(-1), b.reshape(-1))}
    return len(pairs) == len({p[0] for p in pairs}) == len({p[1] for p in pairs})


pytestmark = pytest.mark.usefixtures("cache_home")


@pytest.mark.parametrize("refine", [False, True])
def test_segmenter_random_walk_auto_recovers_the_planted_pairs(planted, refine):
    built, calls = planted
    seg = Segmenter(backbone="planted-walk", method="random-walk", tau="auto", refine=refine,
                    refine_iterations=3, cache=False)
    result = seg.segment(_picture())
    assert _same_partition(result.segment_map, _planted()) and len(result.segments) == 2
    assert calls == [list(LAYERS)]  # the default recipe: every layer the backbone records
    s = result.settings
    assert (s["method"], s["tau"], s["walk_steps"], s["attention_layers"]) == ("random-walk", "auto", 1, "all")
    assert "alpha" not in s and 0 < s["tau_chosen"] < 1
    # the same image by DiffCut on the same backbone: the four colours, not the planted pairs
    diffcut = Segmenter(backbone="planted-walk", tau="auto", refine=refine, refine_iterations=3, cache=False)
    four = diffcut.segment(_picture())
    assert len(four.segments) == 4 and four.settings["method"] == "diffcut"


def test_fixed_tau_steps_and_one_layer(planted):
    _, calls = planted
    for layers in [(1,), ("walk.16",), (-2, "walk.8")]:
        result = Segmenter(backbone="planted-walk", method="random-walk", tau=0.5, walk_steps=3,
                           attention_layers=layers, refine=False, cache=False).segment(_picture())
        assert _same_partition(result.segment_map, _planted())
        assert "tau_chosen" not in result.settings and result.settings["walk_steps"] == 3
        assert calls[-1] == list(layers)


def test_cache_keeps_tau_chosen_and_relabel_skips_the_backbone(planted, tiny_weights, tmp_path):
    built, calls = planted
    seg = Segmenter(backbone="planted-walk", method="random-walk", tau="auto", refine=False,
                    clip_weights=tiny_weights["clip_weights"], cache_dir=str(tmp_path / "c"))
    first = seg.segment(_picture())
    labelled = seg.label(_picture(), "cat,dog")  # relabel: segments from the cache
    assert len(calls) == 1 and seg.cache.hits == 1
    assert labelled.settings["tau_chosen"] == first.settings["tau_chosen"]
    assert _same_partition(labelled.segment_map, _planted())
    # other method, steps or layers: other cache keys
    keys = set()
    for kw in [dict(), dict(method="random-walk"), dict(method="random-walk", walk_steps=2),
               dict(method="random-walk", attention_layers=(0,)), dict(method="random-walk", tau="auto")]:
        from ovseg.io.cache import cache_key

        keys.add(cache_key(_picture(), SegmenterConfig(backbone="planted-walk", **kw).segment_settings()))
    assert len(keys) == 5


def test_cli_random_walk_auto_recovers_the_planted_pairs(planted, tmp_path):
    built, calls = planted
    Image.fromarray(_picture()).save(tmp_path / "quad.png")
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["segment", str(tmp_path / "quad.png"), "--backbone", "planted-walk",
                                    "--method", "random-walk", "--tau", "auto", "--walk-steps", "2",
                                    "--attention-layers", "walk.16,-1", "--no-refine", "--out", str(out)])
    assert res.exit_code == 0, res.output
    labels = np.asarray(Image.open(out / "quad.segments.png"))
    assert _same_partition(labels, _planted())
    settings = json.loads((out / "quad.segments.json").read_text())["settings"]
    assert settings["method"] == "random-walk" and settings["tau"] == "auto"
    assert settings["walk_steps"] == 2 and settings["attention_layers"] == ["walk.16", -1]
    assert isinstance(settings["tau_chosen"], float)
    assert calls == [["walk.16", -1]]


@pytest.mark.parametrize("args,message", [
    (["--tau", "autoo"], "tau must be a number in [0, 2]"),
    (["--tau", "2.5"], "range"),
    (["--method", "random-walk", "--walk-steps", "0"], "walk-steps"),
    (["--method", "random-walk", "--attention-layers", "walk.99"], "unknown attention layer"),
    (["--method", "random-walk", "--attention-layers", "2"], "out of range"),
    (["--method", "random-walk", "--attention-layers", "0,,1"], "empty layer"),
    (["--method", "walk"], "walk"),
    (["--walk-steps", "2"], "random-walk only"),
    (["--attention-layers", "0"], "random-walk only"),
    (["--method", "random-walk", "--backbone", "no-attention"], "planted-walk"),
])
def test_cli_bad_values_are_usage_errors_before_any_model_loads(planted, tmp_path, args, message):
    built, calls = planted
    Image.fromarray(_picture()).save(tmp_path / "quad.png")
    base = ["--backbone", "planted-walk"] if "--backbone" not in args else []
    for command in (["segment"], ["label", "--classes", "a,b"]):
        res = CliRunner().invoke(main, [*command, str(tmp_path / "quad.png"), *base, *args,
                                        "--out", str(tmp_path / "o")])
        assert res.exit_code == 2, res.output
        assert message in res.output, res.output
    assert not built and not calls  # nothing was loaded


def test_backbones_without_attention_name_those_with_it(planted):
    with pytest.raises(ValueError, match="no self-attention maps") as err:
        SegmenterConfig(backbone="no-attention", method="random-walk")
    assert "ssd-1b" in str(err.value) and "planted-walk" in str(err.value)
    SegmenterConfig(backbone="no-attention")  # DiffCut needs no attention
    for bad in [dict(tau="autoo"), dict(tau=-0.1), dict(method="random-walk", walk_steps=0),
                dict(method="random-walk", attention_layers=(5,)), dict(method="random-walk", attention_layers=()),
                dict(method="random-walk", attention_layers=("nope",)), dict(walk_steps=2)]:
        with pytest.raises(ValueError):
            SegmenterConfig(backbone="planted-walk", **bad)


def test_eval_random_walk_auto_sweep_and_resume_key(planted, tmp_path):
    """`make_predictor` cuts one tree per image at every tau and at auto; the CLI keys results by
    method, steps and layers."""
    from ovseg.evaluation import _adapter

    _, calls = planted
    predict = _adapter.make_predictor("unsupervised", vocabulary=None, taus=(0.3, "auto"), backbone="planted-walk",
                                      weights=None, clip_weights=None, device="cpu", alpha=10.0, refine=False,
                                      method="random-walk", walk_steps=1, attention_layers=None)
    image = torch.from_numpy(_picture()).permute(2, 0, 1).float() / 255
    out = predict(image)
    assert sorted(out) == ["tau=0.3", "tau=auto"] and len(calls) == 1
    small = _planted(128)
    assert _same_partition(out["tau=auto"].numpy(), small) and _same_partition(out["tau=0.3"].numpy(), small)


def test_eval_cli_options_reach_the_predictor_and_the_key(planted, tmp_path, monkeypatch):
    from ovseg.evaluation import _adapter
    from ovseg.commands.eval import eval_command
    from ovseg.evaluation._runner import RESULTS_FILE

    root = tmp_path / "VOCdevkit" / "VOC2012"
    (root / "JPEGImages").mkdir(parents=True)
    (root / "SegmentationClass").mkdir()
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    Image.fromarray(_picture()).save(root / "JPEGImages" / "a.jpg")
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(root / "SegmentationClass" / "a.png")
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("a\n")
    seen = []

    def fake(protocol, **kw):
        seen.append(kw)
        return lambda image: {f"tau={t}": np.zeros((8, 8), np.int64) for t in kw["taus"]}

    monkeypatch.setattr(_adapter, "make_predictor", fake)
    out = tmp_path / "out"
    base = ["--dataset", "voc", "--root", str(tmp_path), "--out", str(out), "--no-progress", "--backbone",
            "planted-walk"]
    runs = [["--method", "random-walk", "--tau", "auto", "--tau", "0.3"],
            ["--method", "random-walk", "--tau", "auto", "--tau", "0.3", "--walk-steps", "2"],
            ["--method", "random-walk", "--tau", "auto", "--tau", "0.3", "--attention-layers", "0"],
            ["--tau", "auto", "--tau", "0.3"]]
    for extra in runs:
        res = CliRunner().invoke(eval_command, base + extra)
        assert res.exit_code == 0, res.output
    assert seen[0]["taus"] == ("auto", 0.3) and seen[0]["method"] == "random-walk"
    assert seen[1]["walk_steps"] == 2 and seen[2]["attention_layers"] == (0,) and seen[3]["method"] == "diffcut"
    keys = {json.loads(line)["settings"] for line in (out / RESULTS_FILE).read_text().splitlines()}
    assert len(keys) == 4  # no run resumed from another's results
    for extra, message in [(["--tau", "autoo"], "must be a number"), (["--walk-steps", "0"], "walk-steps"),
                           (["--method", "random-walk", "--attention-layers", "9"], "out of range"),
                           (["--walk-steps", "2"], "random-walk only")]:
        res = CliRunner().invoke(eval_command, base + extra)
        assert res.exit_code == 2 and message in res.output, res.output
    assert len(seen) == 4  # the bad ones built no predictor


def test_tiny_checkpoint_runs_every_new_option(tiny_weights, tmp_path):
    """Every new option end to end through the real UNet loader (tiny random weights: outputs
    meaningless, but shapes, records and caching are real)."""
    Image.fromarray(_picture(48)).save(tmp_path / "p.png")
    tiny = ["--weights", tiny_weights["weights"], "--clip-weights", tiny_weights["clip_weights"]]
    fast = ["--resolution", "64", "--refine-iterations", "2"]
    runs = [["label", "-c", "cat,dog", "--method", "random-walk", "--tau", "auto", "--walk-steps", "2",
             "--attention-layers", "0,-1"],
            ["label", "-c", "cat,dog", "--method", "random-walk", "--tau", "0.4"],
            ["segment", "--tau", "auto", "--weights", tiny_weights["weights"]]]
    for i, args in enumerate(runs):
        extra = tiny if args[0] == "label" else []
        res = CliRunner().invoke(main, [args[0], str(tmp_path / "p.png"), *args[1:], *extra, *fast,
                                        "--out", str(tmp_path / f"o{i}")])
        assert res.exit_code == 0, res.output
        kind = "labels" if args[0] == "label" else "segments"
        data = json.loads((tmp_path / f"o{i}" / f"p.{kind}.json").read_text())
        assert data["settings"]["method"] == ("diffcut" if i == 2 else "random-walk")
        assert ("tau_chosen" in data["settings"]) == (args[args.index("--tau") + 1] == "auto")


@pytest.mark.parametrize("name", ["ssd-1b", "dinov2-s"])
def test_capture_combines_every_layer_into_one_walk(name):
    """UNet (streamed through attention_sink) and ViT (maps returned, combined after): P on the
    feature grid, row-stochastic, equal to combining the returned maps by hand."""
    from ovseg.masks import capture_transitions
    from ovseg.masks.random_walk import combine_attention
    from ovseg.testing import make_random_backbone

    b = make_random_backbone(name, "tiny")
    images = torch.rand(2, 3, 4 * b.stride, 4 * b.stride, generator=torch.Generator().manual_seed(0))
    feats, P = capture_transitions(b, images)
    n = feats.shape[-1] * feats.shape[-2]
    assert P.shape == (2, n, n) and (P >= 0).all()
    torch.testing.assert_close(P.sum(-1), torch.ones(2, n), atol=1e-5, rtol=0)
    maps = b.extract(images, attention_layers=list(b.attention_layer_names)).attentions
    assert len(maps) == len(b.attention_layer_names) > 1
    by_hand = combine_attention([m[1] for m in maps.values()], size=tuple(feats.shape[-2:]))
    torch.testing.assert_close(P[1], by_hand, atol=1e-5, rtol=1e-4)
