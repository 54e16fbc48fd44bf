#!/usr/bin/env bash
# On the GPU host (docs/gpu.md): bash benchmarks/gpu/run.sh [--dry-run] [run.py options]
# Installs the wheels of .whl/ that the host lacks into /tmp/site (no index, no dependencies),
# puts the checkout and /tmp/site on PYTHONPATH, prints versions and nvidia-smi, then runs
# benchmarks/gpu/run.py: about 8 minutes in all (7.5 for run.py, each step on its own budget;
# --dry-run: CPU, tiny models, under 3). Results: $OUT/results.jsonl and $OUT/run.log.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
DRY=0
for a in "$@"; do [ "$a" = "--dry-run" ] && DRY=1; done
OUT=${OUT:-$ROOT/out/gpu}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/run.log") 2>&1
read -r -a PY <<< "${PYTHON:-python3}"  # PYTHON="python -S": the host simulation (tests/project/test_gpu_script.py)
SITE=${OVSEG_GPU_SITE:-/tmp/site}
if [ "$DRY" = 1 ]; then  # 170 s on a quiet machine; a loaded one stretches it (run.py's budgets too)
    slack=$(awk -v l="$(cut -d' ' -f1 /proc/loadavg)" -v n="$(nproc)" 'BEGIN {s = l / n; print int(170 * (s < 1 ? 1 : s > 4 ? 4 : s))}')
    LIMIT=${OVSEG_GPU_LIMIT:-$slack}
else
    LIMIT=${OVSEG_GPU_LIMIT:-470}
fi
start=$(date +%s)
echo "== ovseg GPU run $(date -u +%FT%TZ), $([ "$DRY" = 1 ] && echo dry run || echo GPU run), limit ${LIMIT} s, out $OUT"

# 1. wheels: only those whose distribution the host does not already have
installed=""
if ls .whl/*.whl >/dev/null 2>&1; then
    todo=$("${PY[@]}" - .whl/*.whl <<'PYEOF'
import re, sys
from importlib import metadata
for path in sys.argv[1:]:
    name = re.sub(r"[-_.]+", "-", path.rsplit("/", 1)[-1].split("-")[0]).lower()
    try:
        metadata.version(name)  # the host has it: keep the host's
    except metadata.PackageNotFoundError:
        print(path)
PYEOF
)
    if [ -n "$todo" ]; then
        mkdir -p "$SITE"
        # shellcheck disable=SC2086
        if "${PY[@]}" -m pip --version >/dev/null 2>&1; then
            "${PY[@]}" -m pip install -q --no-index --no-deps --no-compile --disable-pip-version-check --target "$SITE" $todo \
                || echo "!! pip install into $SITE failed"
        else  # no pip: a wheel is a zip of site-packages
            for w in $todo; do "${PY[@]}" -m zipfile -e "$w" "$SITE" || echo "!! could not unpack $w"; done
        fi
        installed=$(for w in $todo; do basename "$w" | cut -d- -f1-2; done | tr '\n' ' ')
        echo "installed into $SITE: $installed"
    else
        echo "the host has every distribution of .whl/: nothing installed"
    fi
else
    echo "no .whl/ (run benchmarks/gpu/prepare.sh where there is network): using what is installed"
fi
export OVSEG_GPU_INSTALLED="$installed"
export PYTHONPATH="$ROOT:$SITE${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 MPLBACKEND=Agg
export NUMBA_CACHE_DIR=${NUMBA_CACHE_DIR:-/tmp/ovseg-numba} OVSEG_CACHE=${OVSEG_CACHE:-/tmp/ovseg-cache}
[ "$DRY" = 1 ] || export OVSEG_GPU_HOST=1

# 2. versions and the device
"${PY[@]}" - <<'PYEOF'
import importlib, sys
print("python", sys.version.split()[0], sys.executable)
for mod in ("torch", "torchvision", "diffusers", "transformers", "open_clip", "huggingface_hub", "timm",
            "numba", "numpy", "scipy", "PIL", "matplotlib", "pytest", "ovseg"):
    try:
        m = importlib.import_module(mod)
        print(f"  {mod:16s} {getattr(m, '__version__', '?'):12s} {m.__file__}")
    except Exception as err:
        print(f"  {mod:16s} MISSING: {type(err).__name__}: {err}")
import torch
print("  cuda", torch.cuda.is_available(), torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
PYEOF
command -v nvidia-smi >/dev/null && timeout 20 nvidia-smi || echo "(no nvidia-smi)"

# 3. the steps, in one process, under a hard limit (each step also has its own budget)
left=$(( LIMIT - ($(date +%s) - start) ))
[ "$left" -lt 60 ] && left=60  # (timeout 0 would mean no limit at all)
budget=$(( left - 15 ))
timeout -k 10 "$left" "${PY[@]}" benchmarks/gpu/run.py --out "$OUT" --budget "$budget" "$@"
rc=$?
[ "$rc" = 124 ] && echo "!! run.py hit the hard limit of ${left} s; the rows written so far are in $OUT/results.jsonl"
echo "== done in $(( $(date +%s) - start )) s, rc $rc; results: $OUT/results.jsonl"
exit $rc
