"""End-to-end throughput of `ovseg label` (Segmenter.process_files) and where its time goes.

Random weights, no download: the backbone from `ovseg.testing.make_random_backbone` and the
labeler from `ovseg.testing.make_random_labeler` (size "full": SSD-1B + ConvNeXt-L, ~6.5 GB in
fp32; size "tiny": the test checkpoints, seconds). Synthetic JPEGs (smooth colour fields, 4:3,
long side 1.25 x the resolution, so decoding and resizing are real) and a 20-class vocabulary.

For each resolution and batch size:
- "stages": one serial pass over the images, every stage timed on its own (CUDA synchronised
  before each clock read): decode (+ resize), VAE, UNet encoder, affinity + cut, upsample + PAMR,
  CLIP dense, pooling + matching, encode + write; text embeddings once per vocabulary. The
  stages replay Segmenter._run / _cut step by step (keep them in step with ovseg/pipeline.py).
- "planted": random weights give unrealistic segment counts (1 or hundreds), so the cut and
  PAMR are timed again on planted features with K regions (default 20; capped by the grid).
- ``--features planted`` (default): the backbone still runs in full on every image (its cost is
  real), then its output is replaced by planted features of the same shape (K Voronoi regions,
  one of four layouts chosen from the image's pixels, so a rerun or another batch size gives the
  same features). Every later stage (cut, PAMR, pooling, write) then sees a realistic segment
  count, in "stages" and "end_to_end" alike. ``--features random`` keeps the random weights'
  own features (hundreds of segments: PAMR's cost grows with K). ``--features planted random``
  measures both with the models built once (``--random-images``: fewer images for random).
- ``--deadline`` (Unix time): no case starts after it, and the end-to-end pair of a case runs on
  as many of its images as the stage pass's rate says fit before it (benchmarks/gpu/run.py
  gives each step a time budget); skipped work is a "skipped" row, never a silent gap.
  Rows are appended to ``--jsonl`` as they are measured, so a run stopped from outside keeps them.
- "end_to_end": process_files on the same images, serial (overlap=False) and overlapped
  (overlap=True), measured in the same run, one after the other; images/s, peak host RSS
  (sampled every 10 ms) and peak CUDA memory; and whether the two wrote the same bytes.

    python benchmarks/pipeline.py --size tiny --images 16 --jsonl out.jsonl        # seconds
    python benchmarks/pipeline.py --size full --resolutions 512 1024 --batch-sizes 1 4 8 \\
        --images 16 --device cuda --dtype float16 --jsonl docs/benchmarks-pipeline.jsonl
    python benchmarks/pipeline.py --size full --resolutions 1024 --batch-sizes 1 8 --images 32 \\
        --features planted random --random-images 8 --device cuda --dtype float16   # benchmarks/gpu
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import numpy as np  # noqa: E402
import torch  # noqa: E402

VOCAB = ("person,dog,cat,car,bus,bicycle,tree,grass,sky,road,building,wall,floor,table,chair,sofa,"
         "bottle,plant,water,window")  # 20 classes
STAGES = ("decode", "vae", "unet", "cut", "pamr", "clip_dense", "pool_match", "write")


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakRSS:
    """Peak resident memory (MiB) of this process while the block runs, sampled every 10 ms."""

    def __enter__(self):
        self.peak, self._stop = _rss_mb(), threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, _rss_mb())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cuda_peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _cuda_peak_mb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


class Timer:
    """Seconds per stage, CUDA synchronised before each clock read."""

    def __init__(self, device: torch.device):
        self.device, self.total = device, {s: 0.0 for s in STAGES}

    @contextmanager
    def __call__(self, stage: str):
        _sync(self.device)
        t0 = time.perf_counter()
        yield
        _sync(self.device)
        self.total[stage] += time.perf_counter() - t0


def make_images(folder: Path, n: int, resolution: int, seed: int = 0) -> list[Path]:
    """n JPEGs, 4:3, long side 1.25 x resolution: smooth colour fields with a little noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    w = int(resolution * 1.25)
    h = w * 3 // 4
    paths = []
    for i in range(n):
        coarse = rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)
        img = np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC)).astype(np.int16)
        img = np.clip(img + rng.integers(-12, 13, img.shape), 0, 255).astype(np.uint8)
        paths.append(folder / f"img{i:03d}.jpg")
        Image.fromarray(img).save(paths[-1], quality=90)
    return paths


def planted_features(h: int, w: int, k: int, dim: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(dim, h, w) features of k Voronoi regions (noisy centroids) and their (h, w) labels."""
    g = torch.Generator().manual_seed(seed)
    seeds = torch.rand(k, 2, generator=g) * torch.tensor([h, w])
    yy, xx = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    d = (yy[None] - seeds[:, 0, None, None]) ** 2 + (xx[None] - seeds[:, 1, None, None]) ** 2
    labels = torch.unique(d.argmin(0), return_inverse=True)[1]  # dense ids of the regions present
    centroids = 1.5 * torch.randn(dim, generator=g) + torch.randn(int(labels.max()) + 1, dim, generator=g)
    # noise 0.4: the cut finds the k regions (0.6 over-segmented a 16x16 grid: 107-144 segments for 20)
    feats = centroids[labels] + 0.4 * torch.randn(h, w, dim, generator=g)
    return feats.permute(2, 0, 1).contiguous(), labels


def plant_outputs(backbone, k: int) -> None:
    """Benchmark only: run ``backbone`` in full, then return planted features of its output's
    shape (K regions; the layout, one of four, is chosen from each image's pixels).
    ``unplant(backbone)`` restores its own output."""
    real, layouts = backbone.forward, {}

    def forward(images, *args, **kwargs):
        feats = real(images, *args, **kwargs)
        _, C, h, w = feats.shape
        out = []
        for image in images:
            seed = int(image.double().sum().item() * 1000) % 4  # same image -> same layout
            if (C, h, w, seed) not in layouts:
                layouts[C, h, w, seed] = planted_features(h, w, min(k, h * w), C, seed=seed)[0]
            out.append(layouts[C, h, w, seed])
        return torch.stack(out).to(feats.device, feats.dtype)

    backbone.forward = forward
    backbone._unplanted_forward = real


def unplant(backbone) -> None:
    """Undo ``plant_outputs``: the backbone's own features again (no-op if not planted)."""
    real = backbone.__dict__.pop("_unplanted_forward", None)
    if real is not None:
        backbone.forward = real


def build_segmenter(args, resolution: int, batch: int, models: dict):
    from ovseg.pipeline import Segmenter

    from ovseg.pipeline import Models

    return Segmenter(resolution=resolution, batch_size=batch, device=args.device, dtype=args.dtype, cache=False,
                     models=Models(backbone=models["backbone"], labeler=models["labeler"]))


def load_models(args) -> dict:
    from ovseg.settings.devices import torch_dtype as _torch_dtype
    from ovseg.testing import make_random_backbone, make_random_labeler

    device = torch.device(args.device)
    t0 = time.perf_counter()
    backbone = make_random_backbone("ssd-1b", size=args.size, device=device, dtype=_torch_dtype(args.dtype)).eval()
    labeler = make_random_labeler(size=args.size, device=device,
                                  dtype=_torch_dtype(args.dtype) if device.type == "cuda" else None)
    if device.type == "cpu":
        from ovseg.masks import pamr_kernel as _pamr_kernel

        _pamr_kernel.kernel()  # PAMR's Numba kernel compiled or loaded here, not in the first image's time
    return {"backbone": backbone, "labeler": labeler, "build_s": time.perf_counter() - t0}


def run_stages(seg, paths: list[Path], vocab, out_dir: Path, timer: Timer, deadline: float | None = None) -> tuple[int, int]:
    """One serial pass, stage by stage (the public stages `Segmenter.run` calls, `ovseg.pipeline.stages`,
    each timed), stopping between batches once ``deadline`` (Unix time) has passed. Returns
    (segment count, images done)."""
    from ovseg import io as _io
    from ovseg.pipeline import stages

    cfg, backbone, labeler = seg.config, seg.backbone, seg.labeler
    settings, names, segments, done = cfg.segment_settings(), list(vocab.names), 0, 0
    refine = stages.pamr_settings(cfg)
    vae = backbone.encode_latents

    def timed_vae(images):
        with timer("vae"):
            return vae(images)

    backbone.encode_latents = timed_vae
    try:
        for chunk in _io.iter_batches(paths, cfg.batch_size):
            if deadline is not None and done and time.time() > deadline:
                break
            with timer("decode"):
                arrays = [_io.read_image(p, max_pixels=cfg.max_pixels)[0] for p in chunk]
                prepared = [seg.prepare(a) for a in arrays]
            with torch.inference_mode():
                with timer("unet"):  # minus the VAE below
                    feats, walks = stages.extract(backbone, torch.stack([p[0] for p in prepared]).to(seg.device),
                                                  method=cfg.method, attention_layers=cfg.attention_layers)
                maps = []
                with timer("cut"):
                    trees = stages.build_tree(feats, walks, method=cfg.method, **stages.method_options(cfg))
                for f, tree, (_, work) in zip(feats, trees, prepared):
                    with timer("cut"):
                        low, _ = stages.cut(tree, cfg.tau)
                    with timer("pamr"):
                        maps.append(stages.refine(f, low, work, refine))
                with timer("clip_dense"):
                    dense = labeler.dense_features_batch([w for _, w in prepared], batch_size=cfg.batch_size)
                labels = []
                with timer("pool_match"):
                    for (_, work), m, d in zip(prepared, maps, dense):
                        ids, emb = labeler.pool_segments(work, torch.from_numpy(m), features=d)
                        labs = labeler.classify_embeddings(emb, vocab, segment_ids=ids.tolist(), top_k=cfg.top_k)
                        labels.append({int(x.segment_id): x for x in labs})
            with timer("write"):
                for path, array, m, lab in zip(chunk, arrays, maps, labels):
                    result = stages.assemble(array, m, labels=lab, names=names, settings=settings, source=str(path))
                    full = result.segment_map
                    outs = _io.output_paths(path, out_dir, "label")
                    result.save_png(outs["png"])
                    result.save_overlay(outs["overlay"])
                    result.save_json(outs["json"], label_png=outs["png"].name)
                    segments += int(full.max()) + 1
            done += len(chunk)
    finally:
        backbone.encode_latents = vae
    timer.total["unet"] -= timer.total["vae"]
    return segments, done


def run_planted(seg, resolution: int, k: int, repeat: int, timer: Timer) -> dict:
    """The cut and PAMR on planted features with k regions, at this resolution's grid and work size."""
    from ovseg.masks import PAMRConfig, refine_segments, segment_features

    cfg, backbone = seg.config, seg.backbone
    side = resolution // backbone.stride
    k = min(k, side * side)
    feats, labels = planted_features(side, side, k, backbone.feature_dim)
    feats = feats.to(seg.device)
    h, w = resolution * 3 // 4, resolution  # the work size of a 4:3 image
    image = torch.rand(3, h, w, generator=torch.Generator().manual_seed(1))
    refine = PAMRConfig(iterations=cfg.refine_iterations, dilations=cfg.refine_dilations) if cfg.refine else None
    found = 0
    for _ in range(repeat):
        with timer("cut"):
            found = int(segment_features(feats, alpha=cfg.alpha, tau=cfg.tau).max()) + 1
        with timer("pamr"):
            refine_segments(feats, labels.to(seg.device), image, refine=refine)
    return {"planted_k": int(labels.max()) + 1, "cut_found_k": found, "grid": [side, side], "work": [h, w],
            "cut_ms": 1000 * timer.total["cut"] / repeat, "pamr_ms": 1000 * timer.total["pamr"] / repeat}


def run_end_to_end(args, resolution: int, batch: int, models: dict, paths: list[Path], tmp: Path,
                   features: str) -> list[dict]:
    """process_files on ``paths``, serial then overlapped: two end_to_end rows."""
    rows, outputs = [], {}
    device = torch.device(args.device)
    for overlap in (False, True):
        seg = build_segmenter(args, resolution, batch, models)
        seg = type(seg)(seg.config, overlap=overlap, models=seg.models)
        out = tmp / f"e2e-{features}-{resolution}-{batch}-{overlap}"
        _cuda_peak_reset(device)
        with PeakRSS() as rss:
            _sync(device)
            t0 = time.perf_counter()
            summary = seg.process_files(paths, out, classes=VOCAB, progress=False)
            _sync(device)
            wall = time.perf_counter() - t0
        if summary.failed:
            raise RuntimeError(f"end-to-end run failed: {summary.failed[:3]}")
        outputs[overlap] = {p.name: p.read_bytes() for p in out.iterdir()}
        rows.append({"kind": "end_to_end", "mode": "overlapped" if overlap else "serial", "wall_s": wall,
                     "images": len(summary.done), "images_per_s": len(summary.done) / wall,
                     "peak_rss_mb": rss.peak, "peak_cuda_mb": _cuda_peak_mb(device)})
    rows[1]["speedup_vs_serial"] = rows[0]["wall_s"] / rows[1]["wall_s"]
    rows[1]["same_bytes_as_serial"] = outputs[True] == outputs[False]
    return rows


def set_features(backbone, features: str, k: int) -> None:
    """--features: planted (the backbone's output replaced, see plant_outputs) or random (its own)."""
    unplant(backbone)
    if features == "planted":
        plant_outputs(backbone, k)


def main(argv=None, on_row=None) -> list[dict]:
    """The benchmark; returns its rows (each also passed to ``on_row`` as it is measured)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=["full", "tiny"], default="full")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default=None,
                        help="backbone (and, on CUDA, labeler) precision; default: the backbone's (fp16 on CUDA)")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--random-images", type=int, default=None,
                        help="images of the --features random cases (default: --images)")
    parser.add_argument("--resolutions", type=int, nargs="+", default=None, help="default: 512 1024 (tiny: 64 128)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--planted-k", type=int, default=20, help="regions of the planted cut/PAMR run (10-30)")
    parser.add_argument("--planted-repeat", type=int, default=2)
    parser.add_argument("--features", choices=["planted", "random"], nargs="+", default=["planted"],
                        help="planted: the backbone runs, then its output is replaced by planted features "
                             "with --planted-k regions (realistic segment counts); random: its own output; "
                             "both: one after the other, models built once")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--deadline", type=float, default=None,
                        help="Unix time: start no case after it, fit the end-to-end pair before it")
    parser.add_argument("--jsonl", type=Path, default=None, help="append one JSON row per measurement")
    args = parser.parse_args(argv)
    resolutions = args.resolutions or ([64, 128] if args.size == "tiny" else [512, 1024])
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows: list[dict] = []

    def emit(row: dict) -> None:
        rows.append(row)
        _print(row)
        if args.jsonl:
            with open(args.jsonl, "a") as f:
                f.write(json.dumps(row) + "\n")
        if on_row is not None:
            on_row(row)

    def left() -> float:
        return float("inf") if args.deadline is None else args.deadline - time.time()

    with tempfile.TemporaryDirectory(prefix="ovseg-bench-") as tmp:
        tmp = Path(tmp)
        os.environ["OVSEG_CACHE"] = str(tmp / "cache")  # nothing persists; text embeddings computed here
        with PeakRSS() as build_rss:
            models = load_models(args)
        meta = {"size": args.size, "device": str(device), "dtype": args.dtype or str(models["backbone"].dtype),
                "labeler_dtype": str(models["labeler"].dtype), "torch": torch.__version__,
                "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "load_avg": os.getloadavg()[0],
                "machine": platform.node(), "commit": _commit(),
                "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}
        emit({"kind": "build", **meta, "features": args.features, "build_s": models["build_s"],
              "peak_rss_mb": build_rss.peak})
        from ovseg.pipeline import Segmenter

        vocab = Segmenter.vocabulary(VOCAB)
        t0 = time.perf_counter()
        models["labeler"].text_embeddings(vocab)
        _sync(device)
        emit({"kind": "text_once", **meta, "classes": len(vocab), "templates": len(models["labeler"].templates),
              "seconds": time.perf_counter() - t0})
        for features in args.features:
            set_features(models["backbone"], features, args.planted_k)
            n_images = args.images if features == "planted" else (args.random_images or args.images)
            for res in resolutions:
                folder = tmp / f"images-{res}"
                folder.mkdir(exist_ok=True)
                paths = make_images(folder, max(args.images, args.random_images or 0), res)[:n_images]
                for batch in args.batch_sizes:
                    case = {**meta, "features": features, "images": n_images, "resolution": res, "batch": batch}
                    if left() <= 0:
                        emit({"kind": "skipped", **case, "reason": "deadline passed before the case started"})
                        continue
                    seg = build_segmenter(args, res, batch, models)
                    t0 = time.perf_counter()  # CUDA: a first batch of this shape untimed (kernel selection, allocations)
                    if device.type == "cuda":
                        run_stages(seg, paths[:batch], vocab, tmp / f"warmup-{features}-{res}-{batch}", Timer(device))
                    warmup = time.perf_counter() - t0
                    timer = Timer(device)
                    _cuda_peak_reset(device)
                    with PeakRSS() as rss:
                        t0 = time.perf_counter()
                        segments, done = run_stages(seg, paths, vocab, tmp / f"stages-{features}-{res}-{batch}",
                                                    timer, deadline=args.deadline)
                        wall = time.perf_counter() - t0
                    emit({"kind": "stages", **case, "images": done, "warmup_s": warmup, "wall_s": wall,
                          "images_per_s": done / wall, "segments_per_image": segments / done,
                          "ms_per_image": {s: 1000 * v / done for s, v in timer.total.items()},
                          "peak_rss_mb": rss.peak, "peak_cuda_mb": _cuda_peak_mb(device)})
                    # the end-to-end pair on as many images as fit before the deadline (whole batches)
                    fit = len(paths) if args.deadline is None else int(max(0.0, left()) / (2.5 * wall / done)) // batch * batch
                    e2e = paths[:min(len(paths), fit)]
                    if not e2e:
                        emit({"kind": "skipped", **case, "mode": "end_to_end",
                              "reason": f"{left():.0f} s left, a batch takes {wall / done * batch:.1f} s"})
                        continue
                    for row in run_end_to_end(args, res, batch, models, e2e, tmp, features):
                        emit({**case, **row})
                if features == "planted" and left() > 0:
                    seg = build_segmenter(args, res, 1, models)
                    emit({"kind": "planted", **meta, "resolution": res,
                          **run_planted(seg, res, args.planted_k, args.planted_repeat, Timer(device))})
        unplant(models["backbone"])
    return rows


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _print(row: dict) -> None:
    head = f"{row['kind']:<10} {str(row.get('features', '')):<7} {row.get('resolution', ''):>5} px  batch {row.get('batch', '-')}"
    if row["kind"] == "stages":
        stages = "  ".join(f"{s} {v:.0f}" for s, v in row["ms_per_image"].items())
        print(f"{head}  {row['images_per_s']:.2f} img/s  ms/img: {stages}  "
              f"segments/img {row['segments_per_image']:.1f}  peak RSS {row['peak_rss_mb']:.0f} MiB", flush=True)
    elif row["kind"] == "end_to_end":
        extra = (f"  x{row['speedup_vs_serial']:.2f} vs serial, same bytes: {row['same_bytes_as_serial']}"
                 if "speedup_vs_serial" in row else "")
        cuda = f"  peak CUDA {row['peak_cuda_mb']:.0f} MiB" if row["peak_cuda_mb"] is not None else ""
        print(f"{head}  {row['mode']:<10} {row['images_per_s']:.2f} img/s  peak RSS {row['peak_rss_mb']:.0f} MiB"
              f"{cuda}{extra}", flush=True)
    elif row["kind"] == "planted":
        print(f"{head}  planted K {row['planted_k']} (cut finds {row['cut_found_k']}) on {row['grid']} grid, "
              f"work {row['work']}: cut {row['cut_ms']:.0f} ms, upsample + PAMR {row['pamr_ms']:.0f} ms", flush=True)
    elif row["kind"] in ("build", "text_once"):
        print(f"{row['kind']:<10} {row.get('build_s', row.get('seconds', 0)):.1f} s", flush=True)
    else:
        print(f"{head}  {row['kind']}: {row.get('reason', '')}", flush=True)


if __name__ == "__main__":
    main()
