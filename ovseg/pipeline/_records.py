"""Is this output current? The run record an output carries, the segment cache's key settings,
and the status of existing outputs, in one place (the local and the Ray engine both ask here).

An output is reused only when its JSON's "record" equals what the run would write now
(`run_record`): the output format version, the segment settings, `max_pixels` and, when
labelling, the vocabulary. Segment-cache entries are keyed by `cache_settings` (see `ovseg.io.cache`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ovseg.features import backbone_info
from ovseg.io.cache import key_settings, weights_fingerprint
from ovseg.labels import load_templates
from ovseg.labels._auto import AutoVocabulary
from ovseg.settings.devices import resolve_device, resolve_dtype

__all__ = ["OUTPUT_FORMAT_VERSION", "cache_settings", "is_up_to_date", "output_status", "record_status",
           "run_record"]

# Bump when the JSON / PNG outputs change meaning: outputs written under another version are redone
# by `Segmenter.process_files` (see `output_status`).
OUTPUT_FORMAT_VERSION = 2
TEMPLATES = "vild"  # the labeler's prompt templates (prompts/templates/)


def run_record(config, vocab=None) -> dict:
    """What outputs made now with `config` (a SegmenterConfig) would record in their JSON's
    "record": the output format version, the segment settings, `max_pixels`, and for labelling
    the vocabulary (an `ovseg.labels.Vocabulary`: classes with their synonyms, prompt templates,
    labeler, its weights, top_k and CLIP settings)."""
    record = {"format_version": OUTPUT_FORMAT_VERSION, "task": "segment" if vocab is None else "label",
              "settings": config.segment_settings(), "max_pixels": config.max_pixels}
    if vocab is not None:
        clip = config.clip_weights
        if clip and Path(clip).expanduser().is_dir():
            clip = str(Path(clip).expanduser().resolve())
        record["vocabulary"] = {  # automatic names: the bank and the rule instead of a class list
            **({"auto": vocab.record()} if isinstance(vocab, AutoVocabulary)
               else {"classes": [list(syns) for syns in vocab.classes]}),
            "templates": list(load_templates(TEMPLATES)),
            "labeler": config.labeler, "labeler_pretrained": config.labeler_pretrained,
            "clip_weights": clip, "top_k": config.top_k,
            "clip_resolution": config.clip_resolution, "clip_normalize": config.clip_normalize,
            "clip_pooling": config.clip_pooling,
        }
    return record


def cache_settings(config) -> dict:
    """The segment cache's key settings (`ovseg.io.cache.key_settings`) for `config`: segment
    settings, device type, resolved dtype (float16 on CUDA, float32 elsewhere when dtype is None),
    a fingerprint of the backbone weights and the segment code version. Needs no model."""
    device = resolve_device(config.device)
    weights_id = weights_fingerprint(config.weights, backbone_info(config.backbone).repo_id)
    return key_settings(config.segment_settings(), device_type=device.type,
                        dtype=resolve_dtype(config.dtype, device), weights_id=weights_id)


def output_status(json_path: str | os.PathLike, record: dict, others=()) -> str:
    """Whether an image's outputs are up to date for a run that would write `record`.

    json_path: the image's JSON output, written last (so its presence marks the image done).
    record: what the run would record: output format version, segment settings, vocabulary
        (names, synonyms, templates, labeler) -- `Segmenter.run_record` builds it.
    others: the image's other outputs (PNGs), which must exist too.
    Returns "current" (skip it), "missing" (some output is absent or unreadable: do it) or
    "changed" (done, but with other settings, vocabulary or format: redo it).
    """
    json_path = Path(json_path)
    if not json_path.is_file() or not all(Path(p).is_file() for p in others):
        return "missing"
    try:
        text = json_path.read_text(encoding="utf-8")
    except OSError:
        return "missing"
    return record_status(text, record)


def record_status(json_text: str | None, record: dict) -> str:
    """`output_status` on the text of a JSON output (None: no file), for outputs that are not local
    files (e.g. in an object store): "current", "missing" (absent or unreadable) or "changed"."""
    if json_text is None:
        return "missing"
    try:
        data = json.loads(json_text)
    except ValueError:
        return "missing"
    if not isinstance(data, dict):
        return "missing"
    return "current" if data.get("record") == _jsonable(record) else "changed"


def is_up_to_date(json_path: str | os.PathLike, record: dict, others=()) -> bool:
    """True when `output_status(json_path, record, others)` is "current": the image can be skipped."""
    return output_status(json_path, record, others) == "current"


def _jsonable(value):
    """`value` as it reads back from JSON (tuples as lists, paths and other objects as strings)."""
    return json.loads(json.dumps(value, default=str))
