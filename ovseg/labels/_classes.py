"""One rule, for the CLI (`--classes`) and the API (`Segmenter.label(img, classes)`), turning what a
user gives as classes into a Vocabulary (prompts/README.md documents it):

    "dog,grass,sky"      names, split on commas ("person;people": synonyms of one class)
    "voc"                a shipped vocabulary's name: that vocabulary (`list_vocabularies()`)
    "voc,"               a trailing comma: one class named "voc"
    "classes.txt"        an existing file: a vocabulary file (one class per line)
    "missing.txt"        looks like a file (a path separator or a suffix) but is none: an error
    "vocc"               any other single word: one class name, with a warning when it is close
                         to a shipped vocabulary's name (in case that was meant)

Several strings at once (the CLI's `-c cat -c dog`, `joined_vocabulary`): each read by this
rule, their classes one after the other (a name given twice is an error, as in one string).
"""
from __future__ import annotations

import difflib
import os
import warnings
from pathlib import Path
from typing import Sequence

from ovseg.settings.checks import looks_like_file
from ovseg.labels._vocabulary import Vocabulary, VocabularyError, list_vocabularies, load_vocabulary

__all__ = ["as_vocabulary", "joined_vocabulary"]


def as_vocabulary(classes=None, *, vocab=None) -> Vocabulary:
    """`classes` (or `vocab`) as a Vocabulary, by the rule of the module docstring.

    classes: a Vocabulary; a list of names ("person;people" = synonyms); or a string (see above).
    vocab: a shipped vocabulary name or a vocabulary file; never read as a class name, so an
        unknown name is an error.
    Returns the Vocabulary; raises VocabularyError (a ValueError), KeyError for an unknown
    `vocab` name, or TypeError.
    """
    if (classes is None) == (vocab is None):
        raise TypeError("give exactly one of classes and vocab")
    if vocab is not None:
        return vocab if isinstance(vocab, Vocabulary) else load_vocabulary(vocab)
    if isinstance(classes, Vocabulary):
        return classes
    if isinstance(classes, (str, os.PathLike)):
        text = str(classes)
        if Path(text).expanduser().is_file():
            return Vocabulary.from_file(text)
        if looks_like_file(text):
            raise VocabularyError(f"{text}: no such vocabulary file")
        if "," not in text:
            try:
                return load_vocabulary(text)
            except (KeyError, ValueError, OSError):
                _warn_if_close(text)
        classes = text.split(",")
        if len(classes) > 1 and not classes[-1].strip():  # "voc,": one class named voc
            classes = classes[:-1]
    if isinstance(classes, Sequence):  # "person;people" (or "person,people") = synonyms
        return Vocabulary.from_names([str(c).strip().replace(";", ",") for c in classes])
    raise TypeError(f"classes must be names, a comma string or a Vocabulary, not {type(classes)}")


def joined_vocabulary(values: Sequence[str]) -> Vocabulary:
    """Several class strings (`--classes` repeated), each read by `as_vocabulary`'s rule, as one
    Vocabulary: their classes in the order given. Raises VocabularyError for a name in two of them."""
    if len(values) == 1:
        return as_vocabulary(values[0])
    parts = [as_vocabulary(v) for v in values]
    return Vocabulary(tuple(c for p in parts for c in p.classes), name="+".join(p.name for p in parts))


def _warn_if_close(text: str) -> None:
    close = difflib.get_close_matches(text.strip().lower().replace("-", "_"), list_vocabularies(),
                                      n=3, cutoff=0.75)
    if close:
        warnings.warn(f"{text!r} is taken as one class name; did you mean the shipped vocabulary "
                      f"{' or '.join(map(repr, close))}? (pass vocab=... / --vocab)", UserWarning, stacklevel=3)
