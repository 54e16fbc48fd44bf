"""Which wheels the GPU host lacks (benchmarks/gpu/prepare.sh; docs/gpu.md).

    python benchmarks/gpu/wheels.py plan          # "name==version" per missing distribution
    python benchmarks/gpu/wheels.py check .whl    # every planned distribution has a wheel there
    python benchmarks/gpu/wheels.py simulate DIR [NAME...]  # a site folder of only host + planned
                                                            # packages (less NAME...), for python -S

Needed: ovseg's dependencies (pyproject.toml) and pytest (the CUDA tests), with everything they
require, as the distributions installed here declare it (markers evaluated for Python 3.12 on
Linux x86-64). Present on the host: the packages of host-packages.txt and everything *they*
require. The plan is the difference, pinned to the versions installed here (the ones the tests
ran with); run.sh installs only those the host really lacks.
"""
from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
EXTRA_NEEDS = ("pytest",)  # not a runtime dependency, but run.sh runs the CUDA tests
# small pure-Python wheels shipped although a host package may bring them: pytest needs pygments,
# which reaches "present" here only through transformers -> typer -> rich (versions differ there)
ALSO_SHIP = ("pygments",)
# the host's torch (+cu130) brings its own CUDA wheels; nothing of ours may pull another torch
NEVER_SHIP = {"torch", "torchvision", "triton"}
TARGET = {"python_version": "3.12", "python_full_version": "3.12.0", "sys_platform": "linux",
          "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
          "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement(text: str) -> tuple[str, str]:
    """'name[extra] (>=1); marker' -> (canonical name, marker text or '')."""
    spec, _, marker = text.partition(";")
    name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec).group(1)
    return canonical(name), marker.strip()


def _marker_holds(marker: str) -> bool:
    if not marker:
        return True
    try:
        from packaging.markers import Marker
    except ImportError:  # packaging is everywhere pip is; without it, keep the requirement
        return "extra" not in marker
    return Marker(marker).evaluate(TARGET)


def requires(name: str) -> list[str]:
    """Canonical names a distribution installed here requires (no extras, Python 3.12 Linux)."""
    try:
        reqs = metadata.requires(name) or []
    except metadata.PackageNotFoundError:
        return []
    out = []
    for text in reqs:
        dep, marker = _requirement(text)
        if _marker_holds(marker):
            out.append(dep)
    return out


def closure(names) -> set[str]:
    todo, seen = [canonical(n) for n in names], set()
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(requires(name))
    return seen


def host_packages(path: Path = HERE / "host-packages.txt") -> dict[str, str | None]:
    """{canonical name: version or None} of host-packages.txt."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            out[canonical(name)] = version or None
    return out


def ovseg_requirements() -> list[str]:
    """The names in pyproject.toml's [project] dependencies."""
    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"^dependencies = \[(.*?)^\]", text, re.S | re.M).group(1)
    code = "\n".join(line.split("#")[0] for line in block.splitlines())  # comments may quote words
    return [_requirement(m)[0] for m in re.findall(r'"([^"]+)"', code)]


def plan() -> dict[str, str]:
    """{canonical name: version installed here} of the distributions the host lacks."""
    have = closure(host_packages())
    need = closure([*ovseg_requirements(), *EXTRA_NEEDS])
    out = {}
    for name in sorted((need - have - NEVER_SHIP) | set(ALSO_SHIP)):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            raise SystemExit(f"{name} is needed but not installed here: install it (pip install {name}) and rerun")
    return out


def wheel_name(path: str | Path) -> str:
    """Canonical distribution name of a wheel file (name-version-...whl)."""
    return canonical(Path(path).name.split("-")[0])


def simulate(directory: Path, without: tuple[str, ...] = ()) -> list[str]:
    """Fill ``directory`` with links to what the GPU host would have: the host packages (and their
    requirements) and the planned wheels, as installed here (their Python 3.11 builds stand in
    for the 3.12 wheels). ``python -S`` with only it and the checkout on PYTHONPATH then sees
    nothing else, so an import the plan misses fails as it would there (tests/project/test_gpu_script.py).
    ``without``: distributions left out (to see what breaks without them). Returns those linked."""
    directory.mkdir(parents=True, exist_ok=True)
    keep = sorted((closure(host_packages()) | set(plan())) - {canonical(n) for n in without})
    linked = []
    for name in keep:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # a requirement of a host package that is not installed here
        site = Path(dist.locate_file(""))
        tops = {f.parts[0] for f in dist.files or [] if f.parts and f.parts[0] != ".."}
        for top in tops:
            source, link = site / top, directory / top
            if source.exists() and not link.exists() and not top.endswith(".pth"):
                link.symlink_to(source)
        linked.append(name)
    return linked


def main(argv: list[str]) -> int:
    if argv[:1] == ["plan"]:
        for name, version in plan().items():
            print(f"{name}=={version}")
        return 0
    if argv[:1] == ["check"] and len(argv) == 2:
        have = {wheel_name(p) for p in Path(argv[1]).glob("*.whl")}
        lacking = sorted(set(plan()) - have)
        if lacking:
            print("no wheel for: " + ", ".join(lacking), file=sys.stderr)
            return 1
        return 0
    if argv[:1] == ["simulate"] and len(argv) >= 2:
        print(" ".join(simulate(Path(argv[1]), tuple(argv[2:]))))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
