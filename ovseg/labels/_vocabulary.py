"""Class vocabularies and prompt templates: the text side of naming, read from `prompts/`.

File format (see prompts/README.md): one class per line, synonyms separated by commas or
semicolons (`person,people` = `person;people`, as `-c "person;people"`), the first synonym being
the class's display name; `#` starts a comment; blank lines are skipped. Line i
(counting class lines from 0) is class index i, which the shipped benchmark files match to the
dataset's label ids.
"""
from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path


class VocabularyError(ValueError):
    """A vocabulary or template list that cannot be used, with the file and line that say why."""


def _prompts_dir() -> Path:
    return Path(str(files("ovseg") / "prompts"))


def _clean(name: str) -> str:
    """Display form: Unicode NFC, outer whitespace stripped, inner runs of whitespace to one space."""
    return " ".join(unicodedata.normalize("NFC", name).split())


def _key(name: str) -> str:
    """Comparison form for duplicate checks: `_clean` and case-folded ("Dog " == "dog")."""
    return _clean(name).casefold()


def _synonyms(text: str) -> list[str]:
    """The synonyms of one class: `;` separates them everywhere (the CLI's `-c "dog;puppy,cat"`,
    where `,` separates classes); inside a file line or a list entry `,` does too."""
    return text.replace(";", ",").split(",")


def _read_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) for each non-blank, non-comment line of a UTF-8 text file."""
    if not path.is_file():
        raise VocabularyError(f"{path}: no such file" + ("" if not path.exists() else " (a directory)"))
    data = path.read_bytes()
    if b"\x00" in data:
        raise VocabularyError(f"{path}: looks like a binary file (NUL byte at offset {data.index(0)}), "
                              "expected UTF-8 text with one class per line")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise VocabularyError(f"{path}:{line}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    out = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if line:
            out.append((number, line))
    return out


@dataclass(frozen=True)
class Vocabulary:
    """An ordered list of classes, each a tuple of synonyms (first = display name).

    A class is scored by the max similarity over its synonyms (METHOD.md section 6).
    """

    classes: tuple[tuple[str, ...], ...]
    name: str = "custom"  # where it came from: a shipped name, a file path, or "custom"

    def __post_init__(self) -> None:
        if not self.classes:
            raise VocabularyError(f"vocabulary {self.name!r} has no classes")
        seen: dict[str, int] = {}
        for index, synonyms in enumerate(self.classes):
            if not synonyms:
                raise VocabularyError(f"vocabulary {self.name!r}, class {index}: no name")
            for synonym in synonyms:
                if not isinstance(synonym, str) or not _clean(synonym):
                    raise VocabularyError(f"vocabulary {self.name!r}, class {index}: blank name {synonym!r}")
                key = _key(synonym)
                if key in seen:
                    where = "twice in the same class" if seen[key] == index else f"also in class {seen[key]}"
                    raise VocabularyError(
                        f"vocabulary {self.name!r}, class {index}: duplicate name {synonym!r} ({where})"
                    )
                seen[key] = index

    @classmethod
    def from_names(cls, names: Iterable[str | Sequence[str]], *, name: str = "custom") -> Vocabulary:
        """`["dog", "person;people", ("sofa", "couch")]`: a string is split into synonyms on
        semicolons or commas (`_synonyms`)."""
        if isinstance(names, str):
            raise TypeError("from_names takes a list of class names, not one string")
        classes = []
        for index, entry in enumerate(names):
            parts = _synonyms(entry) if isinstance(entry, str) else list(entry)
            for part in parts:
                if not isinstance(part, str):
                    raise TypeError(f"class {index}: names must be str, got {type(part).__name__}")
                if not _clean(part):
                    raise VocabularyError(f"vocabulary {name!r}, class {index}: blank name in {entry!r}")
            classes.append(tuple(_clean(p) for p in parts))
        return cls(tuple(classes), name=name)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> Vocabulary:
        """Read a vocabulary file; errors name the file and line."""
        path = Path(path).expanduser()
        lines = _read_lines(path)
        if not lines:
            raise VocabularyError(f"{path}: no classes (only blank or comment lines)")
        classes, first_line = [], {}
        for number, line in lines:
            parts = [_clean(p) for p in _synonyms(line)]
            if not all(parts):
                raise VocabularyError(f"{path}:{number}: blank name in {line!r} (stray comma or semicolon?)")
            for part in parts:
                if _key(part) in first_line:
                    raise VocabularyError(
                        f"{path}:{number}: duplicate name {part!r} (first on line {first_line[_key(part)]})"
                    )
                first_line[_key(part)] = number
            classes.append(tuple(parts))
        return cls(tuple(classes), name=str(path))

    @property
    def names(self) -> list[str]:
        """Display name of each class (its first synonym)."""
        return [synonyms[0] for synonyms in self.classes]

    def __len__(self) -> int:
        return len(self.classes)

    def __iter__(self):
        return iter(self.names)

    def __getitem__(self, index: int) -> str:
        return self.classes[index][0]

    def with_class(self, synonyms: Sequence[str]) -> Vocabulary:
        """A copy with one more class appended (e.g. the background), keeping indices stable."""
        return Vocabulary((*self.classes, tuple(_clean(s) for s in synonyms)), name=self.name)


# Shipped vocabularies: file stem in prompts/vocabularies, plus the spellings people use.
_ALIASES = {
    "pascal_voc": "voc", "voc21": "voc", "context": "pascal_context_59", "context59": "pascal_context_59",
    "context60": "pascal_context_60", "pascal_context": "pascal_context_59", "coco": "coco_object",
    "coco_stuff": "coco_stuff_171", "cocostuff": "coco_stuff_171", "cocostuff27": "coco_stuff_27",
    "ade20k": "ade20k_150", "ade": "ade20k_150", "ade150": "ade20k_150",
}


def list_vocabularies() -> list[str]:
    """Names accepted by `load_vocabulary` (the files in prompts/vocabularies)."""
    return sorted(p.stem for p in (_prompts_dir() / "vocabularies").glob("*.txt"))


def load_vocabulary(name: str | os.PathLike) -> Vocabulary:
    """A shipped vocabulary by name ("voc", "ade20k_150", ...), or a file path."""
    key = str(name).strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    path = _prompts_dir() / "vocabularies" / f"{key}.txt"
    if path.is_file():
        vocabulary = Vocabulary.from_file(path)
        return Vocabulary(vocabulary.classes, name=key)
    if Path(name).expanduser().is_file() or os.sep in str(name) or str(name).endswith(".txt"):
        return Vocabulary.from_file(name)
    raise VocabularyError(f"unknown vocabulary {name!r}; shipped: {', '.join(list_vocabularies())}, "
                          "or pass the path of a text file (one class per line)")


def list_templates() -> list[str]:
    shipped = sorted(p.stem for p in (_prompts_dir() / "templates").glob("*.txt"))
    return sorted({*shipped, "openai", "simple"})


def load_templates(name: str | os.PathLike | Sequence[str] = "vild") -> tuple[str, ...]:
    """Prompt templates with one "{}" each: "vild" (14, the default), "openai" (open_clip's 80
    ImageNet templates), "simple" (open_clip's 7), a file path, or a list of strings."""
    if not isinstance(name, (str, os.PathLike)):
        templates, where = [str(t) for t in name], "templates"
        lines = list(enumerate(templates, start=1))
    elif str(name) in ("openai", "simple"):  # open_clip ships these as lambdas: render them with "{}"
        import open_clip

        fns = open_clip.OPENAI_IMAGENET_TEMPLATES if name == "openai" else open_clip.SIMPLE_IMAGENET_TEMPLATES
        return tuple(fn("{}") for fn in fns)
    else:
        path = _prompts_dir() / "templates" / f"{name}.txt"
        path = path if path.is_file() else Path(name).expanduser()
        if not path.is_file() and os.sep not in str(name) and not str(name).endswith(".txt"):
            raise VocabularyError(f"unknown templates {name!r}; shipped: {', '.join(list_templates())}, "
                                  "or pass the path of a text file (one template per line)")
        lines, where = _read_lines(path), str(path)
    if not lines:
        raise VocabularyError(f"{where}: no templates")
    for number, template in lines:
        if template.count("{}") != 1 or template.replace("{}", "").count("{") or template.count("}") != 1:
            raise VocabularyError(f"{where}:{number}: template {template!r} must contain exactly one '{{}}'")
    return tuple(template for _, template in lines)


def load_background() -> tuple[str, ...]:
    """The VOC-style background class: "background" spelled out as stuff words (GroupViT/TCL/SCLIP)."""
    return Vocabulary.from_file(_prompts_dir() / "vocabularies" / "background.txt").classes[0]
