"""Scoring automatic names against a dataset's classes: each chosen bank name is mapped to a
dataset class by its words alone (docs/evaluation.md, "Automatic names").

A chosen name maps to the first dataset class (in the dataset's order) that (1) has it as its
display name, else (2) has it among its synonyms, else (3) shares any synonym with the name's
bank entry; otherwise it is "unmatched" and its segments count as no class (their pixels are
false negatives of their true class). Embedding similarity is deliberately not used to map names:
it disagrees with human judgement on over a third of cases in the 2026 open-ended segmentation
benchmark study.
"""
from __future__ import annotations

from ovseg.labels._vocabulary import Vocabulary, _key

UNMATCHED = -1


class NameMapper:
    """bank display name -> dataset class index (vocabulary index - offset), or UNMATCHED.

    vocabulary: the dataset's vocabulary (its synonyms are its classes' names); offset: vocabulary
    class i is dataset class i - offset (a class below 0 is no class); bank: the NameBank the
    names were chosen from (its synonyms widen the match).
    """

    def __init__(self, vocabulary: Vocabulary, bank, offset: int = 0) -> None:
        self.offset = offset
        self._display = {}
        self._synonym = {}
        for index, synonyms in enumerate(vocabulary.classes):
            self._display.setdefault(_key(synonyms[0]), index)
            for s in synonyms:
                self._synonym.setdefault(_key(s), index)
        self._bank = {_key(c[0]): c for c in bank.classes}
        self._cache: dict[str, int] = {}

    def __call__(self, name: str) -> int:
        key = _key(name)
        if key not in self._cache:
            self._cache[key] = self._map(key)
        return self._cache[key]

    def _map(self, key: str) -> int:
        index = self._display.get(key, self._synonym.get(key))
        if index is None:
            hits = [self._synonym[_key(s)] for s in self._bank.get(key, ()) if _key(s) in self._synonym]
            index = min(hits) if hits else None
        if index is None or index - self.offset < 0:
            return UNMATCHED
        return index - self.offset
