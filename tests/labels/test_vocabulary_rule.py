"""One vocabulary rule for the CLI (`--classes`) and the API (`Segmenter.label(img, classes)`):
the same string gives the same Vocabulary; files are read, shipped names loaded, a missing file
that looks like one is a usage error (exit 2) before any model loads (issues 19 and 22)."""
import json
import warnings

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import ovseg.commands.pipeline as cli
from ovseg.cli import main
from ovseg.pipeline import Segmenter
from ovseg.testing import quadrants


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(np.full((24, 32, 3), 120, np.uint8)).save(path)
    return path


@pytest.fixture
def captured(monkeypatch):
    """The vocabulary `ovseg label` hands to the runner (no model runs)."""
    seen = []
    monkeypatch.setattr(cli, "_run", lambda config, inputs, out, overwrite, classes=None, **kw: seen.append(classes))
    return seen


def _classes(vocab):
    return [list(c) for c in vocab.classes]


@pytest.mark.parametrize("text", ["voc", "cat, dog;puppy ,sky", "voc,", "FILE", "coco-object"])
def test_cli_and_api_build_the_same_vocabulary(text, image, tmp_path, captured):
    if text == "FILE":
        text = str(tmp_path / "classes.txt")
        (tmp_path / "classes.txt").write_text("# mine\ncat,kitty\nsofa\n")
    result = CliRunner().invoke(main, ["label", str(image), "-c", text, "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    api = Segmenter.vocabulary(text)
    assert _classes(captured[0]) == _classes(api)
    expected = {"voc": 21, "voc,": 1, "coco-object": 81}.get(text)
    if expected:
        assert len(api.classes) == expected
    if text == "voc,":
        assert api.names == ["voc"]
    if text.endswith("classes.txt"):
        assert _classes(api) == [["cat", "kitty"], ["sofa"]]


@pytest.mark.parametrize("text", ["classes.txt", "data/mine.txt", "./voc"])
def test_a_missing_file_is_a_usage_error(text, image, tmp_path, captured, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["label", str(image), "-c", text, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    assert "no such vocabulary file" in result.output and not captured
    with pytest.raises(ValueError, match="no such vocabulary file"):
        Segmenter.vocabulary(text)


def test_a_word_close_to_a_shipped_name_warns_in_both(image, tmp_path, captured):
    with pytest.warns(UserWarning, match="did you mean the shipped vocabulary 'voc'"):
        api = Segmenter.vocabulary("vocc")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        result = CliRunner().invoke(main, ["label", str(image), "-c", "vocc", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert api.names == captured[0].names == ["vocc"]
    # the CLI's command edge prints ovseg's warnings as one line each ("warning: ...")
    assert "did you mean" in result.output or any("did you mean" in str(w.message) for w in seen)


def test_a_class_file_labels_through_the_cli(tiny_weights, image, tmp_path, monkeypatch):
    """`-c classes.txt` end to end: the JSON names the file's classes (it was one class before)."""
    monkeypatch.setenv("OVSEG_CACHE", str(tmp_path / "cache"))
    (tmp_path / "classes.txt").write_text("cat\nsofa,couch\n")
    out = tmp_path / "out"
    args = ["label", str(image), "-c", str(tmp_path / "classes.txt"), "--out", str(out), "--resolution", "64",
            "--refine-iterations", "1", "--weights", tiny_weights["weights"],
            "--clip-weights", tiny_weights["clip_weights"]]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    data = json.loads((out / "a.labels.json").read_text())
    assert data["classes"] == ["cat", "sofa"]
    assert data["record"]["vocabulary"]["classes"] == [["cat"], ["sofa", "couch"]]


def test_semicolon_synonyms_in_files_and_on_the_command_line(tmp_path, monkeypatch):
    from ovseg.labels import Vocabulary
    from ovseg.pipeline import RunSummary, Segmenter

    (tmp_path / "classes.txt").write_text("dog;puppy\ncat,kitten\n")
    assert Vocabulary.from_file(tmp_path / "classes.txt").classes == (("dog", "puppy"), ("cat", "kitten"))
    assert Vocabulary.from_names(["dog;puppy", "cat,kitten"]).classes == (("dog", "puppy"), ("cat", "kitten"))
    seen = []
    monkeypatch.setattr(Segmenter, "process_files",
                        lambda self, *a, classes=None, **k: seen.append(classes) or RunSummary())
    monkeypatch.setattr(Segmenter, "preflight", lambda self, labels: None)
    Image.fromarray(quadrants()).save(tmp_path / "a.png")
    for args in (["--vocab", tmp_path / "classes.txt"], ["-c", "dog;puppy,cat;kitten"]):
        result = CliRunner().invoke(main, [str(a) for a in ["label", tmp_path / "a.png", *args, "--out", tmp_path / "o"]])
        assert result.exit_code == 0, result.output
    assert [v.classes for v in seen] == [(("dog", "puppy"), ("cat", "kitten"))] * 2


@pytest.mark.parametrize("values, expected", [
    (["cat", "dog"], [["cat"], ["dog"]]),  # issue 31 item 4: it labelled only `dog`
    (["cat,dog", "sky;heaven"], [["cat"], ["dog"], ["sky", "heaven"]]),
    (["voc", "hamster"], None),  # a shipped vocabulary and one more class
])
def test_repeated_classes_add_up(values, expected, image, tmp_path, captured):
    args = [a for v in values for a in ("-c", v)]
    result = CliRunner().invoke(main, ["label", str(image), *args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    got = _classes(captured[0])
    if expected is None:
        assert got == _classes(Segmenter.vocabulary("voc")) + [["hamster"]]
    else:
        assert got == expected


def test_a_class_repeated_across_values_is_a_usage_error(image, tmp_path, captured):
    result = CliRunner().invoke(main, ["label", str(image), "-c", "cat,dog", "-c", "dog", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "duplicate name 'dog'" in result.output and not captured
    result = CliRunner().invoke(main, ["label", str(image), "-c", "cat", "-c", " , ", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "'--classes': classes is empty" in result.output
