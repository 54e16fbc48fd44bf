"""`SegmenterConfig`: the settings of the whole pipeline, and their checks.

Each field is described in the class docstring (what `help(ovseg.SegmenterConfig)` shows).
Construction checks each value on its own; `validate()` checks, still without loading a model,
what needs the backbone registry or torch (stride, device, dtype, weights folders). Both raise
`SettingError(setting, message)`, a ValueError naming the setting, so the CLI can name the option.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import MISSING, dataclass, fields
from pathlib import Path

from ovseg import io as _io
from ovseg.settings import defaults as _defaults
from ovseg.settings.checks import SettingError, check_weights_path as _check_weights_path, DEVICE_PATTERN as _DEVICE
from ovseg.settings.devices import resolve_device

__all__ = ["SegmenterConfig"]


@dataclass(frozen=True)
class SegmenterConfig:
    """Settings of the whole pipeline; the defaults reproduce DiffCut's open-vocabulary demos.

    Construction checks each value on its own (SettingError, a ValueError); `validate()` checks
    what needs the backbone registry or torch (stride, device, dtype, weights folders), still
    without a model.

    Arguments:
      backbone (str): feature extractor, a name of `ovseg.list_backbones()`; "ssd-1b" (the paper's).
      weights (str | None): backbone weights: None for the official repo, another Hugging Face
        repo id ("org/name"), or a local folder (a value that looks like a path must exist).
      resolution (int | None): square backbone input in pixels, a multiple of the backbone's
        stride; None: the backbone's own (1024 for ssd-1b, the paper's).
      alpha (float | "auto" | None): affinity exponent, W = C**alpha, > 0; "auto": per image, W's mean
        off-diagonal entry 0.005, no self-loops (METHOD.md 10; JSON: alpha_chosen). None: the backbone's
        (`ovseg.backbone_info(name).alpha`: ssd-1b 10, the paper's; "auto" without a published recipe).
      tau (float | "auto" | None): NCut threshold in [0, 2]; a split is kept when its NCut < tau; None:
        the backbone's (ssd-1b: 0.5, the paper's; `ovseg backbones` lists each); "auto": per image from
        the hierarchy (docs/random-walk.md; JSON: tau_chosen). The JSON records the values used.
      min_area (float | None): segments under this fraction of the image, in [0, 1), merge into their most
        similar neighbour before PAMR; 0: none. None: the backbone's (0 for ssd-1b, 0.03 with "auto").
      method (str): a cut method of `ovseg.masks.list_methods()`: "diffcut" (recursive NCut of
        the feature affinity, the paper), "random-walk" (NCut of the backbone's self-attention
        read as a random walk, seed 002) or "kway" (discrete K-way NCut, docs/kway.md).
      k (int | str): kway only: the number of segments (an int >= 1; clusters that empty are
        dropped), or a rule: "auto" (solve at 16, merge while a pair's two-way NCut is >= tau),
        "eigengap" or "tree" (docs/kway.md); with any k but "auto" tau plays no part. The JSON
        and the cache key record it, and the JSON the K chosen (k_chosen).
      walk_steps (int): random-walk only: k of the k-step walk P^k (1); larger k merges more.
      attention_layers (tuple | None): random-walk only: self-attention layers combined (names or
        indices); None: every layer the backbone's pass runs through (docs/random-walk.md).
      refine (bool): refine the upsampled segments with PAMR (DiffCut's open-vocabulary setting).
      refine_iterations (int): PAMR iterations (15, DiffCut's open-vocabulary setting).
      refine_dilations (tuple[int, ...]): PAMR neighbourhood dilations (DiffCut's 1024 px setting).
      refine_filter (str): 3x3 label filter after PAMR: "median" (DiffCut), "mode" (majority,
        never invents a minority id) or "none".
      work_aspect (str): "square": assign, refine and name segments on the backbone's res x res
        input, as DiffCut, then map back to the image; "image": at the image's own aspect.
      labeler (str): open_clip model naming the segments ("convnext_large_d_320", DiffCut's).
      labeler_pretrained (str): its open_clip pretrained tag ("laion2b_s29b_b131k_ft_soup").
      clip_weights (str | None): local folder (or repo id) of the labeler's weights.
      clip_resolution (int | None): CLIP input short side; None: the working image as is (the
        backbone's square by default, as DiffCut); 320 is several times faster on a CPU.
      clip_normalize (bool): CLIP's mean/std on its input (False: raw [0, 1], as DiffCut's code).
      clip_pooling (str): "binary" (segment masks nearest-exact on the CLIP grid, DiffCut) or
        "area" (area-weighted masks).
      top_k (int): alternatives kept per segment in the JSON (3).
      max_classes (int): automatic names (`label` with no class list): names chosen per image at
        most (12; docs/auto-vocabulary.md).
      bank (str | None): automatic names: a name-bank file; None: the shipped bank (2,135 names
        from LVIS, COCO-Stuff, ADE20K-full, Objects365, OpenImages; prompts/README.md).
      device (str | None): "cpu", "cuda", "cuda:1", "mps"; None: CUDA when available, else CPU.
      dtype (str | None): backbone precision "float32" | "float16" | "bfloat16"; None: float16
        on CUDA, float32 on the CPU.
      batch_size (int): images per backbone pass and dense CLIP pass (1).
      overlap (bool): process_files decodes ahead and writes behind in background threads
        (True); the outputs are the same bytes either way (`ovseg.pipeline._runner`).
      max_pixels (int): inputs (files and arrays) above this many pixels are scaled down first
        (default 2**25, about 33.5 MP; see `ovseg.io`).
      cache (bool): keep segment maps (and class-name embeddings) on disk, keyed by pixels and
        settings, so relabelling skips the backbone (see `ovseg.io.cache`).
      cache_dir (str | None): folder of the segment cache; None: `$OVSEG_CACHE/segments`.
    """

    backbone: str = "ssd-1b"  # the paper's encoder: SSD-1B, a distilled SDXL UNet
    weights: str | None = None  # None: the official repo; or another repo id, or a local folder
    resolution: int | None = None  # square backbone input; None: the backbone's own (ssd-1b: 1024, the paper's)
    alpha: float | str | None = None  # W = C**alpha, a soft threshold, or "auto" (per image, METHOD.md 10);
    # None: the backbone's (`backbone_info(name).alpha`; ssd-1b: _defaults.ALPHA, the paper's)
    tau: float | str | None = None  # a split is kept when its NCut < tau; lower tau, fewer segments;
    # None: the backbone's default (ssd-1b: _defaults.TAU, the paper's); "auto": chosen per image
    # (widest stable tau interval, docs/random-walk.md), recorded in the JSON
    min_area: float | None = None  # merge smaller segments (a fraction of the image); None: the backbone's
    method: str = "diffcut"  # a name of ovseg.masks.list_methods(): "diffcut": NCut of the feature
    # affinity; "random-walk": NCut of the walk on the self-attention (METHOD.md 5, docs/random-walk.md)
    k: int | str = "auto"  # kway: segments, or a K rule ("auto": merge at tau; "eigengap"; "tree")
    walk_steps: int = 1  # random-walk: k of P^k (1: Meila & Shi's one-step walk; the paper's k is unknown)
    attention_layers: tuple[int | str, ...] | None = None  # random-walk: indices or names of the
    # self-attention layers combined; None: every one the pass runs through (docs/random-walk.md)
    refine: bool = True  # PAMR on the upsampled segments (DiffCut's open-vocabulary setting)
    refine_iterations: int = _defaults.PAMR_ITERATIONS  # DiffCut's open-vocabulary evaluation (its demo notebook: 30)
    refine_dilations: tuple[int, ...] = _defaults.PAMR_DILATIONS  # DiffCut's 1024 px setting
    refine_filter: str = _defaults.PAMR_FILTER  # 3x3 filter after PAMR: "median" (DiffCut), "mode" (majority) or "none"
    work_aspect: str = "square"  # "square": assign/refine/name on the res x res input (DiffCut); "image": own aspect
    labeler: str = "convnext_large_d_320"  # open_clip model DiffCut named segments with
    labeler_pretrained: str = "laion2b_s29b_b131k_ft_soup"
    clip_weights: str | None = None  # local folder (or repo id) of the labeler's weights
    clip_resolution: int | None = None  # CLIP input short side; None: the res x res square (DiffCut); 320: fast on CPU
    clip_normalize: bool = False  # CLIP mean/std on its input; False: raw [0, 1] as DiffCut's code
    clip_pooling: str = "binary"  # "binary": masks nearest-exact to the CLIP grid (DiffCut); "area": soft weights
    top_k: int = 3  # alternatives kept per segment in the JSON
    max_classes: int = 12  # automatic names (no class list): names kept per image at most (docs/auto-vocabulary.md)
    bank: str | None = None  # automatic names: a name-bank file; None: the shipped bank (prompts/bank)
    device: str | None = None  # None: CUDA when available, else CPU
    dtype: str | None = None  # "float32" | "float16" | "bfloat16"; None: the backbone's choice
    batch_size: int = 1  # images per backbone pass (and per dense CLIP pass)
    overlap: bool = True  # process_files: decode ahead and write behind in threads (ovseg.pipeline._runner)
    max_pixels: int = _io.DEFAULT_MAX_PIXELS  # larger inputs are scaled down (see ovseg.io)
    cache: bool = True  # keep segment maps on disk, keyed by pixels and settings
    cache_dir: str | None = None  # None: ovseg.io.paths.cache_dir("segments")

    def __post_init__(self) -> None:
        self._backbone_defaults()
        if self.resolution is not None and self.resolution < 32:
            raise SettingError("resolution", f"resolution must be at least 32, got {self.resolution}")
        if isinstance(self.alpha, bool) or self.alpha != _defaults.AUTO and not 0 < _number(self.alpha) < math.inf:
            raise SettingError("alpha", f'alpha must be a finite positive number or "auto", got {self.alpha!r}')
        if isinstance(self.min_area, (bool, str)) or not 0 <= _number(self.min_area) < 1:
            raise SettingError("min_area", f"min_area must be a fraction of the image in [0, 1), got {self.min_area!r}")
        self._check_method()
        if isinstance(self.max_pixels, bool) or not isinstance(self.max_pixels, numbers.Integral) \
                or self.max_pixels < 1:
            raise SettingError("max_pixels", f"max_pixels must be a positive int, got {self.max_pixels!r}")
        if self.device is not None and not _DEVICE.fullmatch(str(self.device)):
            raise SettingError("device", f"device {self.device!r} is not a device name: use cpu, cuda, "
                                         "cuda:N or mps (or leave it unset: cuda when available)")
        if isinstance(self.max_classes, bool) or not isinstance(self.max_classes, numbers.Integral) \
                or self.max_classes < 1:
            raise SettingError("max_classes", f"max_classes must be a positive int, got {self.max_classes!r}")
        if self.batch_size < 1 or self.top_k < 1 or self.refine_iterations < 0:
            raise ValueError("batch_size and top_k must be >= 1, refine_iterations >= 0")
        if self.dtype not in (None, "float32", "float16", "bfloat16"):
            raise SettingError("dtype", f"dtype must be float32, float16 or bfloat16, got {self.dtype!r}")
        if self.refine_filter not in ("median", "mode", "none"):
            raise SettingError("refine_filter", f"refine_filter must be median, mode or none, got {self.refine_filter!r}")
        if self.work_aspect not in ("square", "image"):
            raise SettingError("work_aspect", f"work_aspect must be 'square' or 'image', got {self.work_aspect!r}")
        if self.clip_pooling not in ("binary", "area"):
            raise SettingError("clip_pooling", f"clip_pooling must be 'binary' or 'area', got {self.clip_pooling!r}")
        if self.clip_resolution is not None and not _number(self.clip_resolution) >= 32:
            raise SettingError("clip_resolution", f"clip_resolution must be at least 32, got {self.clip_resolution}")
        object.__setattr__(self, "refine_dilations", tuple(int(d) for d in self.refine_dilations))

    def validate(self) -> SegmenterConfig:
        """Check what construction cannot, before any model loads (imports torch and the backbone
        registry, reads no weights): the resolution against the backbone's stride, that the device
        exists, that the dtype suits it, and that weights values that look like paths are folders.
        Raises SettingError (a ValueError) naming the setting; returns self."""
        _check_weights_path("weights", self.weights)
        _check_weights_path("clip_weights", self.clip_weights)
        if self.bank is not None and not Path(self.bank).expanduser().is_file():
            raise SettingError("bank", f"bank {self.bank}: no such file (a name bank: one class per line)")
        from ovseg.features import backbone_info

        try:
            info = backbone_info(self.backbone)
        except ValueError as err:
            raise SettingError("backbone", str(err)) from None
        res = self.resolution or info.resolution
        if res and info.stride and res % info.stride:
            near = max(info.stride, round(res / info.stride) * info.stride)
            raise SettingError("resolution", f"resolution {res} is not a multiple of the {self.backbone} "
                                             f"backbone's stride {info.stride}; try {near}")
        device = resolve_device(self.device)
        if self.dtype == "float16" and device.type == "cpu":
            raise SettingError("dtype", "dtype float16 is not supported on the CPU (slow, and some kernels "
                                        "lack it): use float32 or bfloat16, or run on a GPU")
        if self.dtype == "bfloat16" and device.type == "cuda":
            import torch

            if not torch.cuda.is_bf16_supported():
                raise SettingError("dtype", f"dtype bfloat16 is not supported by {device}: use float16")
        return self

    def _backbone_defaults(self) -> None:
        """alpha/tau/min_area None -> the backbone's registry defaults, recorded in the JSON and the cache
        key. `_from_backbone` names the fields so filled: `Segmenter(config, backbone=...)` fills them
        again for the new backbone (`dataclasses.replace(config, backbone=...)` keeps the old values)."""
        object.__setattr__(self, "_from_backbone", frozenset(k for k in _FILLED if getattr(self, k) is None))
        if not self._from_backbone:
            return
        from ovseg.features import backbone_info

        try:
            info = backbone_info(self.backbone)
        except ValueError as err:
            raise SettingError("backbone", str(err)) from None
        for k in self._from_backbone:  # numbers as floats, "auto" as it is
            object.__setattr__(self, k, getattr(info, k) if getattr(info, k) == _defaults.AUTO else float(getattr(info, k)))

    def _check_method(self) -> None:
        """tau, method, k, walk_steps, attention_layers; random-walk: the backbone's layers, from the registry."""
        from ovseg.settings.methods import K_RULES, get_method, list_methods

        if isinstance(self.tau, (str, bool)):
            if self.tau != "auto":
                raise SettingError("tau", f'tau must be a number in [0, 2] or "auto", got {self.tau!r}')
        elif not 0 <= _number(self.tau) <= 2:
            raise SettingError("tau", f"tau must lie in [0, 2] (the range of NCut), got {self.tau}")
        if self.method not in list_methods():
            raise SettingError("method", f"method must be one of {', '.join(list_methods())}, got {self.method!r}")
        method = get_method(self.method)
        if isinstance(self.k, str):
            if self.k not in K_RULES:
                raise SettingError("k", f"k must be a number of segments (an int >= 1) or one of "
                                        f"{', '.join(K_RULES)}, got {self.k!r}")
        elif isinstance(self.k, bool) or not math.isfinite(_number(self.k)) or int(self.k) != self.k or self.k < 1:
            raise SettingError("k", f"k must be a number of segments (an int >= 1) or one of "
                                    f"{', '.join(K_RULES)}, got {self.k!r}")
        else:
            object.__setattr__(self, "k", int(self.k))
        if isinstance(self.walk_steps, bool) or _number(self.walk_steps) != self.walk_steps or self.walk_steps < 1:
            raise SettingError("walk_steps", f"walk_steps must be a positive integer, got {self.walk_steps!r}")
        layers = self.attention_layers
        if layers is not None:
            layers = tuple(layers.split(",") if isinstance(layers, str) else layers)
            layers = tuple(int(x) if isinstance(x, str) and x.strip().lstrip("-").isdigit()
                           else x.strip() if isinstance(x, str) else x for x in layers)
            if not layers:
                raise SettingError("attention_layers", "attention_layers is empty: give at least one layer, "
                                                       "or None for all")
            object.__setattr__(self, "attention_layers", layers)
        others = {f for m in list_methods() for f in get_method(m).settings} - set(method.settings)
        defaults = {f.name: f.default for f in fields(self) if f.default is not MISSING}
        filled = getattr(self, "_from_backbone", frozenset())  # backbone defaults are not "given"
        given = sorted(f for f in others if f in defaults and f not in filled and getattr(self, f) != defaults[f])
        if given:  # a setting of another cut method
            users = [m for m in list_methods() if given[0] in get_method(m).settings]
            raise ValueError(f"{' and '.join(given)} apply to method={' or '.join(map(repr, users))} only")
        if method.needs == "attention":  # the registry knows the layers, before any model loads
            from ovseg.features import check_attention_layers

            try:
                check_attention_layers(self.backbone, layers)
            except ValueError as err:
                raise SettingError("method" if "gives no self-attention" in str(err)
                                   else "attention_layers", str(err)) from None

    def segment_settings(self) -> dict:
        """The settings that change segment maps: the cache key and the JSON record them."""
        from ovseg.settings.methods import get_method

        out = {k: getattr(self, k) for k in ("backbone", "weights", "resolution")}
        out.update(self.method_settings())  # alpha and tau for DiffCut (their order in the JSON)
        out.update({"min_area": self.min_area} if self.min_area else {})  # 0 (DiffCut's): the key as before
        out.update({k: getattr(self, k) for k in ("refine", "dtype", "method", "work_aspect")})
        if "attention_layers" in get_method(self.method).settings:
            out["attention_layers"] = "all" if self.attention_layers is None else list(self.attention_layers)
        if self.resolution is None:  # the registry knows it without loading the model
            from ovseg.features import backbone_info

            out["resolution"] = backbone_info(self.backbone).resolution
        if self.refine:
            out.update(refine_iterations=self.refine_iterations, refine_dilations=self.refine_dilations,
                       refine_filter=self.refine_filter)
        if self.weights and Path(self.weights).expanduser().is_dir():
            out["weights"] = str(Path(self.weights).expanduser().resolve())
        return out

    def method_settings(self) -> dict:
        """The cut method's own settings (`ovseg.masks.get_method(method).settings`), as
        {field: value}: what the method's build and cut read, and the JSON records."""
        from ovseg.settings.methods import get_method

        return {k: getattr(self, k) for k in get_method(self.method).settings}

    def pamr(self):
        """The PAMR settings of the refine stage (`ovseg.masks.PAMRConfig`), or None without refine."""
        from ovseg.masks import PAMRConfig

        if not self.refine:
            return None
        return PAMRConfig(iterations=self.refine_iterations, dilations=self.refine_dilations,
                          label_filter=self.refine_filter)


_FILLED = ("alpha", "tau", "min_area")  # None: the backbone's registry default (`_backbone_defaults`)
# The settings' descriptions, shown by help(ovseg.Segmenter) too
SETTINGS_DOC = SegmenterConfig.__doc__[SegmenterConfig.__doc__.index("    Arguments:"):].rstrip()


def _number(value) -> float:
    """float(value), NaN for what is not a real number (so every range check refuses it)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
