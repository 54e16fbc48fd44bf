"""Build prompts/bank/names.txt, the name bank of automatic naming, from dataset class lists.

The class lists are data files of public repositories (prompts/README.md names each, with its
commit); this script only reads the literal lists out of them (`ast.literal_eval`, nothing is
imported or run) and merges them:

    python prompts/bank/build_bank.py --lvis lvis_v1_categories.py --ade-full register_ade20k_full.py \
        --ade-panoptic register_ade20k_panoptic.py --mmdet-classes class_names.py \
        --out prompts/bank/names.txt

Sources, in merge order: LVIS v1 (1203 classes, with WordNet synonyms), COCO-Stuff 171 (our
prompts/vocabularies/coco_stuff_171.txt), ADE20K-full (847), Objects365 v1 (365; "a/b" names
give synonyms), OpenImages v6 boxable (601). Names are lower-cased, "_" becomes a space.

Merge rule (one entry per concept): a class joins the existing entry that already holds one of
its names (its display name first, else the first of its synonyms that matches), unless that
entry already holds a class of the same dataset (two classes of one dataset are two concepts);
otherwise it starts a new entry. A name belongs to one entry only: a synonym already held by
another entry is dropped. Classes are never chained: joining adds to one entry, so two entries
are never fused through a shared synonym.

Tag: "stuff" when any class of the entry is a stuff class of COCO-Stuff (its 91 stuff classes)
or of ADE20K's panoptic split (the 50 of its 150 classes with isthing 0, matched to the 847 by
name); otherwise "thing" (LVIS, Objects365 and OpenImages annotate objects with boxes/masks).
"""
from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _literal(path: Path, variable: str | None = None, function: str | None = None):
    """The literal assigned to `variable` (or returned by `function`) in a Python source file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if variable and isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == variable for t in node.targets):
            return ast.literal_eval(node.value)
        if function and isinstance(node, ast.FunctionDef) and node.name == function:
            for stmt in node.body:
                if isinstance(stmt, ast.Return):
                    return ast.literal_eval(stmt.value)
    raise SystemExit(f"{path}: no {variable or function + '()'} literal found")


def _norm(name: str) -> str:
    name = name.replace("_", " ").strip().lower()
    return re.sub(r"\s+", " ", name)


def _dedupe(names):
    out = []
    for n in names:
        n = _norm(n)
        if n and n not in out and "#" not in n and "," not in n:
            out.append(n)
    return out


def read_sources(args) -> list[tuple[str, list[list[str]], list[bool]]]:
    """[(source, classes (each a list of synonyms, display first), is_stuff per class)]."""
    lvis = _literal(args.lvis, variable="LVIS_CATEGORIES")
    lvis_classes = [_dedupe([c["name"], *c["synonyms"]]) for c in sorted(lvis, key=lambda c: c["id"])]

    coco = [[_norm(s) for s in line.split("#", 1)[0].split(",")]
            for line in (HERE.parent / "vocabularies" / "coco_stuff_171.txt").read_text().splitlines()
            if line.split("#", 1)[0].strip()]
    coco_stuff = [i >= 80 for i in range(len(coco))]  # lines 0..79: the 80 COCO things

    ade_full = _literal(args.ade_full, variable="ADE20K_SEM_SEG_FULL_CATEGORIES")
    ade_classes = [_dedupe(c["name"].split(",")) for c in sorted(ade_full, key=lambda c: c["trainId"])]
    panoptic = _literal(args.ade_panoptic, variable="ADE20K_150_CATEGORIES")
    ade_stuff_names = {_norm(c["name"]) for c in panoptic if not c["isthing"]}
    ade_stuff = [bool(set(syns) & ade_stuff_names) for syns in ade_classes]

    o365 = _literal(args.mmdet_classes, function="objects365v1_classes")
    o365_classes = [_dedupe(name.split("/")) for name in o365]
    oid = _literal(args.mmdet_classes, function="oid_v6_classes")
    oid_classes = [_dedupe([name]) for name in oid]
    return [("lvis", lvis_classes, [False] * len(lvis_classes)), ("coco-stuff", coco, coco_stuff),
            ("ade20k-full", ade_classes, ade_stuff), ("objects365", o365_classes, [False] * len(o365_classes)),
            ("openimages", oid_classes, [False] * len(oid_classes))]


def merge(sources):
    """-> entries [{"names": [...], "stuff": bool, "sources": {source: count}}]."""
    entries: list[dict] = []
    owner: dict[str, int] = {}  # name -> entry index
    for source, classes, stuff in sources:
        for synonyms, is_stuff in zip(classes, stuff):
            if not synonyms:
                continue
            hits = [owner[s] for s in synonyms if s in owner]
            target = next((e for e in hits if source not in entries[e]["sources"]), None)
            if target is None:
                free = [s for s in synonyms if s not in owner]
                if not free:  # every name taken by entries that hold a class of this dataset
                    target = hits[0]
                else:
                    entries.append({"names": [], "stuff": False, "sources": {}})
                    target = len(entries) - 1
            entry = entries[target]
            for s in synonyms:
                if s not in owner:
                    owner[s] = target
                    entry["names"].append(s)
            entry["stuff"] = entry["stuff"] or is_stuff
            entry["sources"][source] = entry["sources"].get(source, 0) + 1
    return entries


def write(entries, out: Path, counts: dict[str, int]) -> None:
    entries = sorted(entries, key=lambda e: e["names"][0])
    n_stuff = sum(e["stuff"] for e in entries)
    header = [
        "# ovseg name bank for automatic naming (`ovseg label` with no class list): one concept per line,",
        "# synonyms separated by commas (the first is the display name), then a comment: thing or stuff,",
        "# and the datasets the concept comes from. Built by prompts/bank/build_bank.py; sources and",
        "# licences in prompts/README.md. Do not edit by hand: rebuild.",
        "# classes read: " + ", ".join(f"{k} {v}" for k, v in counts.items()),
        f"# entries: {len(entries)} ({len(entries) - n_stuff} thing, {n_stuff} stuff), "
        f"names: {sum(len(e['names']) for e in entries)}",
    ]
    lines = [f"{','.join(e['names'])}  # {'stuff' if e['stuff'] else 'thing'}; {' '.join(e['sources'])}"
             for e in entries]
    out.write_text("\n".join(header + lines) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lvis", type=Path, required=True, help="detectron2 lvis_v1_categories.py")
    parser.add_argument("--ade-full", type=Path, required=True, help="Mask2Former register_ade20k_full.py")
    parser.add_argument("--ade-panoptic", type=Path, required=True, help="Mask2Former register_ade20k_panoptic.py")
    parser.add_argument("--mmdet-classes", type=Path, required=True,
                        help="mmdetection mmdet/evaluation/functional/class_names.py")
    parser.add_argument("--out", type=Path, default=HERE / "names.txt")
    args = parser.parse_args()
    sources = read_sources(args)
    entries = merge(sources)
    write(entries, args.out, {name: len(classes) for name, classes, _ in sources})
    print(f"{args.out}: {len(entries)} entries")


if __name__ == "__main__":
    main()
