"""Cost of automatic naming (docs/auto-vocabulary.md): the bank's text embeddings, first time and
from the disk cache, and the per-image overhead of choosing names over naming with a fixed list.

    python benchmarks/auto_vocab_cost.py --size tiny               # seconds, any machine
    flock /tmp/ovseg-heavy.lock python benchmarks/auto_vocab_cost.py --size full   # ConvNeXt-L, random weights

Prints one line per measure. The per-image figures exclude the dense CLIP pass (common to both
paths, see benchmarks/clip_cost.py): `fixed_s` names the segments with a 3-class list whose text
embeddings are cached, `auto_s` chooses from the bank (text cached) and names with the choice.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--size", choices=["tiny", "full"], default="tiny")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--square", type=int, default=1024, help="the CLIP input side (DiffCut: the backbone's square)")
    p.add_argument("--segments", type=int, default=20)
    args = p.parse_args()
    os.environ["OVSEG_CACHE"] = tempfile.mkdtemp(prefix="ovseg-bench-cache-")  # a cold cache
    import torch

    from ovseg.labels import _text
    from ovseg.labels._auto import AutoConfig, bank_text, label_auto, load_bank
    from ovseg.testing import make_random_labeler

    labeler = make_random_labeler(size=args.size, disk_cache=True)
    bank = load_bank()
    n_names = sum(len(c) for c in bank.classes)
    t0 = time.perf_counter()
    bank_text(labeler, bank, progress=False)
    first = time.perf_counter() - t0
    _text.clear_memory_cache()
    t0 = time.perf_counter()
    bank_text(labeler, bank, progress=False)
    cached = time.perf_counter() - t0
    print(f"size={args.size} bank_entries={len(bank)} bank_names={n_names} templates={AutoConfig().templates} "
          f"first_s={first:.2f} from_disk_s={cached:.3f} threads={torch.get_num_threads()}", flush=True)

    image = torch.rand(3, args.square, args.square, generator=torch.Generator().manual_seed(0))
    segments = (torch.arange(args.square)[:, None] * args.segments // args.square).expand(-1, args.square).contiguous()
    with torch.inference_mode():
        t0 = time.perf_counter()
        feats = labeler.dense_features(image)
        dense = time.perf_counter() - t0
        fixed_vocab = ["cat", "floor", "wall"]
        ids, emb = labeler.pool_segments(image, segments, features=feats)
        labeler.classify_embeddings(emb, _vocab(fixed_vocab))  # text embeddings of the list, cached
        fixed, auto = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            ids, emb = labeler.pool_segments(image, segments, features=feats)
            labeler.classify_embeddings(emb, _vocab(fixed_vocab), segment_ids=ids.tolist())
            fixed.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            label_auto(labeler, image, segments, bank, features=feats, progress=False)
            auto.append(time.perf_counter() - t0)
    print(f"size={args.size} input={args.square}x{args.square} segments={args.segments} dense_s={dense:.2f} "
          f"fixed_s={statistics.median(fixed):.3f} auto_s={statistics.median(auto):.3f} "
          f"overhead_s={statistics.median(auto) - statistics.median(fixed):.3f} "
          f"fixed_runs={[round(t, 3) for t in fixed]} auto_runs={[round(t, 3) for t in auto]}", flush=True)


def _vocab(names):
    from ovseg.labels import Vocabulary

    return Vocabulary.from_names(names)


if __name__ == "__main__":
    main()
