"""The segment cache: a complete key, a pinned code version, LRU eviction, failures that never
fail an image, and `ovseg cache info / clear` (CPU, offline, no model)."""
import hashlib
import os
import struct
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

from ovseg.io import cache as _cache
from ovseg.io.cache import SegmentCache, cache_key, max_cache_bytes, weights_fingerprint
from ovseg.pipeline import Models, Segmenter


def _planted_image(h=48, w=64) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 2, : w // 2] = (200, 30, 30)
    img[: h // 2, w // 2 :] = (30, 30, 200)
    img[h // 2 :] = (40, 180, 40)
    yy, xx = np.mgrid[:h, :w]
    img[np.abs(yy - xx) < 4] = (230, 230, 230)  # a diagonal stripe across the three regions
    noise = np.random.default_rng(0).integers(-20, 21, img.shape)
    return np.clip(img.astype(int) + noise, 0, 255).astype(np.uint8)


def _planted_backbone():
    """A fixed, deterministic 'backbone': 8x8 average colours projected to 16 channels."""
    import torch
    import torch.nn.functional as F

    class Planted(torch.nn.Module):
        name, stride, resolution, feature_dim = "planted", 8, 64, 16

        def __init__(self):
            super().__init__()
            g = torch.Generator().manual_seed(0)
            self.register_buffer("proj", torch.randn(16, 3, generator=g))

        def forward(self, x):
            pooled = F.avg_pool2d(x.float(), self.stride)  # (B, 3, 8, 8)
            return torch.einsum("oc,bchw->bohw", self.proj, pooled) + 0.05 * pooled.mean(1, keepdim=True)

    return Planted()


def golden_segments() -> np.ndarray:
    """The pipeline's cut (`stages.segment_batch`: NCut at the paper's alpha/tau + PAMR with the
    default settings) of a planted case, with a fixed stand-in backbone."""
    from ovseg.pipeline import stages

    seg = Segmenter(resolution=64, device="cpu", cache=False, models=Models(backbone=_planted_backbone()))
    image = _planted_image()
    return stages.segment_batch(seg.backbone, [seg.prepare(image)], seg.config, seg.device)[0][0]


def test_segment_code_version_pins_the_cut_output():
    out = golden_segments()
    assert out.shape == (64, 64) and len(np.unique(out)) >= 2  # the res x res square (work_aspect)
    digest = hashlib.sha256(np.ascontiguousarray(out.astype(np.int64)).tobytes()).hexdigest()
    assert _cache.GOLDEN_SEGMENTS["version"] == _cache.SEGMENT_CODE_VERSION, (
        "SEGMENT_CODE_VERSION changed: update GOLDEN_SEGMENTS in ovseg/io/cache.py to the new version and hash")
    assert digest == _cache.GOLDEN_SEGMENTS["sha256"], (
        f"The cut/PAMR output of the planted case changed (sha256 {digest}). Cached segment maps made by "
        "the old code would be reused wrongly: bump SEGMENT_CODE_VERSION in ovseg/io/cache.py and set "
        "GOLDEN_SEGMENTS to {'version': <new version>, 'sha256': '" + digest + "'}.")


def _key_of(**settings) -> str:
    seg = Segmenter(device="cpu", cache=False, **settings)
    return cache_key(np.zeros((4, 4, 3), np.uint8), seg.cache_settings())


@pytest.mark.parametrize("change", [
    {"tau": 0.4}, {"alpha": 5.0}, {"resolution": 512}, {"refine": False}, {"refine_iterations": 3},
    {"refine_dilations": (1, 2)}, {"dtype": "bfloat16"}, {"backbone": "vega"}, {"weights": "org/other-repo"},
])
def test_each_setting_changes_the_key(change):
    assert _key_of(**change) != _key_of()


def test_device_type_and_resolved_dtype_are_in_the_key(monkeypatch):
    import torch

    cpu = Segmenter(cache=False).cache_settings() if not torch.cuda.is_available() else None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    cuda = Segmenter(cache=False).cache_settings()  # dtype None: resolved without loading a model
    assert (cuda["device_type"], cuda["dtype"]) == ("cuda", "float16")
    if cpu is not None:
        assert (cpu["device_type"], cpu["dtype"]) == ("cpu", "float32")
        image = np.zeros((4, 4, 3), np.uint8)
        assert cache_key(image, cpu) != cache_key(image, cuda)
    assert cuda["segment_code_version"] == _cache.SEGMENT_CODE_VERSION


def _safetensors(path, header: str, payload: bytes = b"\0" * 8):
    blob = header.encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + payload)


def test_weights_fingerprint_follows_contents_not_path(tmp_path):
    a = tmp_path / "a" / "unet"
    a.mkdir(parents=True)
    _safetensors(a / "model.safetensors", '{"w": {"dtype": "F16", "shape": [2, 2], "data_offsets": [0, 8]}}')
    first = weights_fingerprint(tmp_path / "a")
    assert first.startswith("dir:") and weights_fingerprint(tmp_path / "a") == first
    _safetensors(a / "model.safetensors", '{"w": {"dtype": "F32", "shape": [1, 2], "data_offsets": [0, 8]}}')
    assert weights_fingerprint(tmp_path / "a") != first  # same size, other header
    (a / "config.json").write_text("{}")
    assert weights_fingerprint(tmp_path / "a") not in (first,)
    assert weights_fingerprint(None, "segmind/SSD-1B").startswith("repo:segmind/SSD-1B@")
    key = Segmenter(device="cpu", cache=False, weights=str(tmp_path / "a")).cache_settings()
    assert key["weights_id"] == weights_fingerprint(tmp_path / "a")


def test_lru_eviction_keeps_the_recently_used(tmp_path):
    cache = SegmentCache(tmp_path, max_bytes=10**9)
    maps = {k: np.random.default_rng(i).integers(0, 50, (64, 64)) for i, k in enumerate("abcd")}
    for i, (k, m) in enumerate(maps.items()):
        cache.put(k * 64, m)
        os.utime(cache._path(k * 64), ns=(10**18 + i * 10**9,) * 2)  # a older than b, c, d
    assert cache.get("a" * 64) is not None  # a is now the most recently used
    size = _cache.folder_size(tmp_path)
    cache.max_bytes = size  # room for what is there; one more entry forces eviction
    cache.put("e" * 64, maps["a"])
    assert _cache.folder_size(tmp_path) <= size
    assert cache.get("b" * 64) is None  # the least recently used went first
    assert cache.get("a" * 64) is not None and cache.get("e" * 64) is not None


def test_cache_size_from_environment(monkeypatch):
    monkeypatch.setenv("OVSEG_CACHE_SIZE", "500M")
    assert max_cache_bytes() == 500 * 2**20
    monkeypatch.setenv("OVSEG_CACHE_SIZE", "2G")
    assert max_cache_bytes() == 2 * 2**30 and SegmentCache("x").max_bytes == 2 * 2**30
    monkeypatch.setenv("OVSEG_CACHE_SIZE", "lots")
    with pytest.raises(ValueError, match="OVSEG_CACHE_SIZE"):
        max_cache_bytes()
    monkeypatch.delenv("OVSEG_CACHE_SIZE")
    assert max_cache_bytes() == _cache.DEFAULT_MAX_BYTES


def test_unwritable_cache_warns_once_and_never_raises(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")  # tests run as root: chmod would not stop a write
    monkeypatch.setattr(_cache, "_WARNED", set())
    cache = SegmentCache(blocker / "segments")
    with pytest.warns(RuntimeWarning, match="cannot write the segments cache"):
        cache.put("a" * 64, np.zeros((4, 4), int))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second failure is silent
        cache.put("b" * 64, np.zeros((4, 4), int))
    assert cache.write_errors == 2 and cache.get("a" * 64) is None


def test_unwritable_text_cache_warns(tmp_path, monkeypatch):
    import torch

    from ovseg.labels import _text

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("OVSEG_CACHE", str(blocker))
    monkeypatch.setattr(_cache, "_WARNED", set())
    _text.clear_memory_cache()
    with pytest.warns(RuntimeWarning, match="text-embeds"):
        out = _text.cached_text_embeddings("k" * 32, lambda: torch.ones(2, 3))
    assert out.shape == (2, 3)
    _text.clear_memory_cache()
    monkeypatch.setenv("OVSEG_CACHE", str(tmp_path / "c"))
    _text.cached_text_embeddings("k" * 32, lambda: torch.ones(2, 3), disk=False)  # --no-cache
    assert not (tmp_path / "c").exists()
    _text.clear_memory_cache()


def test_cache_info_and_clear_commands(tmp_path, monkeypatch):
    from ovseg.cli import main

    monkeypatch.setenv("OVSEG_CACHE", str(tmp_path))
    SegmentCache(tmp_path / "segments").put("a" * 64, np.arange(100).reshape(10, 10))
    (tmp_path / "text-embeds").mkdir()
    (tmp_path / "text-embeds" / "x.pt").write_bytes(b"0" * 100)
    info = CliRunner().invoke(main, ["cache", "info"])
    assert info.exit_code == 0 and str(tmp_path) in info.output
    assert "segments" in info.output and "1 file(s)" in info.output
    cleared = CliRunner().invoke(main, ["cache", "clear", "--kind", "segments"])
    assert cleared.exit_code == 0, cleared.output
    assert not (tmp_path / "segments").exists() and (tmp_path / "text-embeds" / "x.pt").exists()
    assert CliRunner().invoke(main, ["cache", "clear"]).exit_code == 0
    assert not (tmp_path / "text-embeds").exists()


# -- an unwritable cache warns once (issue 22 item 10) ------------------------------------------------
def test_unwritable_cache_warns_once_as_one_line(tiny_weights, tmp_path, monkeypatch):
    """`ovseg label` with a cache that cannot be written: one warning line, and the run succeeds."""
    from PIL import Image

    from ovseg.cli import main
    from ovseg.testing import quadrants

    blocker = tmp_path / "a-file"
    blocker.write_text("x")  # a folder under a regular file cannot be made, even by root
    monkeypatch.setenv("OVSEG_CACHE", str(blocker / "cache"))
    monkeypatch.setattr(_cache, "_WARNED", set())
    Image.fromarray(quadrants()).save(tmp_path / "a.png")
    args = ["label", tmp_path / "a.png", "-c", "cat,dog", "--out", tmp_path / "o", "--resolution", "64",
            "--refine-iterations", "2", "--weights", tiny_weights["weights"], "--clip-weights", tiny_weights["clip_weights"]]
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    lines = [l for l in result.output.splitlines() if "cannot write" in l]
    assert len(lines) == 1 and lines[0].startswith("warning: ovseg: cannot write"), result.output
    assert "RuntimeWarning" not in result.output and "warnings.warn" not in result.output
