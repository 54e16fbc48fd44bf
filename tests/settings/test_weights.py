"""Weights resolution: local folders, the HF cache, and the offline error users see."""
import time

import pytest

from ovseg import WeightsNotFoundError
from ovseg.io.paths import cache_dir
from ovseg.settings.weights import resolve_weights

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


# Downloads through a stand-in hub (ovseg.testing.FakeHub: the hub's allow_patterns filtering).

def _repo(root, files):
    for f in files:
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        (root / f).write_text("x")
    return root


UNET = ("unet/diffusion_pytorch_model.fp16.safetensors", "unet/diffusion_pytorch_model.safetensors")
VAE = ("vae/diffusion_pytorch_model.fp16.safetensors", "vae/diffusion_pytorch_model.safetensors")


def test_download_takes_the_preferred_file_of_each_entry_and_only_that(tmp_path, monkeypatch):
    from ovseg.testing import FakeHub

    repo = _repo(tmp_path / "repo", ["model_index.json", *UNET, VAE[1], "README.md"])  # no fp16 VAE
    hub = FakeHub({"segmind/SSD-1B": repo}, tmp_path / "hub").install(monkeypatch)
    path = resolve_weights(None, required=["model_index.json", UNET, VAE], **INFO)
    assert sorted(hub.downloaded("segmind/SSD-1B")) == sorted(["model_index.json", UNET[0], VAE[1]])
    assert resolve_weights(None, required=["model_index.json", UNET, VAE], **INFO) == path  # cached now
    assert len(hub.downloads) == 3


def test_fresh_download_lacking_a_file_fails_with_our_error_naming_it(tmp_path, monkeypatch):
    from ovseg.testing import FakeHub

    FakeHub({"segmind/SSD-1B": _repo(tmp_path / "repo", ["model_index.json", UNET[0]])},
            tmp_path / "hub").install(monkeypatch)
    with pytest.raises(WeightsNotFoundError, match=r"SSD-1B: the repository segmind/SSD-1B has no "
                                                   r"vae/diffusion_pytorch_model\.fp16\.safetensors or "
                                                   r"vae/diffusion_pytorch_model\.safetensors"):
        resolve_weights(None, required=["model_index.json", UNET, VAE], **INFO)


def test_missing_repository_names_the_model(tmp_path, monkeypatch):
    from ovseg.testing import FakeHub

    FakeHub({}, tmp_path / "hub").install(monkeypatch)
    with pytest.raises(WeightsNotFoundError, match=r"downloading someone/nothing .*failed\. Download error: 404"):
        resolve_weights("someone/nothing", required=["model_index.json"], **INFO)


def test_offline_hint_lists_exactly_the_files_with_one_include_each(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(WeightsNotFoundError) as err:
        resolve_weights(None, required=["model_index.json", UNET], optional=["text_encoder/config.json"],
                        **INFO)
    assert ("`hf download segmind/SSD-1B --local-dir DIR --include model_index.json --include "
            "unet/diffusion_pytorch_model.fp16.safetensors --include text_encoder/config.json`") in str(err.value)


def test_local_folder_lacking_a_file_names_it_and_the_command(tmp_path):
    _repo(tmp_path, ["model_index.json"])
    with pytest.raises(WeightsNotFoundError, match=r"lacks unet/diffusion_pytorch_model\.fp16\.safetensors or "
                                                   r"unet/diffusion_pytorch_model\.safetensors.*hf download"):
        resolve_weights(tmp_path, required=["model_index.json", UNET], **INFO)
    _repo(tmp_path, [UNET[1]])  # the fp32 file is as good
    assert resolve_weights(tmp_path, required=["model_index.json", UNET], **INFO) == str(tmp_path)


def _documented_commands(doc: str = "docs/weights.md") -> dict[str, list[str]]:
    """repo id -> the --include patterns of its `hf download` command in `doc`."""
    import re
    import shlex
    from pathlib import Path

    text = (Path(__file__).parents[2] / doc).read_text()
    out = {}
    for block in re.findall(r"^hf download .*?(?<!\\)$", text, flags=re.M | re.S):
        words = shlex.split(block.replace("\\\n", " "))
        assert all(words[i - 1] == "--include" for i, w in enumerate(words) if "/" in w and i > 2 and
                   words[i - 1] != "--local-dir"), block  # every pattern after its own --include
        out[words[2]] = [words[i + 1] for i, w in enumerate(words) if w == "--include"]
    return out


def test_docs_commands_download_exactly_what_the_loaders_ask_for():
    from ovseg.features import backbone_info, list_backbones
    from ovseg.features import _unet, _vit
    from ovseg.labels import _loading

    documented = _documented_commands()
    checked = 0
    for name in list_backbones():
        info = backbone_info(name)
        if name.split("-")[0] in _vit._FAMILIES:
            expected = _vit.download_files(name)
        elif info.repo_id.count("/") == 1 and info.stride == 32 and info.feature_dim == 1280:
            expected = _unet.download_files("text_encoder_2" in _vit.load_config(name))
        else:
            continue  # a plugin or a packaged backbone: nothing to download from the hub
        assert documented.get(info.repo_id) == expected, name
        checked += 1
    assert checked >= 11
    assert documented["laion/CLIP-convnext_large_d_320.laion2B-s29B-b131K-ft-soup"] == _loading.DOWNLOAD_FILES
    examples = _documented_commands("examples/README.md")
    assert len(examples) == 2 and all(documented[repo] == files for repo, files in examples.items())
