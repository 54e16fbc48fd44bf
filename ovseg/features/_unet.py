"""Diffusion UNet encoders (DiffCut, METHOD.md section 1): the self-attention output of the last
transformer block of the encoder's last attention block, from one UNet pass at t = 50 with the
empty prompt. The pass stops at that module; nothing after it runs.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Sequence

import torch

from ovseg.settings.weights import resolve_weights
from ovseg.features import _prompt
from ovseg.features._base import Backbone, BackboneOutput, check_finite, check_images, default_device_dtype
from ovseg.settings.catalog import encoder_attention_names, load_config  # noqa: F401  (torch-free facts)
from ovseg.features._registry import register_backbone


class _Stop(Exception):
    """Raised by the forward hook on the target module: the rest of the UNet must not run."""


class _AttentionProbsProcessor:
    """Self-attention that also hands softmax(QK^T / sqrt(d)) averaged over heads, (B, N, N), to
    ``sink(name, map)``. Heads are done one at a time: at most a few (B, N, N) buffers live at once,
    never (B, heads, N, N) (10 heads at 64x64 would be 640 MiB per image in float32)."""

    def __init__(self, sink, name: str):
        self.sink, self.name = sink, name

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args, **kwargs):
        if encoder_hidden_states is not None or attention_mask is not None or hidden_states.ndim != 3:
            raise ValueError("attention maps are only recorded for plain self-attention (attn1)")
        b, n, _ = hidden_states.shape
        q, k, v = (f(hidden_states).view(b, n, attn.heads, -1).transpose(1, 2)
                   for f in (attn.to_q, attn.to_k, attn.to_v))
        mean, outs = None, []
        for h in range(attn.heads):
            probs = (q[:, h].float() @ k[:, h].float().transpose(-1, -2) * attn.scale).softmax(dim=-1)  # (B, N, N)
            outs.append(probs.to(v.dtype) @ v[:, h])
            mean = probs if mean is None else mean.add_(probs)
        self.sink(self.name, mean.div_(attn.heads))  # heads averaged; rows sum to 1
        out = torch.stack(outs, dim=1).transpose(1, 2).reshape(b, n, -1)
        out = attn.to_out[1](attn.to_out[0](out))
        return out / attn.rescale_output_factor


class UNetEncoder(Backbone):
    """VAE encoder + the UNet's down path up to `layer` (a dotted module name of an attn1).

    vae: an AutoencoderKL (only its encoder and quant_conv are kept); scheduler: any diffusers
    scheduler config with the training betas (noise is added with DDPMScheduler.add_noise);
    prompt_embeds (1, 77, D) and pooled_prompt_embeds (1, P) or None: the empty-prompt conditioning.
    """

    stride = 32

    def __init__(self, name: str, unet, vae, scheduler, prompt_embeds: torch.Tensor,
                 pooled_prompt_embeds: torch.Tensor | None, *, layer: str, resolution: int,
                 timestep: int = 50, seed: int = 42, prune: bool = True, device=None, dtype=None):
        super().__init__()
        from diffusers import DDPMScheduler

        device, dtype = default_device_dtype(device, dtype)
        self.name, self.resolution, self.layer = name, resolution, layer
        self.timestep, self.seed, self.dtype = int(timestep), int(seed), dtype
        self.vae_dtype = torch.float64 if dtype == torch.float64 else torch.float32  # SDXL VAE overflows in fp16
        self.scaling_factor = float(vae.config.scaling_factor)
        self.vae_encoder = vae.encoder.to(device, self.vae_dtype).eval()
        self.quant_conv = vae.quant_conv.to(device, self.vae_dtype) if vae.quant_conv is not None else None
        # add_noise from the training betas: sqrt(abar_t) x0 + sqrt(1 - abar_t) eps (DDPM, Ho et al. 2020, Eq. 4)
        self.scheduler = DDPMScheduler.from_config(dict(scheduler.config))
        encoder_attn1 = [n for n, _ in unet.named_modules() if n.startswith("down_blocks.") and n.endswith(".attn1")]
        if layer not in encoder_attn1:
            raise ValueError(f"{name}: layer must be the self-attention (attn1) of an encoder block, one of "
                             f"{', '.join(encoder_attn1)}; got {layer!r}")
        self.target = unet.get_submodule(layer)
        # the self-attention layers the pass runs through, up to and including the hooked one
        self.attention_layer_names = encoder_attn1[: encoder_attn1.index(layer) + 1]
        if prune:
            prune_unet(unet, layer)
        if next(unet.parameters()).dtype != dtype:
            unet = unet.to(dtype)
        self.unet = unet.to(device).eval()
        self.feature_dim = self.target.to_out[0].out_features
        self.register_buffer("prompt_embeds", prompt_embeds.to(device, dtype), persistent=False)
        pooled = pooled_prompt_embeds.to(device, dtype) if pooled_prompt_embeds is not None else None
        self.register_buffer("pooled_prompt_embeds", pooled, persistent=False)

    def _noise(self, shape: Sequence[int]) -> torch.Tensor:
        """One (1, 4, h, w) float32 draw from a `torch.Generator` seeded with `seed` (default 42) on
        the model's device, expanded to the batch: DiffCut's recipe (METHOD.md 1), so the same image
        gives the same features whatever the batch. CPU and CUDA generators give different draws."""
        gen = torch.Generator(device=self.device).manual_seed(self.seed)
        noise = torch.randn((1, *shape[1:]), generator=gen, device=self.device, dtype=torch.float32)
        return noise.expand(*shape)

    @torch.no_grad()
    def encode_latents(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, H, W) in [0, 1] -> VAE posterior mean times the scaling factor (B, 4, H/8, W/8)."""
        x = images.to(self.device, self.vae_dtype) * 2 - 1  # [0, 1] -> [-1, 1]
        moments = self.vae_encoder(x)
        if self.quant_conv is not None:
            moments = self.quant_conv(moments)
        return moments.chunk(2, dim=1)[0].float() * self.scaling_factor  # posterior mean, no sampling

    def _unet_inputs(self, images: torch.Tensor) -> dict:
        b, _, h, w = images.shape
        latents = check_finite(self.encode_latents(images), self.name, self.vae_dtype, "VAE latents")
        t = torch.full((b,), self.timestep, dtype=torch.long)
        noisy = self.scheduler.add_noise(latents, self._noise(latents.shape).to(latents.device), t.to(latents.device))
        kwargs = dict(sample=noisy.to(self.dtype), timestep=t.to(self.device),
                      encoder_hidden_states=self.prompt_embeds.expand(b, -1, -1), return_dict=False)
        if self.pooled_prompt_embeds is not None:  # SDXL micro-conditioning: size (h, w), crop (0, 0), target (h, w)
            time_ids = torch.tensor([h, w, 0, 0, h, w], device=self.device, dtype=self.dtype)
            kwargs["added_cond_kwargs"] = {"text_embeds": self.pooled_prompt_embeds.expand(b, -1),
                                           "time_ids": time_ids.expand(b, -1)}
        return kwargs

    @torch.no_grad()
    def extract(self, images: torch.Tensor, *, attention_layers=None, attention_sink=None) -> BackboneOutput:
        """images (B, 3, H, W) float32 in [0, 1] -> BackboneOutput(features (B, C, H/32, W/32) float32,
        attentions {attn1 name: (B, N, N) float32 row-stochastic}, N = (H/32)(W/32) at the deepest layer).

        attention_layers: indices into `attention_layer_names` (negative allowed) or names.
        attention_sink: optional ``sink(name, map (B, N_i, N_i) float32)`` called as each map is
        computed, instead of keeping it (``attentions`` is then empty): lets a caller combine maps
        on the fly (e.g. ``ovseg.masks.random_walk.AttentionCombiner``) with one map alive at a time.
        """
        images = check_images(images, self.stride)
        names = self._attention_names(attention_layers)
        store: dict[str, torch.Tensor] = {}
        sink = attention_sink if attention_sink is not None else store.__setitem__
        captured: list[torch.Tensor] = []

        def stop(module, args, output):
            captured.append(output)
            raise _Stop

        saved = {n: self.unet.get_submodule(n).processor for n in names}
        for n in names:
            self.unet.get_submodule(n).set_processor(_AttentionProbsProcessor(sink, n))
        handle = self.target.register_forward_hook(stop)
        try:
            self.unet(**self._unet_inputs(images))
            raise RuntimeError(f"the UNet pass never reached {self.layer}")
        except _Stop:
            pass
        finally:
            handle.remove()
            for n, proc in saved.items():
                self.unet.get_submodule(n).set_processor(proc)
        b, _, h, w = images.shape
        tokens = captured[0]  # (B, h*w, C): projected attention output, before the residual add
        feats = tokens.float().transpose(1, 2).reshape(b, -1, h // self.stride, w // self.stride)
        check_finite(feats, self.name, self.dtype, "UNet features")  # fp16 UNet overflow: fail loudly
        return BackboneOutput(feats, {n: store[n].float() for n in names if n in store})

    def _attention_names(self, layers) -> list[str]:
        if not layers:
            return []
        valid = self.attention_layer_names
        out = []
        for layer in layers:
            if isinstance(layer, int):
                if not -len(valid) <= layer < len(valid):
                    raise ValueError(f"attention layer {layer} out of range: {len(valid)} attn1 layers")
                out.append(valid[layer])
            elif layer in valid:
                out.append(layer)
            else:
                raise ValueError(f"unknown attention layer {layer!r}; valid: {valid}")
        return list(dict.fromkeys(out))


def prune_unet(unet, layer: str) -> None:
    """Drop what never runs when the pass stops at `layer`: later down blocks, mid block, decoder."""
    del unet.down_blocks[int(layer.split(".")[1]) + 1:]
    unet.mid_block, unet.up_blocks = None, torch.nn.ModuleList()
    unet.conv_norm_out = unet.conv_act = unet.conv_out = None


def _weight_file(sub: str, stem: str) -> tuple[str, str]:
    """`required=` entry of resolve_weights: the fp16 variant file (half the download), else fp32."""
    return (f"{sub}/{stem}.fp16.safetensors", f"{sub}/{stem}.safetensors")


def _unet_required() -> list:
    """What every run needs: the pipeline index, the scheduler config, UNet and VAE."""
    return ["model_index.json", "scheduler/scheduler_config.json", "unet/config.json", "vae/config.json",
            _weight_file("unet", "diffusion_pytorch_model"), _weight_file("vae", "diffusion_pytorch_model")]


def _text_required(sdxl: bool) -> list:
    """What the first run needs besides (the text encoders compute the empty-prompt embedding once)."""
    subs = [""] + (["_2"] if sdxl else [])
    return [f for s in subs for f in (f"text_encoder{s}/config.json", _weight_file(f"text_encoder{s}", "model"),
                                      f"tokenizer{s}/*")]


def download_files(sdxl: bool) -> list[str]:
    """The globs a first run downloads from the official repository (docs/weights.md): fp16 files."""
    return [e if isinstance(e, str) else e[0] for e in _unet_required() + _text_required(sdxl)]


def _variant(path: Path, sub: str, stem: str) -> str | None:
    return "fp16" if (path / sub / f"{stem}.fp16.safetensors").is_file() else None


def last_encoder_attention(unet) -> str:
    """Name of `attn1` in the last transformer block of the encoder's last attention block:
    down_blocks[-1] for SDXL-type UNets, down_blocks[-2] for SD1.x (whose last down block has none)."""
    for i in reversed(range(len(unet.down_blocks))):
        if getattr(unet.down_blocks[i], "attentions", None):
            a = len(unet.down_blocks[i].attentions) - 1
            t = len(unet.down_blocks[i].attentions[a].transformer_blocks) - 1
            return f"down_blocks.{i}.attentions.{a}.transformer_blocks.{t}.attn1"
    raise ValueError("this UNet has no attention block in its encoder")


def _build_unet_encoder(name: str, repo_id: str, download_size: str, sdxl: bool, default_resolution: int,
                        *, weights=None, device=None, dtype=None, resolution: int | None = None, seed: int = 42,
                        timestep: int = 50, layer: str | None = None, prune: bool = True) -> UNetEncoder:
    """Load unet + vae + scheduler config (fp16 files where the repo has them); the text encoders
    only when the empty-prompt cache is empty. layer: default `last_encoder_attention(unet)`;
    resolution: the preferred input (default: the backbone's, `default_resolution`)."""
    device, dtype = default_device_dtype(device, dtype)
    get = partial(resolve_weights, weights, repo_id=repo_id, model=name, download_size=download_size,
                  optional=_prompt.TEXT_ENCODER_CONFIGS, hint_files=download_files(sdxl))
    path = Path(get(required=_unet_required()))
    local = weights is not None and Path(weights).expanduser().is_dir()
    cache = _prompt.cache_file(str(Path(weights).expanduser().resolve()) if local else str(weights or repo_id), path,
                               sdxl=sdxl)
    embeds = _prompt.load_cached(cache)
    if embeds is None:  # first use: the text encoders compute the empty-prompt embeddings once
        path = Path(get(required=_unet_required() + _text_required(sdxl)))
        embeds = _prompt.encode_empty_prompt(path, sdxl=sdxl)
        _prompt.save_cached(cache, embeds)
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel  # after resolving: fail fast

    unet = UNet2DConditionModel.from_pretrained(
        path, subfolder="unet", variant=_variant(path, "unet", "diffusion_pytorch_model"), torch_dtype=dtype)
    vae = AutoencoderKL.from_pretrained(
        path, subfolder="vae", variant=_variant(path, "vae", "diffusion_pytorch_model"), torch_dtype=torch.float32)
    scheduler = DDPMScheduler.from_pretrained(path, subfolder="scheduler")
    width = embeds["prompt_embeds"].shape[-1]
    if width != unet.config.cross_attention_dim or ("pooled_prompt_embeds" in embeds) != sdxl:
        raise ValueError(
            f"{name}: the text conditioning of {path} (width {width}, "
            f"{'with' if 'pooled_prompt_embeds' in embeds else 'without'} a pooled embedding) does not fit "
            f"its UNet (cross-attention width {unet.config.cross_attention_dim}, "
            f"{'SDXL-type' if sdxl else 'SD1-type'} backbone): are these {name} weights?")
    return UNetEncoder(name, unet, vae, scheduler, embeds["prompt_embeds"], embeds.get("pooled_prompt_embeds"),
                       layer=layer or last_encoder_attention(unet), resolution=resolution or default_resolution, timestep=timestep,
                       seed=seed, prune=prune, device=device, dtype=dtype)


_TEXT_XL, _TEXT_SD1 = "+1.6 GB text encoders on first use", "+0.25 GB text encoder on first use"


def _register(name, repo_id, size, sdxl, resolution, description):
    builder = partial(_build_unet_encoder, name, repo_id, size, sdxl, resolution)  # cut defaults: the catalog's
    register_backbone(name, repo_id=repo_id, download_size=size, resolution=resolution, stride=32,
                      feature_dim=1280, description=description, download_files=tuple(download_files(sdxl)),
                      attention_layers=encoder_attention_names(load_config(name)["unet"]))(builder)


_register("ssd-1b", "segmind/SSD-1B", f"2.8 GB ({_TEXT_XL})", True, 1024,
          "SSD-1B UNet encoder (SDXL distilled, 1.3B): DiffCut's default")
_register("sdxl", "stabilityai/stable-diffusion-xl-base-1.0", f"5.3 GB ({_TEXT_XL})", True, 1024,
          "SDXL base 1.0 UNet encoder")
_register("vega", "segmind/Segmind-Vega", f"1.7 GB ({_TEXT_XL})", True, 1024,
          "Segmind-Vega UNet encoder (SDXL distilled, 0.75B)")
_register("sd15", "stable-diffusion-v1-5/stable-diffusion-v1-5", f"1.9 GB ({_TEXT_SD1})", False, 512,
          "Stable Diffusion 1.5 UNet encoder")
_register("sd14", "CompVis/stable-diffusion-v1-4", f"1.9 GB ({_TEXT_SD1}; 3.8 GB + 0.49 GB from fp32 files)", False, 512,
          "Stable Diffusion 1.4 UNet encoder")
