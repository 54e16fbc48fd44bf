"""Write evaluation results as a Markdown table, CSV, JSON and a bar chart."""
from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path
from typing import Mapping

from ovseg.evaluation._metrics import EvaluationResult
from ovseg.io import atomic_write


def _as_dict(results: EvaluationResult | Mapping[str, EvaluationResult]) -> dict[str, EvaluationResult]:
    if isinstance(results, EvaluationResult):
        return {"": results}
    if not results:
        raise ValueError("no results to report")
    return dict(results)


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.1f}"


def markdown_table(results: EvaluationResult | Mapping[str, EvaluationResult]) -> str:
    """Per-class IoU (%) with one column per variant, mIoU in the last row."""
    results = _as_dict(results)
    first = next(iter(results.values()))
    heads = [v or "IoU (%)" for v in results]
    lines = [f"{first.dataset}, {first.protocol} protocol, {first.num_images} images", "",
             "| class | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(heads)]
    ious = [r.iou for r in results.values()]
    for i, name in enumerate(first.classes):
        lines.append(f"| {name} | " + " | ".join(_pct(iou[i]) for iou in ious) + " |")
    lines.append("| **mIoU** | " + " | ".join(f"**{_pct(r.miou)}**" for r in results.values()) + " |")
    for key in ("k_chosen", "tau_chosen"):  # what the cut chose per image (kway's K, tau=auto's tau)
        if any(key in r.settings for r in results.values()):
            lines.append(f"| *{key}, mean [min-max]* | " + " | ".join(_chosen(r.settings.get(key)) for r in results.values())
                         + " |")
    return "\n".join(lines) + "\n"


def _chosen(summary) -> str:
    if not summary:
        return ""
    return f"{summary['mean']:.3g} [{summary['min']:g}-{summary['max']:g}]"


def _slug(variant: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=-]+", "_", variant).strip("_")


def bar_chart(result: EvaluationResult, path: str | Path) -> Path:
    """Per-class IoU bars (classes without a defined IoU left blank), mIoU as a line."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    iou = [0.0 if math.isnan(v) else 100 * v for v in result.iou]
    width = max(6.0, 0.22 * len(iou) + 1.5)
    fig, ax = plt.subplots(figsize=(width, 4.0))
    ax.bar(range(len(iou)), iou, color="#4c72b0")
    if not math.isnan(result.miou):
        ax.axhline(100 * result.miou, color="#c44e52", linestyle="--", label=f"mIoU {100 * result.miou:.1f}")
        ax.legend(loc="upper right")
    ax.set_xticks(range(len(iou)))
    ax.set_xticklabels(result.classes, rotation=90, fontsize=7)
    ax.set_ylim(0, 100)
    ax.set_ylabel("IoU (%)")
    variant = result.settings.get("variant", "")
    ax.set_title(f"{result.dataset} ({result.protocol}){' ' + variant if variant else ''}")
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)
    return Path(path)


def write_report(results: EvaluationResult | Mapping[str, EvaluationResult], out: str | Path) -> dict[str, Path]:
    """Write results.md, results.csv, results.json and one iou[_variant].png under `out`."""
    results = _as_dict(results)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / "results.md", "csv": out / "results.csv", "json": out / "results.json"}
    _write_text(paths["markdown"], markdown_table(results))
    rows = io.StringIO(newline="")  # the CSV in memory, then one atomic write
    writer = csv.writer(rows)
    writer.writerow(["variant", "class", "iou", "tp", "fp", "fn"])
    for variant, r in results.items():
        for name, iou, tp, fp, fn in zip(r.classes, r.iou, *r.counts):
            writer.writerow([variant, name, "" if math.isnan(iou) else f"{iou:.6f}", tp, fp, fn])
        writer.writerow([variant, "mIoU", "" if math.isnan(r.miou) else f"{r.miou:.6f}", "", "", ""])
    _write_text(paths["csv"], rows.getvalue())
    _write_text(paths["json"], json.dumps([r.to_dict() for r in results.values()], indent=1))
    for variant, r in results.items():
        name = f"iou_{_slug(variant)}.png" if variant else "iou.png"
        paths[f"png:{variant}"] = bar_chart(r, out / name)
    return paths


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))  # whole or not at all
