"""Issue 31 item 6: one-line notices (not errors; --quiet hides them) when --tau auto keeps one
segment, when a cut gives more than 100 segments, and when an image was processed scaled down."""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from ovseg.cli import main
from ovseg.pipeline import _notices

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


def test_the_rules():
    auto = {"tau": "auto", "tau_chosen": 0.4}
    assert _notices.image_notices(auto, 1, (30, 40), (30, 40)) == {"one_segment": "1 segment"}
    assert _notices.image_notices({"tau": 0.5}, 1, (30, 40), (30, 40)) == {}  # asked for: no notice
    assert _notices.image_notices(auto, 2, (30, 40), (30, 40)) == {}
    assert _notices.image_notices({"tau": 0.5}, 101, (30, 40), (30, 40)) == {"many_segments": "101 segments"}
    assert _notices.image_notices({"tau": 0.5}, 100, (30, 40), (30, 40)) == {}
    assert _notices.image_notices({}, 3, (30, 40), (60, 80)) == {"scaled": "80x60 -> 40x30"}
    notices: dict = {}
    for name in ("a.png", "b.png", "c.png", "d.png"):
        _notices.add(notices, f"photos/{name}", {}, 3, (30, 40), (60, 80))
    (line,) = _notices.lines(notices)
    assert line.startswith("note: 4 image(s) were over --max-pixels") and "a.png: 80x60 -> 40x30" in line
    assert "d.png" not in line and ", ..." in line


@pytest.fixture
def photos(tmp_path, monkeypatch):
    monkeypatch.setenv("OVSEG_CACHE", str(tmp_path / "cache"))
    Image.fromarray(np.full((40, 56, 3), 128, np.uint8)).save(tmp_path / "flat.png")  # one segment, whatever tau
    return tmp_path


@pytest.mark.parametrize("extra, expected", [
    (["flat.png", "--tau", "auto"], "note: --tau auto kept the whole image as one segment in 1 image(s) (flat.png"),
    (["flat.png", "--max-pixels", "500"], "note: 1 image(s) were over --max-pixels and processed scaled down "
                                          "(flat.png: 56x40 -> 26x18)"),
    (["chelsea", "--resolution", "384", "--tau", "1.99", "--alpha", "1", "--no-refine"],
     "note: 1 image(s) were cut into more than 100 segments (chelsea.png: 144 segments)"),
])
def test_the_cli_says_so_in_one_line_and_quiet_hides_it(photos, tiny_weights, extra, expected):
    image = str(ROOT / "examples" / "chelsea.png") if extra[0] == "chelsea" else str(photos / extra[0])
    args = ["segment", image, "--weights", tiny_weights["weights"], "--resolution", "64",
            "--no-cache", "--device", "cpu", *extra[1:], "--out", str(photos / "out")]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert expected in r.output and r.output.count("note:") == 1, r.output
    quiet = CliRunner().invoke(main, [*args, "--overwrite", "--quiet"])
    assert quiet.exit_code == 0 and "note:" not in quiet.output


def test_the_ray_engine_says_the_same_from_its_records():
    from ovseg.commands.ray import _notice_lines

    class Records:  # what the Ray job's materialized Dataset gives the CLI
        def select_columns(self, columns):
            return self

        def iter_rows(self):
            yield {"path": "s3://b/a.jpg", "status": "done", "settings": '{"tau": "auto"}', "segments": [{}],
                   "height": 30, "width": 40, "source_height": 60, "source_width": 80}
            yield {"path": "s3://b/b.jpg", "status": "failed", "settings": None, "segments": [],
                   "height": None, "width": None, "source_height": None, "source_width": None}

    lines = _notice_lines(Records())
    assert [line.split(" (")[0] for line in lines] == [
        "note: --tau auto kept the whole image as one segment in 1 image(s)",
        "note: 1 image(s) were over --max-pixels and processed scaled down"]
