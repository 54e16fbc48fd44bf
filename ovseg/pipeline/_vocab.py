"""Which names a run gives: a class list (`ovseg.labels.as_vocabulary`, one rule for the CLI and
the API) or, with none, automatic names chosen per image from a name bank (`ovseg.labels._auto`,
docs/auto-vocabulary.md). The one place where `Segmenter` tells the two apart."""
from __future__ import annotations

from ovseg.labels._classes import as_vocabulary
from ovseg.pipeline import stages

__all__ = ["load_bank_text", "name_images", "resolve"]


def resolve(classes, vocab, auto):
    """classes / vocab as `as_vocabulary` reads them, or automatic names: `auto()` (the run's
    AutoVocabulary) when neither is given or vocab="auto"; an AutoVocabulary given is kept."""
    from ovseg.labels._auto import AutoVocabulary  # torch: imported on first use

    if isinstance(classes, AutoVocabulary) or isinstance(vocab, AutoVocabulary):
        return classes or vocab
    if classes is None and (vocab is None or (isinstance(vocab, str) and vocab == "auto")):
        return auto()
    return as_vocabulary(classes, vocab=vocab)


def load_bank_text(segmenter, vocab, *, progress=None) -> None:
    """Before a file run with automatic names: check the settings (bad ones stop before the
    labeler loads), then the bank's text embeddings, once or from the cache. Nothing otherwise."""
    from ovseg.labels._auto import AutoVocabulary, bank_text

    if isinstance(vocab, AutoVocabulary):
        segmenter.config.validate()
        bank_text(segmenter.labeler, vocab.bank, vocab.config, progress=progress)


def name_images(labeler, works: list, maps: list, vocab, *, top_k: int, batch_size: int):
    """Name the segments of a batch. works (3, h', w') float32 and maps (h', w') int64: the
    working images and their segment maps; vocab: a Vocabulary, an AutoVocabulary or None (no
    names; labeler unused). -> (per image {segment id: SegmentLabel}, per image the class names
    (None when not named), per image the JSON "auto_vocabulary" record (None unless automatic))."""
    from ovseg.labels._auto import AutoVocabulary

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
