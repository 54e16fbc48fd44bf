"""method="kway" through the registry: Segmenter, the CLI and a tiny checkpoint (CPU, offline)."""
import json

import numpy as np
from click.testing import CliRunner
from PIL import Image

from ovseg.cli import main
from ovseg.pipeline import Segmenter
from tests.test_random_walk_method import _picture, cache_home, planted  # noqa: F401  (fixtures)


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
