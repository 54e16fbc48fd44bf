"""Issue 31 item 8: a leftover `gradio/` folder in the current folder, where gradio is not
installed, is a namespace package to Python; `ovseg demo` and `ovseg.demo.build_app` then give the
install hint (naming the folder), not `AttributeError: module 'gradio' has no attribute 'Blocks'`."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# gradio "not installed": a finder ahead of the others looks for it in the current folder only,
# where the stray folder makes it a namespace package (what Python does when no gradio is found)
HIDE = ("import importlib.machinery, os, sys\n"
        "class NoGradio:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'gradio' or name.startswith('gradio.'):\n"
        "            return importlib.machinery.PathFinder.find_spec(name, [os.getcwd()] if path is None else path)\n"
        "sys.meta_path.insert(0, NoGradio())\n")


def run(tmp_path, code: str) -> subprocess.CompletedProcess:
    (tmp_path / "gradio").mkdir()
    return subprocess.run([sys.executable, "-c", HIDE + code], capture_output=True, text=True, cwd=tmp_path,
                          timeout=120, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.parametrize("what", ["cli", "api"])
def test_a_stray_gradio_folder_gives_the_install_hint(tmp_path, what):
    if what == "cli":
        code = "from ovseg.cli import main\nmain(['demo'])\n"
    else:
        code = ("try:\n    from ovseg.demo import build_app\nexcept ImportError as err:\n"
                "    print(err, file=sys.stderr); sys.exit(3)\n")
    r = run(tmp_path, code)
    assert r.returncode == (1 if what == "cli" else 3), r.stderr
    assert 'the demo needs gradio: pip install "ovseg[demo]"' in r.stderr, r.stderr
    assert str(tmp_path / "gradio") in r.stderr and "AttributeError" not in r.stderr
