"""`ovseg label / segment / backbones` in-process on tiny random checkpoints (CPU, offline)."""
import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from ovseg.cli import main
from ovseg.io import rle_decode
from ovseg.testing import quadrants


FAST = ["--resolution", "64", "--refine-iterations", "2"]


@pytest.fixture(scope="module")
def tiny(tiny_weights):
    return ["--weights", tiny_weights["weights"], "--clip-weights", tiny_weights["clip_weights"]]


pytestmark = pytest.mark.usefixtures("cache_home")


def _check_outputs(out, stem, task, classes=None):
    """Every output exists and opens; PNG values, JSON classes and RLE masks agree."""
    kind = "labels" if task == "label" else "segments"
    png = Image.open(out / f"{stem}.{kind}.png")
    assert png.mode == "P"
    labels = np.asarray(png)
    overlay = Image.open(out / f"{stem}.{kind}.overlay.png")
    overlay.load()
    assert overlay.width > png.width and overlay.height >= png.height  # image + legend panel
    data = json.loads((out / f"{stem}.{kind}.json").read_text())
    assert (data["height"], data["width"]) == labels.shape
    assert data["task"] == task and "column-major" in data["rle"]
    assert data["label_map"]["file"] == f"{stem}.{kind}.png"
    covered = np.zeros(labels.shape, int)
    for seg in data["segments"]:
        mask = rle_decode(seg["segmentation"])
        assert mask.shape == labels.shape and mask.sum() == seg["area"] > 0
        x, y, w, h = seg["bbox"]
        assert mask[y : y + h, x : x + w].sum() == seg["area"]
        value = seg["id"] if task == "segment" else seg["class_index"]
        assert (labels[mask] == value).all()
        if task == "label":
            assert seg["class_name"] == classes[seg["class_index"]] == data["classes"][value]
        covered += mask
    assert (covered == 1).all()  # the segments partition the image
    return labels, data


def test_label_good_and_bad_inputs(tiny, tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    pic = quadrants()
    Image.fromarray(pic).save(src / "rgb.png")
    Image.fromarray(pic).convert("L").save(src / "gray.png")
    Image.fromarray(pic).convert("P").save(src / "palette.gif")
    Image.fromarray(pic).convert("CMYK").save(src / "cmyk.jpg")
    Image.fromarray(np.dstack([pic, np.full(pic.shape[:2], 128, np.uint8)]), "RGBA").save(src / "rgba.png")
    Image.fromarray((pic[..., 0].astype(np.uint16) * 257)).save(src / "sixteen.png")
    Image.fromarray(pic[:5, :7]).save(src / "sub" / "tiny.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated by 90 degrees
    Image.fromarray(pic).save(src / "rotated.jpg", exif=exif)
    good = (src / "rgb.png").read_bytes()
    Image.fromarray(pic).save(src / "whole.jpg")
    (src / "truncated.jpg").write_bytes((src / "whole.jpg").read_bytes()[:300])
    (src / "whole.jpg").unlink()
    (src / "text.jpg").write_text("not an image")
    (src / "empty.png").write_bytes(b"")
    assert good

    out = tmp_path / "out"
    args = ["label", str(src), "--classes", "cat, dog;puppy ,sky", "--out", str(out), *FAST, *tiny]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output  # some inputs failed
    for bad in ["truncated.jpg", "text.jpg", "empty.png"]:
        assert bad in result.output
        assert not (out / f"{bad.split('.')[0]}.labels.json").exists()
    assert "3 image(s) failed" in result.output and "labelled 8 image(s)" in result.output
    classes = ["cat", "dog", "sky"]
    for stem in ["rgb", "gray", "palette", "cmyk", "rgba", "sixteen", "rotated"]:
        labels, data = _check_outputs(out, stem, "label", classes)
        assert labels.shape == ((56, 40) if stem == "rotated" else (40, 56))
        assert set(np.unique(labels)) <= {0, 1, 2}
    labels, _ = _check_outputs(out / "sub", "tiny", "label", classes)
    assert labels.shape == (5, 7)

    # A rerun skips what is done and retries only the failures.
    before = (out / "rgb.labels.json").stat().st_mtime_ns
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and "skipped 8 already done" in result.output
    assert (out / "rgb.labels.json").stat().st_mtime_ns == before


def test_cache_skips_backbone_when_relabelling(tiny, tmp_path, monkeypatch):
    import ovseg.features

    calls = []
    real = ovseg.features.create_backbone

    def counting(*args, **kwargs):
        backbone = real(*args, **kwargs)
        backbone.register_forward_hook(lambda *a: calls.append(1))
        return backbone

    monkeypatch.setattr(ovseg.features, "create_backbone", counting)
    Image.fromarray(quadrants()).save(tmp_path / "a.png")
    Image.fromarray(quadrants(seed=1)).save(tmp_path / "b.png")
    base = ["label", str(tmp_path / "a.png"), str(tmp_path / "b.png"), *FAST, *tiny]
    r1 = CliRunner().invoke(main, [*base, "--classes", "cat,dog", "--out", str(tmp_path / "o1")])
    assert r1.exit_code == 0, r1.output
    assert len(calls) == 2
    r2 = CliRunner().invoke(main, [*base, "--classes", "tree,road,sky", "--out", str(tmp_path / "o2")])
    assert r2.exit_code == 0, r2.output
    assert len(calls) == 2  # segments came from the cache: no backbone pass
    s1 = np.asarray(Image.open(tmp_path / "o1" / "a.labels.png"))
    d1 = json.loads((tmp_path / "o1" / "a.labels.json").read_text())
    d2 = json.loads((tmp_path / "o2" / "a.labels.json").read_text())
    assert [s["segmentation"] for s in d1["segments"]] == [s["segmentation"] for s in d2["segments"]]
    assert d2["classes"] == ["tree", "road", "sky"] and s1.shape == (40, 56)
    r3 = CliRunner().invoke(main, ["segment", *base[1:3], *FAST, *tiny[:2], "--no-cache",
                                   "--out", str(tmp_path / "o3")])
    assert r3.exit_code == 0 and len(calls) == 4  # --no-cache: computed again
    d3 = json.loads((tmp_path / "o3" / "a.segments.json").read_text())  # recomputed: the same segments
    assert [s["segmentation"] for s in d3["segments"]] == [s["segmentation"] for s in d1["segments"]]


def test_segment_and_huge_image_guard(tiny, tmp_path):
    Image.fromarray(quadrants(60, 80)).save(tmp_path / "big.jpg", quality=95)
    Image.fromarray(quadrants(60, 80)).save(tmp_path / "large.png")
    out = tmp_path / "out"
    args = ["segment", str(tmp_path), "--out", str(out), "--max-pixels", "1000", *FAST, *tiny[:2]]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output  # a PNG is scaled down too (issue 22)
    for stem in ("big", "large"):
        labels, data = _check_outputs(out, stem, "segment")
        assert labels.size <= 1000 and data["source_size"] == [60, 80]
    assert set(np.unique(labels)) == {s["id"] for s in data["segments"]}


def test_interrupted_write_leaves_no_partial_file(tiny, tmp_path, monkeypatch):
    import ovseg.io.viz

    Image.fromarray(quadrants()).save(tmp_path / "a.png")
    out = tmp_path / "out"

    class Broken:
        def save(self, f, format=None):
            f.write(b"\x89PNG half")
            raise OSError("disk full")

    monkeypatch.setattr(ovseg.io.viz, "overlay", lambda *a, **k: Broken())
    args = ["label", str(tmp_path / "a.png"), "-c", "cat,dog", "--out", str(out), *FAST, *tiny]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and "disk full" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["a.labels.png"]  # no overlay, no temp, no JSON
    monkeypatch.undo()
    monkeypatch.setenv("OVSEG_CACHE", str(tmp_path / "cache"))
    result = CliRunner().invoke(main, args)  # not marked done: the rerun completes it
    assert result.exit_code == 0, result.output
    _check_outputs(out, "a", "label", ["cat", "dog"])


@pytest.mark.parametrize("args", [
    ["label", "{img}", "--max-classes", "0"],  # neither --classes nor --vocab: automatic names
    ["label", "{img}", "--bank", "/no/such/bank.txt"],
    ["label", "{img}", "-c", "a", "--max-classes", "3"],  # automatic names only
    ["label", "{img}", "-c", "a", "--vocab", "voc"],
    ["label", "{img}", "-c", " , "],
    ["label", "{img}", "-c", "cat,,dog"],  # a blank name
    ["label", "{img}", "-c", "cat,dog,Cat"],  # a duplicate, whatever its case
    ["label", "{img}", "--vocab", "no-such-vocabulary"],
    ["label", "{img}", "-c", "a", "--tau", "3"],
    ["label", "{img}", "-c", "a", "--dtype", "float64"],
    ["segment", "/no/such/file.jpg"],
    ["segment", "{img}", "--batch-size", "0"],
    ["segment", "{img}", "--backbone", "no-such-backbone"],
])
def test_usage_errors(tmp_path, args):
    Image.fromarray(quadrants()).save(tmp_path / "a.png")
    args = [a.replace("{img}", str(tmp_path / "a.png")) for a in args]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "out").exists()


def test_missing_weights_fail_fast_with_advice(tmp_path):
    Image.fromarray(quadrants()).save(tmp_path / "a.png")
    result = CliRunner().invoke(main, ["segment", str(tmp_path / "a.png"), "--weights",
                                       str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "no such folder" in result.output and "--weights" in result.output
    assert "hf download" not in result.output


def test_backbones_lists_registry():
    result = CliRunner().invoke(main, ["backbones"])
    assert result.exit_code == 0
    line = next(l for l in result.output.splitlines() if l.startswith("ssd-1b "))
    assert "1024" in line and "segmind/SSD-1B" in line


def test_help_imports_nothing_heavy():
    code = ("import sys; from ovseg.cli import main\n"
            "try: main(['label', '--help'])\nexcept SystemExit: pass\n"
            "heavy = [m for m in ('torch', 'diffusers', 'transformers', 'open_clip', 'scipy',\n"
            "                     'matplotlib') if m in sys.modules]\n"
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, cwd=".")


# -- fail fast, quiet, Ctrl-C, reruns (issue 10) --------------------------------------------------
@pytest.mark.parametrize("extra, option", [
    (["--resolution", "33"], "--resolution"),
    (["--alpha", "nan"], "--alpha"),
    (["--alpha", "inf"], "--alpha"),
    (["--device", "bogus"], "--device"),
    (["--device", "cuda:99"], "--device"),
    (["--dtype", "float16", "--device", "cpu"], "--dtype"),
    (["--weights", "ssd-1b/"], "--weights"),
    (["--clip-weights", "./no-such-clip"], "--clip-weights"),
    (["--out", "{file}/sub"], "--out"),
])
def test_settings_fail_fast_before_any_model(tmp_path, no_models, extra, option):
    import time

    Image.fromarray(quadrants()).save(tmp_path / "a.png")
    (tmp_path / "file").write_text("a regular file")
    extra = [e.replace("{file}", str(tmp_path / "file")) for e in extra]
    args = ["label", str(tmp_path / "a.png"), "-c", "cat,dog", "--out", str(tmp_path / "out"), *extra]
    start = time.perf_counter()
    result = CliRunner().invoke(main, args)
    elapsed = time.perf_counter() - start
    assert result.exit_code == 2, result.output
    assert option in result.output and "a model was built" not in result.output
    assert elapsed < 2.0, f"{elapsed:.2f} s"


def test_cuda_without_cuda_fails_fast(tmp_path, no_models, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    Image.fromarray(quadrants()).save(tmp_path / "a.png")
    result = CliRunner().invoke(main, ["segment", str(tmp_path / "a.png"), "--device", "cuda",
                                       "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "--device" in result.output and "CUDA is not available" in result.output


def test_ctrl_c_exits_130(tmp_path, monkeypatch, tiny):
    from ovseg.pipeline import Segmenter

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Segmenter, "process_files", interrupted)
    Image.fromarray(quadrants()).save(tmp_path / "a.png")
    result = CliRunner().invoke(main, ["segment", str(tmp_path / "a.png"), "--out", str(tmp_path / "o"), *tiny[:2]])
    assert result.exit_code == 130 and "interrupted" in result.output


def test_quiet_prints_errors_only(tmp_path, monkeypatch, tiny):
    from ovseg.pipeline import RunSummary, Segmenter

    Image.fromarray(quadrants()).save(tmp_path / "a.png")
    summary = RunSummary(done=[tmp_path / "a.png"])
    calls = []
    monkeypatch.setattr(Segmenter, "process_files", lambda self, *a, **k: calls.append(k) or summary)
    args = ["segment", str(tmp_path / "a.png"), "--out", str(tmp_path / "o"), *tiny[:2]]
    loud = CliRunner().invoke(main, args)
    assert loud.exit_code == 0 and "segmented 1 image(s)" in loud.output
    quiet = CliRunner().invoke(main, [*args, "--quiet"])
    assert quiet.exit_code == 0 and quiet.output == "" and calls[-1]["progress"] is False
    summary.failed.append((tmp_path / "b.png", "b.png: cannot read image"))
    failing = CliRunner().invoke(main, [*args, "-q"])
    assert failing.exit_code == 1 and "b.png: cannot read image" in failing.output


def test_relabelling_into_the_same_out_gives_the_new_classes(tiny, tmp_path):
    Image.fromarray(quadrants()).save(tmp_path / "a.png")
    out = tmp_path / "out"
    base = ["label", str(tmp_path / "a.png"), "--out", str(out), *FAST, *tiny]
    assert CliRunner().invoke(main, [*base, "-c", "cat,dog"]).exit_code == 0
    again = CliRunner().invoke(main, [*base, "-c", "tree,road,sky"])
    assert again.exit_code == 0, again.output
    assert "labelled 1 image(s)" in again.output and "redid 1" in again.output
    _check_outputs(out, "a", "label", ["tree", "road", "sky"])
    tau = CliRunner().invoke(main, [*base, "-c", "tree,road,sky", "--tau", "0.3"])
    assert "redid 1" in tau.output
    same = CliRunner().invoke(main, [*base, "-c", "tree,road,sky", "--tau", "0.3"])
    assert "skipped 1 already done" in same.output and "labelled 0" in same.output


def test_no_cache_writes_no_segment_or_text_cache(tiny, tmp_path):
    import os

    Image.fromarray(quadrants()).save(tmp_path / "a.png")
    args = ["label", str(tmp_path / "a.png"), "-c", "cat,dog", "--out", str(tmp_path / "o"), *FAST, *tiny]
    assert CliRunner().invoke(main, [*args, "--no-cache"]).exit_code == 0
    cache = tmp_path / "cache"  # OVSEG_CACHE (the autouse fixture)
    assert not (cache / "segments").exists() and not (cache / "text-embeds").exists()
    assert os.environ["OVSEG_CACHE"] == str(cache)


def test_default_run_hides_third_party_noise(tiny, tmp_path):
    """A real run in a fresh process: no accelerate advice, no "Loading weights" bars."""
    import os

    Image.fromarray(quadrants()).save(tmp_path / "a.png")
    env = {**os.environ, "OVSEG_CACHE": str(tmp_path / "fresh-cache"), "HF_HUB_OFFLINE": "1"}
    env.pop("TRANSFORMERS_VERBOSITY", None)
    cmd = [sys.executable, "-m", "ovseg.cli", "label", str(tmp_path / "a.png"), "-c", "cat,dog",
           "--out", str(tmp_path / "o"), *FAST, *tiny]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert run.returncode == 0, run.stderr
    noise = run.stdout + run.stderr
    assert "accelerate" not in noise and "Loading weights" not in noise and "Warning" not in noise
    assert "labelled 1 image(s)" in run.stderr


# -- what a new user hit (issue 22), label and segment ---------------------------------------------
def test_max_pixels_scales_a_png_down_instead_of_refusing_it(invoke, tiny, tmp_path):
    Image.fromarray(quadrants(200, 300)).save(tmp_path / "big.png")
    out = tmp_path / "out"
    result, _ = invoke(["segment", tmp_path / "big.png", "--out", out, "--max-pixels", 10_000, *FAST, *tiny[:2]])
    assert result.exit_code == 0, result.output
    data = json.loads((out / "big.segments.json").read_text())
    assert data["source_size"] == [200, 300] and data["height"] * data["width"] <= 10_000
    assert abs(data["width"] / data["height"] - 1.5) < 0.05  # aspect kept
    with Image.open(out / "big.segments.png") as png:
        assert png.size == (data["width"], data["height"])


def test_missing_clip_weights_stop_label_before_any_model(invoke, tiny, tmp_path, no_models, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    Image.fromarray(quadrants()).save(tmp_path / "a.png")
    result, elapsed = invoke(["label", tmp_path / "a.png", "-c", "cat,dog", "--out", tmp_path / "o",
                               *FAST, *tiny[:2]])  # --clip-weights forgotten, offline
    assert result.exit_code == 1, result.output
    assert "open_clip" in result.output and "--clip-weights" in result.output
    assert "a model was built" not in result.output and not (tmp_path / "o").exists()
    assert elapsed < 10, f"{elapsed:.1f} s"


@pytest.mark.parametrize("command", [["label", "-c", "cat"], ["segment"]])
def test_no_usable_image_is_a_usage_error(invoke, tmp_path, no_models, command):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.txt").write_text("no image here")
    result, _ = invoke([command[0], tmp_path / "in", *command[1:], "--out", tmp_path / "o"])
    assert result.exit_code == 2, result.output
    assert "no image files" in result.output and "0 image(s)" not in result.output


def _sets(out):
    return sorted(p.name[: -len(".segments.json")] for p in out.glob("*.segments.json"))


def test_reruns_leave_no_stale_output_sets(invoke, tiny, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    Image.fromarray(quadrants()).save(src / "cat.png")
    base = ["segment", src, "--out", out, *FAST, *tiny[:2]]
    assert invoke(base)[0].exit_code == 0
    assert _sets(out) == ["cat"]
    Image.fromarray(quadrants(seed=2)).save(src / "cat.jpg")  # now two inputs share the stem
    result, _ = invoke(base)
    assert result.exit_code == 0, result.output
    assert _sets(out) == ["cat.jpg", "cat.png"]  # cat.* was cat.png's: gone, not a third set
    assert not list(out.glob("cat.segments*"))
    (src / "cat.jpg").unlink()
    result, _ = invoke(base)
    assert result.exit_code == 0, result.output
    assert _sets(out) == ["cat", "cat.jpg"]  # cat.png.* gone; cat.jpg's outputs stay (not an input)
    assert not list(out.glob("cat.png.segments*"))
    # a set under the other name that records another image as its source is never touched
    (out / "cat.png.segments.json").write_text(json.dumps({"image": str(tmp_path / "elsewhere.png")}))
    result, _ = invoke(base)
    assert result.exit_code == 0 and "skipped 1" in result.output, result.output
    assert _sets(out) == ["cat", "cat.jpg", "cat.png"]


def test_label_help_puts_the_vocabulary_first():
    text = CliRunner().invoke(main, ["label", "--help"]).output
    text = text[text.index("Options:"):]
    # option lines start at column 2; wrapped help text is indented further
    options = [line.split()[0].rstrip(",") for line in text.splitlines() if line.startswith("  -")]
    assert options[:2] == ["-c", "--vocab"], options
    assert options.index("-o") < options.index("--backbone"), options
    assert options.index("--engine") > options.index("--clip-weights")
