"""Weights resolution: local folders, the HF cache, and the offline error users see."""
import time

import pytest

from ovseg import WeightsNotFoundError
from ovseg._paths import cache_dir
from ovseg._weights import resolve_weights

INFO = dict(repo_id="segmind/SSD-1B", model="SSD-1B", download_size="4.5 GB")


def test_local_directory_is_used_as_is(tmp_path):
    assert resolve_weights(tmp_path, **INFO) == str(tmp_path)


def test_missing_local_path_says_so(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="not a directory"):
        resolve_weights(tmp_path / "nowhere", **INFO)


def test_offline_without_cache_fails_fast_and_names_the_model(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(WeightsNotFoundError) as err:
        resolve_weights(None, **INFO)
    assert time.monotonic() - start < 5
    message = str(err.value)
    assert "segmind/SSD-1B" in message and "4.5 GB" in message and "--weights DIR" in message


def test_other_repo_id_is_named_in_the_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(WeightsNotFoundError, match="someone/their-ssd"):
        resolve_weights("someone/their-ssd", **INFO)


def test_cached_snapshot_is_found_offline(tmp_path, monkeypatch):
    # The layout huggingface_hub writes: models--org--name/{refs/main, snapshots/<rev>/...}.
    hub = tmp_path / "hub"
    repo = hub / "models--segmind--SSD-1B"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "model_index.json").write_text("{}")
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(hub))
    assert resolve_weights(None, **INFO) == str(snapshot)


def test_cache_dir_follows_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("OVSEG_CACHE", str(tmp_path / "c"))
    assert cache_dir("a", "b") == tmp_path / "c" / "a" / "b"
    assert (tmp_path / "c" / "a" / "b").is_dir()


def _snapshot(hub, repo_id, files):
    """A Hugging Face cache entry for `repo_id` holding `files` (the layout huggingface_hub writes)."""
    repo = hub / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    snapshot = repo / "snapshots" / "abc123"
    for f in files:
        (snapshot / f).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / f).write_text("x")
    return snapshot


def test_partial_snapshot_is_not_taken_for_a_complete_one(tmp_path, monkeypatch):
    # A cache holding the UNet but not the text encoders (an earlier stage, or one-file fetches):
    # asking for the text encoders must not get that folder back as if it held them.
    hub = tmp_path / "hub"
    snapshot = _snapshot(hub, "segmind/SSD-1B", ["unet/diffusion_pytorch_model.fp16.safetensors"])
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(hub))
    unet = [("unet/*.safetensors",)]
    assert resolve_weights(None, required=unet, **INFO) == str(snapshot)
    with pytest.raises(WeightsNotFoundError, match="segmind/SSD-1B"):  # offline: say so, do not pretend
        resolve_weights(None, required=unet + [("text_encoder/*.safetensors",)], **INFO)
    either = [("text_encoder/*.safetensors", "unet/*.safetensors")]  # a tuple: any one of them
    assert resolve_weights(None, required=either, **INFO) == str(snapshot)
