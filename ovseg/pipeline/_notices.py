"""Notices: what a run did that is not an error but may not be what the user wanted (issue 31
item 6). `ovseg label` / `ovseg segment` print one line per kind after the summary (hidden by
--quiet); `RunSummary.notices` holds them for Python.

    one_segment    --tau auto kept the whole image as one segment
    many_segments  more than MANY_SEGMENTS segments: likely cut finer than meant
    scaled         the image was over --max-pixels: processed, and its masks written, scaled down
"""
from __future__ import annotations

MANY_SEGMENTS = 100  # past this a cut is rarely what was meant (efficientnet-lite0's defaults give 100 on chelsea)
LISTED = 3  # images named per line


def image_notices(settings: dict, segments: int, size, source_size) -> dict[str, str]:
    """{kind: detail} for one image. settings: its JSON settings (tau "auto" and tau_chosen);
    segments: how many; size, source_size: (H, W) of the masks and of the file."""
    out = {}
    if settings.get("tau") == "auto" and segments == 1:
        out["one_segment"] = "1 segment"
    if segments > MANY_SEGMENTS:
        out["many_segments"] = f"{segments} segments"
    if source_size is not None and tuple(size) != tuple(source_size):
        (h0, w0), (h, w) = source_size, size
        out["scaled"] = f"{w0}x{h0} -> {w}x{h}"
    return out


def add(notices: dict[str, list], name, settings: dict, segments: int, size, source_size) -> None:
    """Record one image's notices into `notices` {kind: [(image, detail)]}."""
    for kind, detail in image_notices(settings, segments, size, source_size).items():
        notices.setdefault(kind, []).append((name, detail))


def lines(notices: dict[str, list]) -> list[str]:
    """One line per kind, naming the first images."""
    text = {
        "one_segment": "--tau auto kept the whole image as one segment in {n} image(s) ({some}): a fixed "
                       "--tau may split it (`ovseg backbones` lists each backbone's default)",
        "many_segments": "{n} image(s) were cut into more than " + str(MANY_SEGMENTS) + " segments ({some}): "
                         "a lower --tau gives fewer, larger segments",
        "scaled": "{n} image(s) were over --max-pixels and processed scaled down ({some}): their masks and "
                  "PNGs are at the reduced size (the JSON keeps source_size; `ovseg export` maps masks back)",
    }
    out = []
    for kind in ("one_segment", "many_segments", "scaled"):
        items = notices.get(kind, [])
        if items:
            some = ", ".join(f"{_name(p)}: {d}" for p, d in items[:LISTED]) + (", ..." if len(items) > LISTED else "")
            out.append("note: " + text[kind].format(n=len(items), some=some))
    return out


def _name(path) -> str:
    text = str(path)
    return text.rsplit("/", 1)[-1]
