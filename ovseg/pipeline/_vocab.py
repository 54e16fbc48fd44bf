"""Which names a run gives: a class list (`ovseg.labels.as_vocabulary`, one rule for the CLI and
the API) or, with none, automatic names chosen per image from a name bank (`ovseg.labels._auto`,
docs/auto-vocabulary.md). The one place where `Segmenter` tells the two apart."""
from __future__ import annotations

from ovseg.labels._auto import AutoVocabulary, bank_text
from ovseg.labels._classes import as_vocabulary
from ovseg.pipeline import stages
from ovseg.settings.checks import automatic_names

__all__ = ["load_bank_text", "name_images", "resolve"]


def resolve(classes, vocab, auto):
    """classes / vocab as `as_vocabulary` reads them, or automatic names: `auto()` (the run's
    AutoVocabulary) when `ovseg.settings.checks.automatic_names` says so (neither is given, or
    vocab="auto": the one rule, the CLI's too); an AutoVocabulary given is kept."""
    if isinstance(classes, AutoVocabulary) or isinstance(vocab, AutoVocabulary):
        return classes or vocab
    if automatic_names(classes, vocab):
        return auto()
    return as_vocabulary(classes, vocab=vocab)


def load_bank_text(models, vocab, *, progress=None) -> None:
    """Before a file run with automatic names: the bank's text embeddings, once or from the cache,
    by the labeler of `models` (an `ovseg.pipeline.Models`, built now). Nothing otherwise."""
    if isinstance(vocab, AutoVocabulary):
        bank_text(models.labeler, vocab.bank, vocab.config, progress=progress)


def name_images(labeler, works: list, maps: list, vocab, *, top_k: int, batch_size: int):
    """Name the segments of a batch. works (3, h', w') float32 and maps (h', w') int64: the
    working images and their segment maps; vocab: a Vocabulary, an AutoVocabulary or None (no
    names; labeler unused). -> (per image {segment id: SegmentLabel}, per image the class names
    (None when not named), per image the JSON "auto_vocabulary" record (None unless automatic))."""
    if vocab is None:
        return [{} for _ in maps], [None for _ in maps], [None for _ in maps]
    if not isinstance(vocab, AutoVocabulary):  # one dense CLIP pass per batch, text embeddings once
        labels = stages.name(labeler, works, maps, vocab, top_k=top_k, batch_size=batch_size)
        names = list(vocab.names)
        return labels, [names for _ in maps], [None for _ in maps]
    labels, chosen = stages.name_auto(labeler, works, maps, vocab, top_k=top_k, batch_size=batch_size)
    records = [{"bank": vocab.bank.name, "max_classes": vocab.config.max_classes,
                "chosen": [c.to_json() for c in names]} for names in chosen]
    return labels, [[c.name for c in names] for names in chosen], records
