"""Random-weight backbones built from the architectures shipped in ovseg/features/configs.

- `make_tiny_backbone_weights(name, directory)`: a tiny checkpoint in the on-disk layout of the
  official repository (docs/weights.md): diffusers repos: model_index.json, scheduler/, unet/, vae/,
  text_encoder(_2)/ (each weight file as fp32 `*.safetensors` and as the `*.fp16.safetensors`
  variant that a real first run downloads), tokenizer(_2)/; transformers repos: config.json and
  the weight file(s) the repository holds (`pytorch_model.bin` only for clip-b16). Load it with
  `create_backbone(name, weights=dir)`; `fp16=False` leaves out the variant files.
- `make_random_backbone(name, size="full")`: the full-size architecture with random weights, built
  in memory (no download, no disk), for timing and memory benchmarks. size="tiny" gives the tiny one.
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

import torch

_TINY_TEXT = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=2,
                  max_position_embeddings=77, projection_dim=32)


def _family(name: str) -> str:
    from ovseg.features._registry import backbone_info

    info = backbone_info(name)  # raises, listing valid names, for an unknown one
    if name.split("-")[0] in {"dinov2", "clip", "siglip"}:
        return "vit"
    if name.startswith("efficientnet-lite"):
        return "lite"
    if info.stride == 32 and info.feature_dim == 1280:
        return "unet"
    raise ValueError(f"no random-weight recipe for backbone {name!r} (a plugin?)")


def _config(name: str) -> dict:
    from ovseg.features._vit import load_config

    return load_config(name)


def _shrink_unet(cfg: dict, cross_dim: int, pooled_dim: int) -> dict:
    """The same block structure with 16-32 channels and at most 2 transformer blocks per layer."""
    c = {k: v for k, v in cfg.items() if not k.startswith("_")}
    n = len(c["block_out_channels"])
    c.update(block_out_channels=[16, 32, 32, 32][:n], norm_num_groups=8, attention_head_dim=2,
             cross_attention_dim=cross_dim, sample_size=8)
    depth = c.get("transformer_layers_per_block", 1)
    c["transformer_layers_per_block"] = [min(d, 2) for d in depth] if isinstance(depth, list) else 1
    if c.get("reverse_transformer_layers_per_block"):
        c["reverse_transformer_layers_per_block"] = [[min(d, 2) for d in r] for r in c["reverse_transformer_layers_per_block"]]
    if c.get("addition_embed_type") == "text_time":
        c.update(addition_time_embed_dim=8, projection_class_embeddings_input_dim=pooled_dim + 6 * 8)
    return c


def _shrink_vae(cfg: dict) -> dict:
    c = {k: v for k, v in cfg.items() if not k.startswith("_")}
    c.update(block_out_channels=[8] * len(c["block_out_channels"]), layers_per_block=1, norm_num_groups=4, sample_size=32)
    return c


def _unet_modules(name: str, size: str, prune: bool = False):
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, PNDMScheduler, UNet2DConditionModel

    cfg = _config(name)
    sdxl = "text_encoder_2" in cfg
    unet_cfg, vae_cfg = cfg["unet"], cfg["vae"]
    if size == "tiny":
        cross, pooled = (32 + 64, 32) if sdxl else (32, 32)
        unet_cfg, vae_cfg = _shrink_unet(unet_cfg, cross, pooled), _shrink_vae(vae_cfg)
    unet_cfg = {k: v for k, v in unet_cfg.items() if not k.startswith("_")}
    if prune:  # build on the meta device, drop what never runs, then allocate only the rest
        from ovseg.features._unet import last_encoder_attention, prune_unet

        with torch.device("meta"):
            unet = UNet2DConditionModel.from_config(unet_cfg)
        prune_unet(unet, last_encoder_attention(unet))
        unet.to_empty(device="cpu")
        for m in unet.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()  # PyTorch's default initialisation
    else:
        unet = UNet2DConditionModel.from_config(unet_cfg)
    vae = AutoencoderKL.from_config({k: v for k, v in vae_cfg.items() if not k.startswith("_")})
    sched_cls = {"EulerDiscreteScheduler": EulerDiscreteScheduler, "PNDMScheduler": PNDMScheduler}[cfg["scheduler"]["_class_name"]]
    scheduler = sched_cls.from_config({k: v for k, v in cfg["scheduler"].items() if k != "_class_name"})
    return unet, vae, scheduler, sdxl


def _vit_model(name: str, size: str):
    import transformers

    cfg = _config(name)
    vision = {k: v for k, v in cfg["vision"].items() if k not in {"model_type", "image_mean", "image_std"}}
    family = name.split("-")[0]
    if size == "tiny":
        vision.update(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=2,
                      image_size=2 * vision["patch_size"])  # 2x2 position grid: every test interpolates
    if family == "dinov2":
        vision.pop("intermediate_size", None)
        return transformers.Dinov2Model(transformers.Dinov2Config(**vision))
    text = dict(cfg["text"]) if size == "full" else {**_TINY_TEXT, "vocab_size": 99, "max_position_embeddings": 16,
                                                      "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 1}
    text.pop("projection_dim", None)
    if family == "clip":
        config = transformers.CLIPConfig(text_config=text, vision_config=vision, projection_dim=32 if size == "tiny" else 512)
        return transformers.CLIPModel(config)
    return transformers.SiglipModel(transformers.SiglipConfig(text_config=text, vision_config=vision))


def make_random_backbone(name: str, size: str = "full", *, device=None, dtype=None, seed: int = 0, **options):
    """A backbone of the real architecture (size="full") or a tiny one, with random weights, in memory.

    For UNet encoders the empty-prompt embeddings are random too; options go to UNetEncoder
    (e.g. prune=False to keep the decoder, for whole-UNet timings). With prune=True (default) the
    parts of the UNet that never run are never allocated, so a full-size SDXL encoder fits in ~4 GB.
    """
    if size not in {"full", "tiny"}:
        raise ValueError(f"size must be 'full' or 'tiny', got {size!r}")
    from ovseg.features._registry import backbone_info

    torch.manual_seed(seed)
    info = backbone_info(name)
    if _family(name) == "lite":  # small enough that "tiny" is the real architecture too
        from ovseg.features._lite import _build_lite

        return _build_lite(name, device=device, dtype=dtype, pretrained=False, **options)
    if _family(name) == "vit":
        from ovseg.features._vit import from_model

        model = _vit_model(name, size)
        model = getattr(model, "vision_model", model)  # CLIP/SigLIP: the image tower only
        return from_model(name, model, device=device, dtype=dtype)
    from ovseg.features._unet import UNetEncoder, last_encoder_attention

    unet, vae, scheduler, sdxl = _unet_modules(name, size, prune=options.get("prune", True))
    prompt = torch.randn(1, 77, unet.config.cross_attention_dim)
    pooled = torch.randn(1, unet.config.projection_class_embeddings_input_dim - 6 * unet.config.addition_time_embed_dim) if sdxl else None
    return UNetEncoder(name, unet, vae, scheduler, prompt, pooled, layer=last_encoder_attention(unet),
                       resolution=info.resolution, device=device, dtype=dtype, **options)


def _bytes_to_unicode() -> list[str]:
    """The byte -> printable character table of byte-level BPE (GPT-2 / CLIP)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = iter(range(256, 512))
    return [chr(b) if b in keep else chr(next(extra)) for b in range(256)]


def _write_tokenizer(directory: Path) -> int:
    """A tiny CLIP tokenizer: the 256 byte symbols, their end-of-word forms, no merges, BOS/EOS."""
    from transformers import CLIPTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    symbols = _bytes_to_unicode()
    vocab = {s: i for i, s in enumerate(symbols + [s + "</w>" for s in symbols] + ["<|startoftext|>", "<|endoftext|>"])}
    (directory / "vocab.json").write_text(json.dumps(vocab))
    (directory / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer(str(directory / "vocab.json"), str(directory / "merges.txt"), model_max_length=77,
                        pad_token="<|endoftext|>")
    tok.save_pretrained(str(directory))
    return len(vocab)


def _write_text_encoder(directory: Path, cls_name: str, hidden: int, vocab_size: int) -> None:
    import transformers

    config = transformers.CLIPTextConfig(**{**_TINY_TEXT, "hidden_size": hidden}, vocab_size=vocab_size,
                                         bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1,
                                         pad_token_id=vocab_size - 1)
    getattr(transformers, cls_name)(config).save_pretrained(str(directory))


# Weight files of the official transformers repositories (docs/weights.md): openai/clip-vit-base-patch16
# holds a PyTorch pickle and no safetensors file; facebook/dinov2-* hold both; google/siglip-* safetensors.
_VIT_FILES = {"clip": ("pytorch_model.bin",), "dinov2": ("model.safetensors", "pytorch_model.bin"),
              "siglip": ("model.safetensors",)}


def _write_vit(model, directory: Path, files: tuple[str, ...]) -> None:
    model.config.save_pretrained(str(directory))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    for file in files:
        if file.endswith(".bin"):
            torch.save(state, directory / file)
        else:
            from safetensors.torch import save_file

            save_file(state, str(directory / file), metadata={"format": "pt"})


def _add_fp16_variant(folder: Path, stem: str) -> None:
    """Write `stem.fp16.safetensors` beside `stem.safetensors`: the same tensors in float16, as the
    official repositories' variant files (what a real first run downloads and loads)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(folder / f"{stem}.safetensors"), framework="pt") as f:
        metadata = f.metadata()
        state = {k: f.get_tensor(k) for k in f.keys()}
    half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    save_file(half, str(folder / f"{stem}.fp16.safetensors"), metadata=metadata)


@contextlib.contextmanager
def _no_bars():
    """transformers' progress bars off ("Writing model shards", one per text encoder written:
    noise around a tiny file), restored afterwards (issue 31 item 8)."""
    import transformers.utils.logging as log

    was = log.is_progress_bar_enabled()
    log.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            log.enable_progress_bar()


@_no_bars()
def make_tiny_backbone_weights(name: str, directory, *, fp16: bool = True) -> str:
    """Write a tiny random-weight checkpoint of backbone `name` to `directory`; return its path.

    The layout is that of the official repository (file names, subfolders, fp16 variant files), so
    `create_backbone(name, weights=path)` loads it with the same `from_pretrained` calls, and the
    same choice of files, as the real weights. fp16=False: a repository without fp16 variant files
    (diffusers backbones only). Outputs are meaningless.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if _family(name) == "lite":  # the real architecture (4.7-6.1 M parameters), random weights
        from ovseg.features._lite import build_model

        torch.manual_seed(0)
        torch.save(build_model(name).state_dict(), directory / f"{name}.pth")
        return str(directory)
    if _family(name) == "vit":
        torch.manual_seed(0)
        _write_vit(_vit_model(name, "tiny"), directory, _VIT_FILES[name.split("-")[0]])
        return str(directory)
    torch.manual_seed(0)
    unet, vae, scheduler, sdxl = _unet_modules(name, "tiny")
    unet.save_pretrained(str(directory / "unet"))
    vae.save_pretrained(str(directory / "vae"))
    scheduler.save_pretrained(str(directory / "scheduler"))
    vocab_size = _write_tokenizer(directory / "tokenizer")
    _write_text_encoder(directory / "text_encoder", "CLIPTextModel", 32, vocab_size)
    index = {"_class_name": "StableDiffusionXLPipeline" if sdxl else "StableDiffusionPipeline",
             "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
             "scheduler": ["diffusers", type(scheduler).__name__],
             "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"]}
    if sdxl:
        _write_tokenizer(directory / "tokenizer_2")
        _write_text_encoder(directory / "text_encoder_2", "CLIPTextModelWithProjection", 64, vocab_size)
        index.update(text_encoder_2=["transformers", "CLIPTextModelWithProjection"],
                     tokenizer_2=["transformers", "CLIPTokenizer"])
    (directory / "model_index.json").write_text(json.dumps(index, indent=1))
    if fp16:
        for sub, stem in [("unet", "diffusion_pytorch_model"), ("vae", "diffusion_pytorch_model"),
                          ("text_encoder", "model")] + ([("text_encoder_2", "model")] if sdxl else []):
            _add_fp16_variant(directory / sub, stem)
    return str(directory)
