"""Automatic naming: each image's vocabulary chosen from a large name bank (docs/auto-vocabulary.md).

No class list is given: per image, every bank name is ranked against the whole image's CLIP
embedding and against each segment's pooled embedding; the names that pass the presence test
below (at most `max_classes`) become that image's vocabulary, and the segments are then named
with it as with any vocabulary (`Labeler.classify_embeddings`, background included), so a
segment whose own best name did not pass takes the best of the names that did (the class-subset
effect of S2C2Seg).

Presence test (defaults in AutoConfig): a bank name is present when it is the best bank name of
at least one segment (cosine, max over its synonyms) and that segment covers at least `min_area`
of the image, or the whole image ranks the name among its `image_top` best. Names are ranked by
their best segment cosine and cut at `max_classes`. If no name passes (every segment small and
unsupported by the image), the largest segment's best name is kept, so every image gets a name.

The bank's text embeddings (one prompt template, `prompts/templates/bank.txt`) are computed once
per labeler, in batches with a progress bar, and cached on disk with the other class-name
embeddings (`ovseg/labels/_text.py`, "text-embeds"); the chosen vocabulary reuses those rows, so
an image costs no text-tower pass.

    bank = load_bank()                                  # the shipped bank (prompts/bank/names.txt)
    labels, chosen = label_auto(labeler, image, segments, bank)
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ovseg.labels._vocabulary import Vocabulary, VocabularyError, _clean, _key, _prompts_dir, _read_lines


@dataclass(frozen=True)
class AutoConfig:
    max_classes: int = 12  # names kept per image at most; a photo rarely shows more named regions
    min_area: float = 0.02  # a segment this large (fraction of the image) names itself
    image_top: int = 50  # ...a smaller one needs its name among the image's 50 best (of ~2,100)
    templates: str = "bank"  # prompt templates of the bank: one ("a photo of a {}."), cheap

    def __post_init__(self) -> None:
        if isinstance(self.max_classes, bool) or not isinstance(self.max_classes, int) or self.max_classes < 1:
            raise ValueError(f"max_classes must be a positive int, got {self.max_classes!r}")
        if not 0 <= self.min_area <= 1:
            raise ValueError(f"min_area must lie in [0, 1] (a fraction of the image), got {self.min_area}")
        if not isinstance(self.image_top, int) or self.image_top < 0:
            raise ValueError(f"image_top must be an int >= 0, got {self.image_top!r}")


@dataclass(frozen=True)
class NameBank:
    """The names automatic naming chooses from: classes (synonyms, display name first) and their
    kind ("thing", "stuff", or "" when the file does not say)."""

    classes: tuple[tuple[str, ...], ...]
    kinds: tuple[str, ...]
    name: str = "bank"

    def __len__(self) -> int:
        return len(self.classes)

    @property
    def vocabulary(self) -> Vocabulary:
        return Vocabulary(self.classes, name=self.name)

    def subset(self, indices) -> Vocabulary:
        return Vocabulary(tuple(self.classes[i] for i in indices), name=f"auto:{self.name}")

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> NameBank:
        """A bank file: the vocabulary format (one class per line, synonyms by commas, `#`
        comments), read leniently: blank lines are skipped, a name seen before is dropped, a line
        left with no new name is dropped. A trailing `# thing` or `# stuff` comment tags the line.
        Raises VocabularyError for a missing, binary or non-UTF-8 file, or one with no names."""
        path = Path(path).expanduser()
        lines = _read_lines(path)  # the file's errors (missing, binary, not UTF-8) are raised here
        raw = path.read_text(encoding="utf-8-sig").splitlines()
        classes, kinds, seen = [], [], set()
        for number, line in lines:
            names = []
            for part in line.split(","):
                name = _clean(part)
                if name and _key(name) not in seen:
                    seen.add(_key(name))
                    names.append(name)
            if names:
                comment = raw[number - 1].split("#", 1)[1] if "#" in raw[number - 1] else ""
                kind = comment.strip().split(";")[0].strip().lower()
                classes.append(tuple(names))
                kinds.append(kind if kind in ("thing", "stuff") else "")
        if not classes:
            raise VocabularyError(f"{path}: the name bank is empty (no names, only blank or comment lines)")
        return cls(tuple(classes), tuple(kinds), name=str(path))


_SHIPPED: dict[str, NameBank] = {}


def load_bank(path: str | os.PathLike | None = None) -> NameBank:
    """The shipped bank (None or "default": prompts/bank/names.txt) or a bank file (`NameBank.from_file`)."""
    if path is None or str(path) == "default":
        if "default" not in _SHIPPED:
            bank = NameBank.from_file(_prompts_dir() / "bank" / "names.txt")
            _SHIPPED["default"] = NameBank(bank.classes, bank.kinds, name="default")
        return _SHIPPED["default"]
    return NameBank.from_file(path)


@dataclass(frozen=True)
class ChosenName:
    """A name chosen for an image: its bank index, best segment cosine (`score`), the rank the
    whole image gives it (1 = best), how many segments took it as their best name, their area
    (fraction of the image), and its kind."""

    name: str
    index: int
    score: float
    image_rank: int
    segments: int
    area: float
    kind: str = ""

    def to_json(self) -> dict:
        return {"name": self.name, "score": round(self.score, 6), "image_rank": self.image_rank,
                "segments": self.segments, "area": round(self.area, 6), "kind": self.kind or None}


def choose_names(segment_cos: torch.Tensor, areas: torch.Tensor, image_cos: torch.Tensor,
                 config: AutoConfig = AutoConfig(), names=None, kinds=None) -> list[ChosenName]:
    """The presence test (module docstring).

    segment_cos (K, M) float: cosine of each segment with each bank class (max over synonyms);
    areas (K,) float: each segment's fraction of the image; image_cos (M,) float: the whole image.
    names, kinds: display name and kind per bank class (for the result).
    Returns the chosen names, best score first, at most config.max_classes.
    """
    K, M = segment_cos.shape
    if K == 0:
        return []
    best, nominee = segment_cos.max(dim=1)  # (K,): each segment's best bank class
    rank = 1 + (image_cos[None, :] > image_cos[:, None]).sum(1)  # (M,) 1 = the image's best
    passed = (areas >= config.min_area) | (rank[nominee] <= config.image_top)
    if not bool(passed.any()):
        passed = areas == areas.max()
    chosen: dict[int, list[int]] = {}
    for k in torch.nonzero(passed).flatten().tolist():
        chosen.setdefault(int(nominee[k]), []).append(k)
    out = []
    for m, members in chosen.items():
        # every segment that takes m as its best name counts for it (area, count), passed or not
        support = (nominee == m)
        out.append(ChosenName(
            name=names[m] if names is not None else str(m), index=m,
            score=float(best[members].max()), image_rank=int(rank[m]), segments=int(support.sum()),
            area=float(areas[support].sum()), kind=kinds[m] if kinds is not None else ""))
    out.sort(key=lambda c: (-c.score, c.index))
    return out[: config.max_classes]


def bank_text(labeler, bank: NameBank, config: AutoConfig = AutoConfig(), *, progress: bool = True):
    """(emb (S, D) float32, owner (S,) int64) of the bank's synonyms, computed once per labeler
    and cached (memory and disk, `Labeler.text_embeddings`)."""
    from ovseg.labels._vocabulary import load_templates

    return labeler.text_embeddings(bank.vocabulary, templates=load_templates(config.templates), progress=progress)


def _per_class(cos: torch.Tensor, owner: torch.Tensor, M: int) -> torch.Tensor:
    """(K, S) synonym cosines -> (K, M), each class the max over its synonyms."""
    out = cos.new_full((cos.shape[0], M), -torch.inf)
    return out.scatter_reduce(1, owner.expand_as(cos), cos, reduce="amax")


@torch.no_grad()
def label_auto(labeler, image: torch.Tensor, segments: torch.Tensor, bank: NameBank | None = None,
               config: AutoConfig = AutoConfig(), *, top_k: int = 3, threshold: float | None = None,
               background=None, features: torch.Tensor | None = None, progress: bool = True):
    """Choose an image's names from the bank, then name its segments with them.

    image (3, H, W) float in [0, 1]; segments (H, W) int64 ids (negative = ignore); bank: a
    NameBank (None: the shipped one); top_k, threshold, background: as `Labeler.label`;
    features: the image's `dense_features`, when already computed.
    Returns (labels: list[SegmentLabel] in increasing id order, chosen: list[ChosenName]); a
    label's class_index indexes the chosen names (len(chosen) = the background class).
    """
    from ovseg.labels.labeler import _check_segments, _with_background

    bank = load_bank() if bank is None else bank
    text, owner = bank_text(labeler, bank, config, progress=progress)
    feats = labeler.dense_features(image) if features is None else features
    segments = _check_segments(segments, image)
    ids, emb = labeler.pool_segments(image, segments, features=feats)
    if len(ids) == 0:
        return [], []
    _, whole = labeler.pool_segments(image, torch.zeros_like(segments), features=feats)  # the image
    counts = torch.stack([(segments == i).sum() for i in ids.tolist()]).float()
    areas = (counts / counts.sum()).cpu()
    cos = emb.to(text) @ text.T
    seg_cos = _per_class(cos, owner, len(bank)).cpu()
    img_cos = _per_class(whole.to(text) @ text.T, owner, len(bank))[0].cpu()
    chosen = choose_names(seg_cos, areas, img_cos, config, names=[c[0] for c in bank.classes], kinds=bank.kinds)
    vocabulary = bank.subset([c.index for c in chosen])
    rows = torch.cat([torch.nonzero(owner == c.index).flatten() for c in chosen])
    sub_owner = torch.cat([torch.full((int((owner == c.index).sum()),), j, dtype=torch.long)
                           for j, c in enumerate(chosen)]).to(owner.device)
    sub_text, sub_owner = text[rows], sub_owner
    full = _with_background(vocabulary, background)
    if len(full) > len(vocabulary):  # the background class's words, with the bank's templates
        from ovseg.labels._vocabulary import load_templates

        bg, _ = labeler.text_embeddings(Vocabulary((full.classes[-1],)), templates=load_templates(config.templates))
        sub_text = torch.cat([sub_text, bg.to(sub_text)])
        sub_owner = torch.cat([sub_owner, torch.full((len(bg),), len(vocabulary), dtype=torch.long,
                                                     device=sub_owner.device)])
    labels = labeler.classify_embeddings(emb, vocabulary, segment_ids=ids.tolist(), top_k=top_k,
                                         threshold=threshold, background=background, text=(sub_text, sub_owner))
    return labels, chosen


@dataclass(frozen=True)
class AutoVocabulary:
    """"Choose the names per image": what `Segmenter.label(image)` (no class list) and
    `vocab="auto"` stand for; the bank and the rule's settings."""

    bank: NameBank
    config: AutoConfig = AutoConfig()
    name: str = "auto"

    def record(self) -> dict:
        """What identifies the choice in a run record (the bank's names and the rule)."""
        import hashlib
        import json

        from ovseg.labels._vocabulary import load_templates

        blob = json.dumps([list(c) for c in self.bank.classes], ensure_ascii=False).encode("utf-8")
        return {"bank": self.bank.name, "bank_sha256": hashlib.sha256(blob).hexdigest()[:16],
                "bank_entries": len(self.bank), "max_classes": self.config.max_classes,
                "min_area": self.config.min_area, "image_top": self.config.image_top,
                "templates": list(load_templates(self.config.templates))}


def auto_vocabulary(bank: str | os.PathLike | NameBank | None = None, **options) -> AutoVocabulary:
    """An AutoVocabulary from a bank (None: the shipped one; a file; a NameBank) and AutoConfig options."""
    bank = bank if isinstance(bank, NameBank) else load_bank(bank)
    return AutoVocabulary(bank, AutoConfig(**{k: v for k, v in options.items() if v is not None}))
