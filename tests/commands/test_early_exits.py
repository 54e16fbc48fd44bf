"""Issue 31 items 5 and 8: mistakes in the data or the point are usage errors (exit 2), found
before torch is imported and before any model (they were exit 1 after ~3 s), and a misspelt
dataset names the one meant."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
CHELSEA = str(ROOT / "examples" / "chelsea.png")  # 451 x 300

# run the command, then say whether torch was imported (a SystemExit ends every command)
PROBE = ("import sys\nfrom ovseg.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
         "    code = e.code\nprint('TORCH', 'torch' in sys.modules, file=sys.stderr)\nsys.exit(code)\n")


def run(args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROBE, *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})


@pytest.mark.parametrize("args, message", [
    (["coherence", CHELSEA, "--point", "2000,10", "-b", "efficientnet-lite0", "--out", "{t}/c.png"],
     "point (2000, 10) lies outside the reference image, which is 451 x 300 pixels"),
    (["coherence", CHELSEA, "--point", "1.5,0.5", "-b", "ssd-1b", "--out", "{t}/c.png"], "must lie in [0, 1]"),
    (["eval", "--dataset", "voc", "--root", "{t}", "--out", "{t}/e"], "Invalid value for '--root'"),
    (["coherence", "--dataset", "voc", "--root", "{t}", "--out", "{t}/s"], "Invalid value for '--root'"),
    (["eval", "--dataset", "vco", "--root", "{t}"], "did you mean 'voc'?"),
    (["coherence", "--dataset", "cityscape", "--root", "{t}", "--out", "{t}/s"], "did you mean 'cityscapes'?"),
])
def test_exit_2_before_torch(tmp_path, args, message):
    r = run([a.replace("{t}", str(tmp_path)) for a in args])
    assert r.returncode == 2, r.stderr
    assert message in r.stderr, r.stderr
    assert "TORCH False" in r.stderr  # nothing heavy was loaded to find out


def test_a_point_inside_an_exif_rotated_image_is_upright(tmp_path, no_models):
    """The point is checked against the upright image, as the heatmaps read it: a 40 x 20 file
    stored sideways (EXIF orientation 6) is 20 wide and 40 high."""
    from click.testing import CliRunner

    from ovseg.cli import main

    im = Image.fromarray(np.zeros((20, 40, 3), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    im.save(tmp_path / "side.jpg", exif=exif)
    r = CliRunner().invoke(main, ["coherence", str(tmp_path / "side.jpg"), "--point", "30,5", "-b", "dinov2-b",
                                  "--out", str(tmp_path / "c.png")])
    assert r.exit_code == 2 and "20 x 40 pixels" in r.output, r.output


@pytest.mark.parametrize("out", ["/proc/ovseg-out", CHELSEA + "/out"])
def test_an_unwritable_out_is_found_before_torch(out):
    """Issue 31 item 7: it took ~2.3 s (checked after the settings, which import torch to read the
    backbone's defaults); now before them, as README says."""
    r = run(["label", CHELSEA, "-c", "cat", "--out", out])
    assert r.returncode == 2 and "Invalid value for '--out'" in r.stderr, r.stderr
    assert "TORCH False" in r.stderr
