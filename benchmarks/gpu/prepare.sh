#!/usr/bin/env bash
# Run on the development machine (with network to PyPI): download into .whl/ the wheels the
# offline GPU host lacks (benchmarks/gpu/wheels.py plan: ovseg's dependencies and pytest, minus
# what host-packages.txt lists and requires), for CPython 3.12 on manylinux x86-64, no
# dependencies resolved by pip (the plan is the whole list). Then copy the checkout with .whl/ to
# the GPU host and run `bash benchmarks/gpu/run.sh` there (docs/gpu.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
mkdir -p .whl
plan=$("$PY" benchmarks/gpu/wheels.py plan)
echo "wheels for the GPU host (CPython 3.12, manylinux x86-64):"
echo "$plan" | sed 's/^/  /'
# stale wheels of other versions would be installed too: keep only the planned ones
for f in .whl/*.whl; do
    [ -e "$f" ] || continue
    name=$(basename "$f" | cut -d- -f1 | tr 'A-Z_.' 'a-z--')
    version=$(basename "$f" | cut -d- -f2)
    echo "$plan" | grep -qx "$name==$version" || { echo "removing stale $f"; rm -f "$f"; }
done
# shellcheck disable=SC2086
"$PY" -m pip download -q --dest .whl --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
    --platform linux_x86_64 --platform any \
    $plan
"$PY" benchmarks/gpu/wheels.py check .whl
# the commit the wheels go with (the host's copy of the checkout may have no .git)
echo "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo +changes)" > .whl/COMMIT
# what run.sh will do there, here for CPython 3.12: every wheel installs (tags, no conflicts)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$PY" -m pip install -q --no-index --no-deps --target "$scratch" --only-binary=:all: \
    --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
    --platform linux_x86_64 --platform any .whl/*.whl
echo "all $(ls .whl/*.whl | wc -l) wheels install for CPython 3.12 (checked into a scratch folder)"
wheels=$(du -cb .whl/*.whl | tail -1 | cut -f1)
tree=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | awk '$2 == "total" {s += $1} END {print s + 0}')
ls -l .whl/*.whl | awk '{printf "  %8.2f MiB  %s\n", $5 / 1048576, $9}'
awk -v w="$wheels" -v t="$tree" 'BEGIN {
    printf "wheels: %.1f MiB; tracked files: %.1f MiB; together %.1f MiB (limit 64 MiB)\n", w/1048576, t/1048576, (w+t)/1048576
    exit (w + t >= 64 * 1048576) }' || { echo "over the 64 MiB the GPU host takes" >&2; exit 1; }
