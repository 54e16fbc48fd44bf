"""The join: image -> features -> segments -> names, as public stages and the Segmenter using them.

    segmenter.py  Segmenter: settings + models; segment(), label(), process_files()
    stages.py     prepare, extract, build_tree, cut, refine, name, assemble (public, documented)
    _models.py    Models: backbone + labeler built once, injectable
    _vocab.py     which names: a class list or automatic names (the one place that tells them apart)
    _files.py     images in, files out: read_inputs, plan_files, write_outputs
    _records.py   is this output current? run record, cache key settings, output status
    _results.py   SegmentationResult, Segment, RunSummary
    _runner.py    the file runner and the one retry policy (run_batch), for local and Ray runs
    SegmenterConfig lives in ovseg/settings/config.py (torch-free: the commands build their options from it)
"""
from ovseg.settings.checks import SettingError
from ovseg.pipeline import stages
from ovseg.settings.config import SegmenterConfig
from ovseg.pipeline._models import ModelLoadError, Models
from ovseg.pipeline._results import RunSummary, Segment, SegmentationResult
from ovseg.pipeline.segmenter import Segmenter

__all__ = ["ModelLoadError", "Models", "RunSummary", "Segment", "SegmentationResult", "Segmenter",
           "SegmenterConfig", "SettingError", "stages"]
