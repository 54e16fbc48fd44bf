"""The GPU check in one process: CUDA tests, CUDA-vs-CPU correctness, throughput (docs/gpu.md).

    bash benchmarks/gpu/run.sh               # on the GPU host: installs .whl/, then runs this
    python benchmarks/gpu/run.py --dry-run   # the same steps on the CPU, tiny models, ~1-3 minutes

Steps, each with its own time budget (a step that overruns is stopped, and says so in its row):
  env          versions, the device, what was installed from .whl/
  cuda_tests   `pytest -m cuda` on the test files that hold CUDA tests (a child process)
  correctness  tiny models, the device against the CPU: features, every cut method, PAMR (torch
               path), the labeler, one `Segmenter.label` end to end (correctness.py)
  pipeline     benchmarks/pipeline.py at full size: 1024 px, batch 1 and 8, planted and random
               features (images/s end to end, per stage, peak memory, serial vs overlapped)
  cut          the cut alone, 32x32 and 64x64, per image and batched, on the device and the CPU
  imports      every distribution this process imported: on the host list, shipped, or neither
Everything goes to OUT/results.jsonl (one row per measurement, written as measured) and
OUT/run.log (run.sh tees the console there).
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

# seconds per step: (GPU run, dry run); the whole run also stops at --budget
BUDGETS = {"env": (20, 20), "cuda_tests": (60, 60), "correctness": (75, 60), "pipeline": (230, 60),
           "cut": (60, 30), "imports": (10, 10)}


class StepTimeout(BaseException):
    """A step ran past its budget (BaseException: the pipeline's per-image `except Exception` must
    not swallow it, as it does not swallow Ctrl-C)."""


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise StepTimeout in the main thread after ``seconds`` (SIGALRM; checked between bytecodes,
    so a long C call ends first)."""
    def fire(signum, frame):
        raise StepTimeout(f"over its {seconds:.0f} s budget")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, max(0.01, seconds))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class Recorder:
    """Rows to OUT/results.jsonl, flushed one by one."""

    def __init__(self, out: Path, dry_run: bool):
        self.path, self.dry_run, self.step = out / "results.jsonl", dry_run, None
        self.run = time.strftime("%Y-%m-%dT%H:%M:%S")  # rows of earlier runs in the file are kept
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, row: dict) -> None:
        row = {"run": self.run, "step": self.step, "dry_run": self.dry_run, "time": time.strftime("%H:%M:%S"), **row}
        with open(self.path, "a") as f:
            f.write(json.dumps(row, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- env --------------------------------------------------------------------------------------
def step_env(ctx) -> None:
    device = ctx.device
    versions = {}
    for mod in ("torch", "torchvision", "diffusers", "transformers", "open_clip", "huggingface_hub", "timm",
                "numba", "numpy", "scipy", "PIL", "safetensors", "accelerate", "triton", "pytest"):
        try:
            versions[mod] = getattr(__import__(mod), "__version__", "?")
        except Exception as err:  # noqa: BLE001 - reported, the run goes on
            versions[mod] = f"MISSING ({type(err).__name__}: {err})"
    row = {"kind": "env", "device": str(device), "python": sys.version.split()[0], "versions": versions,
           "cpu_count": os.cpu_count(), "machine": platform.node(), "commit": _commit(),
           "cuda_available": torch.cuda.is_available(), "torch_cuda": torch.version.cuda,
           "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
           "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32,
           "installed_from_whl": os.environ.get("OVSEG_GPU_INSTALLED", "").split()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        row.update(gpu=props.name, gpu_memory_gib=props.total_memory / 2**30,
                   capability=f"{props.major}.{props.minor}")
    ctx.emit(row)


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=ROOT, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        stamp = ROOT / ".whl" / "COMMIT"  # prepare.sh writes it: the host's copy may have no .git
        return stamp.read_text().strip() if stamp.is_file() else None


# ---- cuda tests -------------------------------------------------------------------------------
def cuda_test_files() -> list[str]:
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_*.py")
                  if "mark.cuda" in p.read_text())


def step_cuda_tests(ctx) -> None:
    files = cuda_test_files()
    xml = ctx.out / "cuda-tests.xml"
    flags = ["-S"] if sys.flags.no_site else []  # the host simulation (wheels.py simulate) runs without site
    cmd = [sys.executable, *flags, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", "-rA",
           f"--junitxml={xml}", *files]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=ctx.left() - 5)
        rc, text = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as err:
        rc, text = "timeout", (err.stdout or b"").decode(errors="replace") if isinstance(err.stdout, bytes) else str(err.stdout or "")
    (ctx.out / "cuda-tests.log").write_text(text)
    outcomes = _junit(xml)
    counts = {k: sum(1 for v in outcomes.values() if v == k) for k in ("passed", "failed", "error", "skipped")}
    ctx.emit({"kind": "cuda_tests", "files": files, "rc": rc, "seconds": time.perf_counter() - t0,
              **counts, "outcomes": outcomes, "summary": text.strip().splitlines()[-1:] if text.strip() else []})


def _junit(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    import xml.etree.ElementTree as ET

    out = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        kinds = {child.tag for child in case}
        out[name] = ("failed" if "failure" in kinds else "error" if "error" in kinds
                     else "skipped" if "skipped" in kinds else "passed")
    return out


_correctness = _load("gpu_correctness", HERE / "correctness.py")  # the correctness step's checks
step_correctness, cut_methods, registry_cut = (_correctness.step_correctness, _correctness.cut_methods,
                                               _correctness.registry_cut)


# ---- pipeline ---------------------------------------------------------------------------------
def step_pipeline(ctx) -> None:
    bench = _load("bench_pipeline", ROOT / "benchmarks" / "pipeline.py")
    if ctx.dry_run:
        argv = ["--size", "tiny", "--device", "cpu", "--resolutions", "64", "--batch-sizes", "1", "2",
                "--images", "4", "--random-images", "2", "--planted-repeat", "1"]
    else:
        argv = ["--size", "full", "--device", str(ctx.device), "--dtype", "float16", "--resolutions", "1024",
                "--batch-sizes", "1", "8", "--images", "32", "--random-images", "8", "--planted-repeat", "3"]
    argv += ["--features", "planted", "random", "--deadline", str(ctx.deadline - 10)]
    bench.main(argv, on_row=ctx.emit)  # its rows keep their kinds (build, stages, end_to_end, ...)


# ---- the cut alone ----------------------------------------------------------------------------
def step_cut(ctx) -> None:
    bench = _load("bench_pipeline", ROOT / "benchmarks" / "pipeline.py")
    sides, dim, batch, repeat = ((16, 32), 64, 2, 1) if ctx.dry_run else ((32, 64), 1280, 8, 3)
    for side in sides:
        feats = torch.stack([bench.planted_features(side, side, 20, dim, seed=s)[0] for s in range(batch)])
        for method in cut_methods():
            for where in ([ctx.device, torch.device("cpu")] if ctx.device.type != "cpu" else [ctx.device]):
                x = feats.to(where)

                def per_image():
                    return [registry_cut(method, f[None])[0] for f in x]

                modes = {"per_image": per_image}
                if where == ctx.device:  # the registry's build on (B, C, h, w): a method may batch there
                    modes["batched"] = lambda: registry_cut(method, x)
                if where.type == "cpu":  # one image per thread (the cut is serial per image)
                    def threads():
                        with ThreadPoolExecutor(batch) as pool:
                            return list(pool.map(lambda f: registry_cut(method, f[None])[0], x))
                    modes["cpu_threads"] = threads
                for mode, fn in modes.items():
                    if ctx.left() < 5:
                        ctx.emit({"kind": "cut", "side": side, "method": method, "device": str(where), "mode": mode,
                                  "skipped": "step budget spent"})
                        continue
                    fn()  # warm-up (and the segment count)
                    if where.type == "cuda":
                        torch.cuda.reset_peak_memory_stats(where)
                    times = []
                    for _ in range(repeat):
                        _sync(where)
                        t0 = time.perf_counter()
                        out = fn()
                        _sync(where)
                        times.append(time.perf_counter() - t0)
                    ms = 1000 * float(np.median(times)) / batch
                    ctx.emit({"kind": "cut", "side": side, "method": method, "device": str(where), "mode": mode,
                              "batch": batch, "feature_dim": dim, "repeat": repeat, "ms_per_image": ms,
                              "images_per_s": 1000 / ms, "spread_ms_per_image": [1000 * t / batch for t in times],
                              "segments": [int(o.max()) + 1 for o in out],
                              "peak_cuda_mb": torch.cuda.max_memory_allocated(where) / 2**20 if where.type == "cuda" else None})


# ---- imports ----------------------------------------------------------------------------------
def step_imports(ctx) -> None:
    """Which distributions this process imported, and where each came from: the host's own
    packages (host-packages.txt and what they require), the wheels of .whl/, or neither (a gap in
    the wheel plan)."""
    from importlib import metadata

    wheels = _load("gpu_wheels", HERE / "wheels.py")
    owners = metadata.packages_distributions()
    loaded = set()
    for name in list(sys.modules):
        top = name.split(".")[0]
        if top in sys.stdlib_module_names or top.startswith("_") or top in ("ovseg", "bench_pipeline", "gpu_wheels"):
            continue
        for dist in owners.get(top, []):
            loaded.add(wheels.canonical(dist))
    host = wheels.closure(wheels.host_packages())
    plan = set(wheels.plan()) if not ctx.on_host else {wheels.wheel_name(p) for p in (ROOT / ".whl").glob("*.whl")}
    ctx.emit({"kind": "imports", "loaded": sorted(loaded), "from_wheels": sorted(loaded & plan),
              "unaccounted": sorted(loaded - host - plan),
              "note": "unaccounted: imported here, but neither on the host list (with its requirements) nor "
                      "among the planned wheels. Either a gap in the plan, or an optional import that found "
                      "the package installed here (brotli, tried by urllib3): the host simply lacks it. The "
                      "strict check is the dry run on a simulated host (tests/project/test_gpu_script.py)"})


STEPS = {"env": step_env, "cuda_tests": step_cuda_tests, "correctness": step_correctness,
         "pipeline": step_pipeline, "cut": step_cut, "imports": step_imports}


class Context:
    def __init__(self, args):
        self.dry_run, self.out = args.dry_run, args.out
        self.device = torch.device("cpu" if args.dry_run else args.device)
        self.deadline = time.time()  # of the current step
        self.emit = Recorder(args.out, args.dry_run)
        self.on_host = bool(os.environ.get("OVSEG_GPU_HOST"))
        self.tmp = None

    def left(self) -> float:
        return self.deadline - time.time()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="every step on the CPU with tiny models, minutes")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or ROOT / "out" / "gpu"))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds for the whole run (default: 450; dry run 240)")
    parser.add_argument("--steps", nargs="+", choices=list(STEPS), default=list(STEPS))
    args = parser.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print("no CUDA device here: run with --dry-run, or on the GPU host", file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ctx = Context(args)
    # a loaded development machine: the dry run's budgets stretch with the load (up to 4x)
    slack = min(4.0, max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))) if args.dry_run else 1.0
    end = time.time() + (args.budget or (240 if args.dry_run else 450))
    failures = 0
    with tempfile.TemporaryDirectory(prefix="ovseg-gpu-") as tmp:
        ctx.tmp = tmp
        os.environ.setdefault("OVSEG_CACHE", str(Path(tmp) / "cache"))
        for name in args.steps:
            own = BUDGETS[name][1] * slack if args.dry_run else BUDGETS[name][0]
            seconds = min(own, end - time.time())
            ctx.emit.step = name
            if seconds <= 1:
                ctx.emit({"kind": "step", "status": "skipped", "reason": "the run's time budget is spent"})
                continue
            print(f"== {name} (budget {seconds:.0f} s)", flush=True)
            ctx.deadline = time.time() + seconds
            t0 = time.perf_counter()
            status, error = "done", None
            try:
                with time_limit(seconds):
                    STEPS[name](ctx)
            except StepTimeout as err:
                status, error = "timeout", str(err)
            except Exception as err:  # noqa: BLE001 - the next step still runs
                status, error = "error", f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=8)}"
            failures += status != "done"
            ctx.emit({"kind": "step", "status": status, "seconds": time.perf_counter() - t0, "error": error})
            print(f"== {name}: {status} in {time.perf_counter() - t0:.1f} s" + (f": {error}" if error else ""),
                  flush=True)
    summarize(ctx.emit.path, ctx.emit.run)
    return 1 if failures else 0


def summarize(path: Path, run_id: str) -> None:
    """A few lines for the console: step outcomes, failed checks, the throughput rows."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    run = [r for r in rows if r.get("run") == run_id]
    print("== summary")
    for r in run:
        if r["kind"] == "step":
            print(f"  step {r['step']:<12} {r['status']}")
        elif r["kind"] == "correctness":
            print(f"  check {r['check']:<18} ok={r['ok']}" + (f"  {r['error']}" if r.get("error") else ""))
        elif r["kind"] == "cuda_tests":
            print(f"  cuda tests: rc {r['rc']}, {r['passed']} passed, {r['failed']} failed, {r['skipped']} skipped")
        elif r["kind"] == "end_to_end":
            print(f"  {r['features']:<7} {r['resolution']} px batch {r['batch']} {r['mode']:<10} "
                  f"{r['images_per_s']:.2f} img/s, peak CUDA {r.get('peak_cuda_mb')} MiB")
        elif r["kind"] == "imports" and r["unaccounted"]:
            print(f"  imported, neither on the host nor shipped (a gap, or an optional import): {r['unaccounted']}")
    print(f"  rows: {path}")


if __name__ == "__main__":
    sys.exit(main())
