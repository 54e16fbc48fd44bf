"""The coherence comparison as a table, CSV, JSON and a bar chart."""
from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

from ovseg.coherence._metrics import CoherenceScore
from ovseg.io import atomic_write


def _fmt(value: float | None) -> str:
    if value is None:
        return "not measured"
    return "nan" if math.isnan(value) else f"{value:.4f}"


def format_table(scores: Sequence[CoherenceScore]) -> str:
    """A plain-text table, one row per backbone."""
    header = ["backbone", "pair AUC", "cross AUC", "mIoU (cut)", "images", "same pairs", "other pairs",
              "sim same", "sim other"]
    rows = [[s.backbone, _fmt(s.auc), _fmt(s.cross_auc), _fmt(s.miou), str(s.images), str(s.positive_pairs),
             str(s.negative_pairs), _fmt(s.mean_positive), _fmt(s.mean_negative)] for s in scores]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                               for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def plot_scores(scores: Sequence[CoherenceScore], out: str | os.PathLike | None = None):
    """Bar chart: pair AUCs per backbone (chance = 0.5 dashed), and mIoU where measured."""
    import numpy as np
    from matplotlib.figure import Figure

    names = [s.backbone for s in scores]
    has_miou = any(s.miou is not None for s in scores)
    fig = Figure(figsize=((2.0 + 1.1 * len(scores)) * (2 if has_miou else 1), 3.6), dpi=100,
                 layout="constrained")
    axes = fig.subplots(1, 2 if has_miou else 1, squeeze=False)[0]
    x = np.arange(len(scores))
    axes[0].bar(x - 0.2, [s.auc for s in scores], width=0.4, color="tab:blue", label="same image")
    axes[0].bar(x + 0.2, [s.cross_auc for s in scores], width=0.4, color="tab:cyan",
                label="across images")
    axes[0].set_xticks(x, names)
    axes[0].axhline(0.5, color="grey", linestyle="--", linewidth=1, label="chance")
    axes[0].set_ylim(0, 1.18)  # headroom for the legend
    axes[0].set_ylabel("ROC AUC, same vs other class")
    axes[0].set_title("patch-pair separation")
    axes[0].legend(loc="upper center", ncols=3, fontsize=7, frameon=False)
    if has_miou:
        axes[1].bar(names, [s.miou if s.miou is not None else 0.0 for s in scores], color="tab:orange")
        axes[1].set_ylim(0, 1)
        axes[1].set_ylabel("mIoU (Hungarian-matched)")
        axes[1].set_title("mIoU through the cut")
    for ax in axes:
        ax.tick_params(axis="x", labelrotation=30)
    if out is not None:
        atomic_write(out, lambda f: fig.savefig(f, format="png"))
    return fig


def save_scores(scores: Sequence[CoherenceScore], out_dir: str | os.PathLike,
                stem: str = "coherence", meta: dict | None = None) -> dict[str, Path]:
    """Write `stem.csv`, `stem.json` (rows plus `meta`, e.g. the settings) and `stem.png`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {kind: out_dir / f"{stem}.{kind}" for kind in ("csv", "json", "png")}
    names = [f.name for f in fields(CoherenceScore)]
    handle = io.StringIO(newline="")  # the CSV in memory, then one atomic write
    writer = csv.DictWriter(handle, fieldnames=names)
    writer.writeheader()
    for s in scores:
        writer.writerow({k: ("" if v is None else json.dumps(v) if isinstance(v, dict) else v)
                         for k, v in s.to_dict().items()})
    atomic_write(paths["csv"], lambda f: f.write(handle.getvalue().encode("utf-8")))
    payload = {"scores": [_json_safe(s.to_dict()) for s in scores], "settings": meta or {}}
    text = json.dumps(payload, indent=2) + "\n"
    atomic_write(paths["json"], lambda f: f.write(text.encode("utf-8")))
    plot_scores(scores, paths["png"])
    return paths


def _json_safe(row: dict) -> dict:
    """NaN is not JSON: write it as null."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
