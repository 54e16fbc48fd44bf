"""README.md's Python snippets run as written, on tiny random checkpoints (CPU, offline).

The default weights are swapped for tiny ones by wrapping the model builders, and the snippets run
in a temporary folder holding `examples/`; nothing else in them is changed."""
import re
import shutil
from pathlib import Path

import pytest


README = Path(__file__).resolve().parents[2] / "README.md"


def _snippets() -> list[str]:
    """The README's Python blocks, less the `gradio_client` one: it talks to a running `ovseg demo`
    page, which tests/demo/test_demo.py starts and calls the same way."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    return [b for b in blocks if "gradio_client" not in b]


def test_readme_has_python_snippets():
    assert len(_snippets()) >= 2


def test_readme_snippets_run(tiny_weights, tmp_path, monkeypatch):
    import ovseg.features
    import ovseg.labels.labeler

    real_backbone, real_labeler = ovseg.features.create_backbone, ovseg.labels.labeler.create_labeler

    def backbone(name, *, weights=None, **kw):
        assert name == "ssd-1b"
        return real_backbone(name, weights=weights or tiny_weights["weights"], **kw)

    def labeler(*args, weights=None, **kw):
        return real_labeler(*args, weights=weights or tiny_weights["clip_weights"], **kw)

    monkeypatch.setattr(ovseg.features, "create_backbone", backbone)
    monkeypatch.setattr(ovseg.labels.labeler, "create_labeler", labeler)
    monkeypatch.setenv("OVSEG_CACHE", str(tmp_path / "cache"))
    shutil.copytree(README.parent / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    for code in _snippets():
        exec(compile(code, str(README), "exec"), scope)  # one scope: later snippets use `ovseg`
    assert (tmp_path / "chelsea.overlay.png").is_file()
    assert scope["segments"].shape[-2:] == scope["feats"].shape[-2:]


def test_readme_says_what_the_readme_install_gives():
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    tests = readme[readme.index("## Run the tests"):]
    tests = " ".join(tests[: tests.index("## From Python")].split())
    for count in re.finditer(r"\d+ passed", tests):  # every count says what it was measured with
        assert "every extra" in tests[count.start(): count.start() + 120], tests
    install = tests[: tests.index("Measured")]
    assert all(word in install for word in ("CUDA", "chromium", "CJK font", "skipped"))
