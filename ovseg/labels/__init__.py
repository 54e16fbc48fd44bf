"""segments -> names: vocabularies and prompt templates (`prompts/`), CLIP mask pooling."""
from ovseg.labels._classes import as_vocabulary
from ovseg.labels._vocabulary import (
    Vocabulary,
    VocabularyError,
    list_templates,
    list_vocabularies,
    load_background,
    load_templates,
    load_vocabulary,
)

# The labeler needs torch and open_clip: imported on first use so vocabularies stay light.
_LAZY = {"Labeler", "LabelerConfig", "SegmentLabel", "UNLABELED", "create_labeler", "semantic_map",
         "segments_by_class"}

__all__ = ["Vocabulary", "VocabularyError", "as_vocabulary", "list_templates", "list_vocabularies", "load_background",
           "load_templates", "load_vocabulary", *sorted(_LAZY)]


def __getattr__(name: str):
    if name in _LAZY:
        from ovseg.labels import labeler

        return getattr(labeler, name)
    raise AttributeError(f"module 'ovseg.labels' has no attribute {name!r}")
