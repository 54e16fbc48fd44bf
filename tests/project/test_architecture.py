"""The layout's rules, checked on the source (issue 19): small pipeline modules, imports one way
(features -> masks -> labels -> pipeline -> cli/demo/evaluation/distributed), no import cycle,
no test or module reaching into a Segmenter's private names, and the public names of `ovseg`."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "ovseg"

# The layers, bottom up: a module never imports one of a higher layer, not even lazily inside a
# function. 0: the torch-free settings and the reading/writing helpers; 1-3: the stages below the
# join, in the order of the data; 4: the join; 5: its uses; 6: the command line on top of them.
LAYERS = [("ovseg.settings", "ovseg.io"),
          ("ovseg.features",), ("ovseg.masks",), ("ovseg.labels",), ("ovseg.pipeline",),
          ("ovseg.demo", "ovseg.evaluation", "ovseg.distributed", "ovseg.coherence", "ovseg.export"),
          ("ovseg.cli", "ovseg.commands")]
PRIVATE_USE = re.compile(r"\b(seg|segmenter|square|aspect)\._[a-z]")


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path = ROOT) -> dict[str, Path]:
    """{dotted name: file} for every module of the ovseg package under `root`."""
    return {module_name(p, root): p for p in sorted((root / "ovseg").rglob("*.py"))}


def imports(path: Path, name: str, known) -> list[tuple[str, int, bool]]:
    """(imported ovseg module, line, at module level) for each import in the file. `from a import b`
    counts as an import of a.b when that is a module, else of a; relative imports are resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    top = set()  # the import nodes at module level (under `if`/`try` too, but not in a def/class body)

    def walk_top(nodes):
        for node in nodes:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                top.add(id(node))
            elif isinstance(node, (ast.If, ast.Try, ast.With)):
                for field in ("body", "orelse", "finalbody", "handlers"):
                    for child in getattr(node, field, []):
                        walk_top(child.body if isinstance(child, ast.ExceptHandler) else [child])

    walk_top(tree.body)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            if target == "ovseg" or target.startswith("ovseg."):
                found.append((target, node.lineno, id(node) in top))
    return found


def import_graph(root: Path = ROOT) -> tuple[dict[str, set[str]], list[tuple[str, str, int, bool]]]:
    """(module-level import edges {module: {ovseg module}}, every import (module, target, line,
    module level)). An import of a module's own parent package is left out: Python imports the
    parents first anyway, so it closes no cycle."""
    known = modules(root)
    graph: dict[str, set[str]] = {name: set() for name in known}
    every = []
    for name, path in known.items():
        for target, line, at_top in imports(path, name, known):
            every.append((name, target, line, at_top))
            if at_top and target in known and target != name and not name.startswith(target + "."):
                graph[name].add(target)
    return graph, every


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle [a, b, ..., a] in `graph`, or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def layer(name: str) -> int | None:
    """The index in LAYERS of module `name` (None: not layered, e.g. ovseg.testing, ovseg.__main__).
    A top-level private module (ovseg/_x.py) not listed elsewhere is a shared helper (layer 0), so a
    new one is checked without an edit here."""
    for i, packages in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in packages):
            return i
    if name.count(".") == 1 and name.startswith("ovseg._") and not name.startswith("ovseg.__"):
        return 0
    return None


def upward_imports(every) -> list[str]:
    """Imports, at module level or inside a function, into a higher layer (features/masks/labels
    into the pipeline, the CLI, the demo, the evaluation or the Ray engine, masks into labels, ...)."""
    out = []
    for src, dst, line, _ in every:
        lo, hi = layer(src), layer(dst)
        if lo is not None and hi is not None and lo < hi:
            out.append(f"{src} imports {dst} (line {line})")
    return out


def private_uses(paths) -> list[str]:
    """Lines matching issue 19's grep (PRIVATE_USE): a variable named seg, segmenter, square or
    aspect followed by a dot and a private name."""
    hits = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):  # images, compiled files: grep skips them too
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if PRIVATE_USE.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    return hits


def line_count(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_segmenter_is_under_200_lines():
    assert line_count(PACKAGE / "pipeline" / "segmenter.py") < 200


def test_no_pipeline_module_over_300_lines():
    big = {p.name: line_count(p) for p in (PACKAGE / "pipeline").glob("*.py") if line_count(p) > 300}
    assert not big


def test_no_import_cycle():
    graph, _ = import_graph()
    assert find_cycle(graph) is None


def test_no_upward_import():
    _, every = import_graph()
    assert upward_imports(every) == []


def test_no_private_names_of_a_segmenter():
    paths = [p for p in [*PACKAGE.rglob("*"), *(ROOT / "tests").rglob("*")]  # every text file, as grep -r
             if p.is_file() and "__pycache__" not in p.parts]
    assert private_uses(paths) == []


def test_the_checks_can_fail(tmp_path):
    """Each check above, on a tiny planted package that breaks it."""
    pkg = tmp_path / "ovseg"
    for sub in ("", "features", "masks", "labels", "pipeline"):
        (pkg / sub).mkdir(parents=True, exist_ok=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "masks" / "_a.py").write_text("from ovseg.masks import _b\n")
    (pkg / "masks" / "_b.py").write_text("from . import _a\n")  # a cycle through a relative import
    (pkg / "features" / "_lazy.py").write_text("def f():\n    from ovseg.pipeline import stages\n")
    (pkg / "pipeline" / "stages.py").write_text("import ovseg.masks._a\nimport ovseg.labels\n")  # downward: fine
    (pkg / "labels" / "_x.py").write_text("import ovseg.masks._a\n")  # labels -> masks: fine
    (pkg / "io.py").write_text("if True:\n    from ovseg.pipeline import stages\n")
    graph, every = import_graph(tmp_path)
    assert find_cycle(graph) == ["ovseg.masks._a", "ovseg.masks._b", "ovseg.masks._a"]
    assert sorted(upward_imports(every)) == ["ovseg.features._lazy imports ovseg.pipeline.stages (line 2)",
                                             "ovseg.io imports ovseg.pipeline.stages (line 2)"]
    (pkg / "masks" / "_d.py").write_text("import ovseg.labels._x\n")  # masks -> labels: upward
    assert "ovseg.masks._d imports ovseg.labels._x (line 1)" in upward_imports(import_graph(tmp_path)[1])
    lazy = tmp_path / "ovseg" / "masks" / "_c.py"  # a lazy import closes no cycle at import time
    lazy.write_text("def f():\n    from ovseg.masks import _a\n")
    (pkg / "masks" / "_b.py").write_text("from ovseg.masks import _c\n")
    assert find_cycle(import_graph(tmp_path)[0]) is None
    planted = tmp_path / "t.py"
    planted.write_text("ok = seg.config\nbad = seg." + "_backbone\n")  # split: this file must pass too
    assert len(PRIVATE_USE.findall(planted.read_text())) == 1
    long = tmp_path / "long.py"
    long.write_text("x = 1\n" * 200)
    assert line_count(long) == 200  # so `< 200` fails on it


def test_public_names_of_ovseg():
    import ovseg

    public = dir(ovseg)
    for name in ("ModelLoadError", "SettingError", "list_vocabularies", "Segmenter", "SegmenterConfig",
                 "WeightsNotFoundError", "stages", "Models"):
        assert name in public and name in ovseg.__all__
        assert getattr(ovseg, name) is not None
    assert not [n for n in public if n.startswith("_") and not n.startswith("__")]  # no helper shows
    from ovseg.labels import list_vocabularies
    from ovseg.pipeline import ModelLoadError

    assert ovseg.ModelLoadError is ModelLoadError and ovseg.list_vocabularies is list_vocabularies
    with pytest.raises(AttributeError):
        ovseg.no_such_name  # noqa: B018


def test_at_most_five_modules_at_the_package_root():
    """The ground floor is grouped by job (issue 30): settings/, io/, commands/; only the entry
    points stay at the root."""
    assert len(sorted(PACKAGE.glob("*.py"))) <= 5, sorted(p.name for p in PACKAGE.glob("*.py"))
