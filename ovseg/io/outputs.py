"""Writing outputs: their names (`<stem>.labels.png`, `.overlay.png`, `.json`, and `segments`
alike), finding and removing an older set, and COCO run-length encoding of masks (re-exported by
`ovseg.io`; files are written whole by `ovseg.io.atomic.atomic_write`)."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterable

import numpy as np

OUTPUT_KINDS = ("labels", "segments")  # `<stem>.<kind>.png`, `.<kind>.overlay.png`, `.<kind>.json`


def is_ovseg_output(path: str | os.PathLike) -> bool:
    """Whether `path` is a PNG ovseg wrote: `<stem>.labels[.overlay].png` or
    `<stem>.segments[.overlay].png` beside its `<stem>.labels.json` / `<stem>.segments.json`."""
    path = Path(path)
    for kind in OUTPUT_KINDS:
        for suffix in (f".{kind}.png", f".{kind}.overlay.png"):
            if path.name.endswith(suffix):
                stem = path.name[: -len(suffix)]
                if (path.parent / f"{stem}.{kind}.json").is_file():
                    return True
    return False


def output_paths(image: Path, out_dir: Path, task: str, stem: str | None = None) -> dict[str, Path]:
    """Where the outputs of one image go: {"png", "overlay", "json"} -> paths in `out_dir`:
    `<stem>.labels.png`, `<stem>.labels.overlay.png`, `<stem>.labels.json` for task "label",
    the same with `segments` for task "segment" (so both can share a folder)."""
    kind = "labels" if task == "label" else "segments"
    base = f"{stem or image.stem}.{kind}"
    return {"png": out_dir / f"{base}.png", "overlay": out_dir / f"{base}.overlay.png",
            "json": out_dir / f"{base}.json"}


def output_stems(images: list[Path], roots: Iterable[str | os.PathLike] = ()) -> list[str]:
    """One distinct output stem per image: the file stem, with its folder below an input root
    (as `sub/name`) and its extension added where two inputs would otherwise collide (the set
    of inputs then changes a name: `Segmenter.process_files` removes the set under the old
    name, `stale_outputs`)."""
    roots = [Path(r).resolve() for r in roots if Path(r).is_dir()]
    stems = []
    for img in images:
        rel = Path(img.name)
        for root in roots:
            with contextlib.suppress(ValueError):
                rel = img.resolve().relative_to(root)
                break
        stems.append(str(rel.with_suffix("")))
    counts: dict[str, int] = {}
    for s in stems:
        counts[s] = counts.get(s, 0) + 1
    stems = [
        s if counts[s] == 1 else f"{s}.{img.suffix.lstrip('.').lower()}"
        for s, img in zip(stems, images)
    ]
    seen: dict[str, int] = {}  # still equal (same name in two folders given as files): -2, -3, ...
    out = []
    for s in stems:
        seen[s] = seen.get(s, 0) + 1
        out.append(s if seen[s] == 1 else f"{s}-{seen[s]}")
    return out


def stale_outputs(image: Path, outs: dict[str, Path]) -> list[dict[str, Path]]:
    """Output sets an earlier run wrote for `image` under another name, to remove once its
    outputs `outs` are done (or found current), so that a rerun never leaves a stale set.

    The naming rule (`output_stems`) adds the extension only where two inputs share a stem: label
    `cat.png` alone (`cat.labels.*`), then beside `cat.jpg`, and its outputs become
    `cat.png.labels.*`; remove `cat.jpg` and they go back. The other name's set is stale when its
    JSON names `image` as its source (same file, links resolved); another image's outputs are
    never touched. Returns those sets ({"png", "overlay", "json"}), which may be none.
    """
    json_path = Path(outs["json"])
    kind = next(k for k in OUTPUT_KINDS if json_path.name.endswith(f".{k}.json"))
    stem = json_path.name[: -len(f".{kind}.json")]
    ext = image.suffix.lstrip(".").lower()
    base = stem[: -len(ext) - 1] if ext and stem.endswith(f".{ext}") else stem
    stale = []
    for other in {base, f"{base}.{ext}"} - {stem}:
        other_json = json_path.parent / f"{other}.{kind}.json"
        if other_json.is_file() and _source_of(other_json) == Path(image).resolve():
            stale.append({"png": other_json.parent / f"{other}.{kind}.png",
                          "overlay": other_json.parent / f"{other}.{kind}.overlay.png",
                          "json": other_json})
    return stale


def _source_of(json_path: Path) -> Path | None:
    import json

    with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
        source = json.loads(json_path.read_text(encoding="utf-8")).get("image")
        return Path(source).resolve() if source else None
    return None


def remove_outputs(outs: dict[str, Path]) -> None:
    """Delete one image's output set; the JSON last, so that a set interrupted half-way is still
    recognised as ovseg's (`is_ovseg_output`) and never read as an input."""
    for key in ("png", "overlay", "json"):
        with contextlib.suppress(FileNotFoundError):
            Path(outs[key]).unlink()


# COCO run-length encoding (our own encoder/decoder; the format is pycocotools')


def rle_encode(mask: np.ndarray) -> dict:
    """A binary mask (H, W) as COCO compressed RLE: {"size": [H, W], "counts": str}.

    Runs alternate 0s and 1s, starting with 0s, over the mask in column-major (Fortran) order;
    the counts are then packed into ASCII as pycocotools' `rleToString` does, so the dict can be
    passed to `pycocotools.mask.decode` unchanged.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {mask.shape}")
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": _pack(_runs(mask))}


def rle_decode(rle: dict) -> np.ndarray:
    """Inverse of :func:`rle_encode`; also accepts uncompressed counts (a list of ints)."""
    h, w = (int(v) for v in rle["size"])
    counts = rle["counts"]
    counts = _unpack(counts) if isinstance(counts, (str, bytes)) else [int(c) for c in counts]
    if sum(counts) != h * w:
        raise ValueError(f"RLE counts sum to {sum(counts)}, expected {h}*{w}={h * w}")
    flat = np.repeat(np.arange(len(counts)) % 2 == 1, counts)
    return flat.reshape((w, h)).T.copy()


def rle_encode_map(segments: np.ndarray, size: tuple[int, int] | None = None) -> dict[int, tuple[dict, int, list[int]]]:
    """Every region of a label map as COCO compressed RLE, in one pass over the map, optionally
    scaled up by the nearest-exact rule (`resize_nearest`, pixel centres aligned) without
    building the larger map.

    segments: (h, w) integer map, values >= 0 (segment ids); size: (H, W) with H >= h, W >= w,
    None: (h, w). Returns {value: (rle {"size": [H, W], "counts": str}, area, COCO box
    [x, y, width, height])} for each value present, each rle equal to
    `rle_encode(resize_nearest(segments, size) == value)`.
    """
    from ovseg.io.nearest import nearest_indices

    seg = np.asarray(segments)
    h, w = seg.shape
    big_h, big_w = (h, w) if size is None else (int(size[0]), int(size[1]))
    if big_h < h or big_w < w:
        raise ValueError(f"size {(big_h, big_w)} is smaller than the map {(h, w)}")
    # an output row / column i takes source row rows[i] (non-decreasing, every source row taken):
    # first_row[r] = the first output row from source row r (first_row[h] = H)
    first_row = np.searchsorted(nearest_indices(h, big_h), np.arange(h + 1))
    cols = nearest_indices(w, big_w)
    start = np.ones((h, w), dtype=bool)  # where a run starts in each source column
    start[1:] = seg[1:] != seg[:-1]
    c_runs, r_runs = np.nonzero(start.T)  # column by column, rows down: column-major order
    per_col = np.bincount(c_runs, minlength=w)
    offset = np.concatenate([[0], np.cumsum(per_col)])
    n = per_col[cols]  # runs in each output column
    k = np.repeat(offset[cols], n) + np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    j = np.repeat(np.arange(big_w), n)  # output column of each run
    begin = j * big_h + first_row[r_runs[k]]  # flat column-major positions
    value = seg[r_runs[k], c_runs[k]]
    total = big_h * big_w
    end = np.append(begin[1:], total)  # each run ends where the next begins (its column's end at most)
    row_lo, row_hi = first_row[r_runs[k]], np.minimum(end - j * big_h, big_h)
    keep = np.ones(begin.size, dtype=bool)  # a run that goes on into the next column is one run
    keep[1:] = value[1:] != value[:-1]
    kept = np.flatnonzero(keep)
    m_begin, m_value = begin[kept], value[kept]
    m_end = np.append(m_begin[1:], total)
    out: dict[int, tuple[dict, int, list[int]]] = {}
    by_value = np.argsort(value, kind="stable")
    m_by_value = np.argsort(m_value, kind="stable")
    groups = np.split(by_value, np.flatnonzero(np.diff(value[by_value])) + 1)
    m_groups = np.split(m_by_value, np.flatnonzero(np.diff(m_value[m_by_value])) + 1)
    for group, m_group in zip(groups, m_groups):
        b, e = m_begin[m_group], m_end[m_group]
        counts = np.empty(2 * b.size, dtype=np.int64)
        counts[0::2] = b - np.concatenate([[0], e[:-1]])  # 0s before each run of 1s (may be 0)
        counts[1::2] = e - b
        counts = counts.tolist() + ([total - int(e[-1])] if e[-1] < total else [])
        x0, x1 = int(j[group].min()), int(j[group].max())
        y0, y1 = int(row_lo[group].min()), int(row_hi[group].max())
        out[int(value[group[0]])] = ({"size": [big_h, big_w], "counts": _pack(counts)},
                                     int((e - b).sum()), [x0, y0, x1 - x0 + 1, y1 - y0])
    return out


def rle_decode_map(rles: dict[int, dict], size: tuple[int, int]) -> np.ndarray:
    """The label map that RLE masks of several regions make together, in one pass.

    rles: {value: COCO RLE (compressed or not)} of masks of size (H, W) that do not overlap.
    Returns (H, W) int32: `value` where its mask is 1, -1 where no mask is. Raises ValueError
    when two masks overlap or a mask's size is not `size`.
    """
    h, w = (int(v) for v in size)
    starts, lengths, values = [], [], []
    for value, rle in rles.items():
        if [int(v) for v in rle["size"]] != [h, w]:
            raise ValueError(f"mask {value} has size {rle['size']}, expected {[h, w]}")
        counts = rle["counts"]
        counts = _unpack_array(counts) if isinstance(counts, (str, bytes)) else np.asarray(counts, dtype=np.int64)
        if counts.sum() != h * w:
            raise ValueError(f"mask {value}: RLE counts sum to {counts.sum()}, expected {h * w}")
        begin = np.concatenate([[0], np.cumsum(counts)[:-1]])
        ones = slice(1, None, 2)  # runs alternate 0s and 1s, starting with 0s
        starts.append(begin[ones]), lengths.append(counts[ones])
        values.append(np.full(counts[ones].size, int(value), dtype=np.int64))
    start, length, value = (np.concatenate(v) if v else np.zeros(0, np.int64) for v in (starts, lengths, values))
    order = np.argsort(start, kind="stable")
    start, length, value = start[order], length[order], value[order]
    end = start + length
    gap = np.diff(np.concatenate([[0], start])) - np.concatenate([[0], length[:-1]])
    if (gap < 0).any():
        raise ValueError("two masks overlap")
    tail = h * w - (int(end[-1]) if end.size else 0)
    # runs of -1 (the gaps) and of each value, in order
    seq_v = np.stack([np.full(value.size, -1), value], 1).reshape(-1)
    seq_n = np.stack([gap, length], 1).reshape(-1)
    flat = np.concatenate([np.repeat(seq_v, seq_n), np.full(tail, -1)]).astype(np.int32)
    return flat.reshape((w, h)).T.copy()


def _runs(mask: np.ndarray) -> list[int]:
    flat = mask.T.reshape(-1)  # column-major order
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    return ([0] + runs) if flat.size and flat[0] else runs  # the first run counts 0s


def _pack(counts: list[int]) -> str:
    out = []
    for i, x in enumerate(counts):
        if i > 2:
            x -= counts[i - 2]  # pycocotools stores runs as differences to the run two back
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            out.append(chr((c | 0x20 if more else c) + 48))
    return "".join(out)


def _unpack(s: str | bytes) -> list[int]:
    data = s.encode() if isinstance(s, str) else s
    counts: list[int] = []
    p = 0
    while p < len(data):
        x, k, more = 0, 0, True
        while more:
            c = data[p] - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p, k = p + 1, k + 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def _unpack_array(s: str | bytes) -> np.ndarray:
    """`_unpack` with arrays (the same counts, as int64): 5 bits per character, a set 0x20 bit
    means "more characters", the last one's 0x10 bit the sign; then each count from the fourth on
    is stored as its difference to the count two back."""
    c = np.frombuffer(s.encode() if isinstance(s, str) else s, dtype=np.uint8).astype(np.int64) - 48
    if c.size == 0:
        return np.zeros(0, dtype=np.int64)
    last = (c & 0x20) == 0  # the last character of each count
    number = np.cumsum(np.concatenate([[0], last[:-1]]))  # which count each character belongs to
    first = np.concatenate([[True], last[:-1]])
    k = np.arange(c.size) - np.flatnonzero(first)[number]  # the character's place in its count
    x = np.bincount(number, weights=(c & 0x1F) << (5 * k)).astype(np.int64)
    ends, places = np.flatnonzero(last), k[last] + 1
    negative = (c[ends] & 0x10) != 0
    x[negative] -= np.left_shift(1, 5 * places[negative])  # sign extension: x |= -1 << 5k
    counts = x.copy()
    if counts.size > 3:  # counts[i] = x[i] + counts[i - 2] for i > 2: running sums, odd and even apart
        counts[3::2] = x[1] + np.cumsum(x[3::2])
        counts[4::2] = x[2] + np.cumsum(x[4::2])
    return counts


def bbox_of(mask: np.ndarray) -> list[int]:
    """COCO box [x, y, width, height] of a binary mask (H, W); zeros when empty."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if rows.size == 0:
        return [0, 0, 0, 0]
    return [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)]
