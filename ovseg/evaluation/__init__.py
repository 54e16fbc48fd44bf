"""Benchmarks: datasets in their standard layouts, the published protocols, reports.

    from ovseg.evaluation import evaluate, write_report
    result = evaluate("voc", predictor, root="data", out="eval/voc", settings={"model": "my-model"})
    print(result.miou); write_report(result, "eval/voc")

`predictor` maps image (3, H, W) float32 [0, 1] -> segment map (h, w) int64 (unsupervised
protocol) or class map (open-vocabulary protocol). See docs/evaluation.md for the exact rules.
"""
from ovseg.evaluation._datasets import IGNORE, DatasetSpec, Sample, get_dataset, list_datasets, register_dataset
from ovseg.evaluation._matching import match_segments, open_vocabulary_counts, unsupervised_counts
from ovseg.evaluation._metrics import EvaluationResult, iou_per_class, mean_iou
from ovseg.evaluation._report import markdown_table, write_report
from ovseg.evaluation._runner import evaluate

__all__ = [
    "IGNORE", "DatasetSpec", "EvaluationResult", "Sample", "evaluate", "get_dataset", "iou_per_class",
    "list_datasets", "markdown_table", "match_segments", "mean_iou", "open_vocabulary_counts",
    "register_dataset", "unsupervised_counts", "write_report",
]
