"""`SegmenterConfig`: every setting of the pipeline, each declared once with its check.

A field says everything about its setting: the default, the description `help(ovseg.Segmenter)`
shows, the check that normalises it (`ovseg.settings.checks`) and, for the command line, the
option's help and where it appears (`ovseg.commands.options` builds the click options from the
fields). Adding a setting is one field plus, if no existing check fits, one check:

    min_area: float = setting(0.0, "segments smaller than this fraction of the image are merged",
                              check=lambda v: checks.check_fraction("min_area", v),
                              cli="pipeline", help="Merge segments below this fraction of the image.",
                              metavar="FRACTION")

Construction runs every check that needs no model, without importing torch (2-7 s): each value,
then what ties them together (the resolution against the backbone's stride, another method's
settings, the backbone's attention layers, $OVSEG_CACHE_SIZE). `validate()` keeps what needs
torch (the device exists, the dtype suits it); `Segmenter` runs it once per run. Both raise
`SettingError(setting, message)`, a ValueError naming the setting, so the CLI can name the option.
"""
from __future__ import annotations

import dataclasses
import textwrap
from dataclasses import dataclass, field, fields
from pathlib import Path

from ovseg.settings import catalog as _catalog
from ovseg.settings import checks
from ovseg.settings import defaults as _defaults
from ovseg.settings import methods as _methods
from ovseg.settings.checks import SettingError
from ovseg.settings.devices import DTYPES, precheck_device, resolve_device

__all__ = ["SETTINGS_DOC", "SegmenterConfig", "setting"]

CLI_GROUPS = ("pipeline", "names", "labeler")  # label and segment; label's automatic names; label's labeler


def setting(default, doc: str, *, check=None, cli: str | None = None, help: str | None = None,
            metavar: str | None = None, choices=None, none: str | None = None, flag: str | None = None):
    """A SegmenterConfig field, declared once.

    default: the value; doc: what `help(ovseg.Segmenter)` says of it; check: value -> the value
    normalised, or SettingError (`ovseg.settings.checks`); cli: where the command line offers it
    ("pipeline": label and segment, "names": label's automatic names, "labeler": label; None: only
    the commands that ask for it by name, `ovseg.commands.options.option`); help: the option's
    help; metavar; choices: the words it takes (or a function returning them); none: the word the
    command line uses for None ("auto", "all"); flag: the option's name, if not the field's."""
    return field(default=default, metadata={"doc": doc, "check": check, "cli": cli, "help": help,
                                            "metavar": metavar, "choices": choices, "none": none, "flag": flag})


def _choice(name: str, words: tuple[str, ...], none: bool = False):
    return lambda value: checks.check_choice(name, value, words, none=none)


def _integer(name: str, minimum: int = 1):
    return lambda value: checks.check_integer(name, value, minimum)


_FILTERS, _ASPECTS, _POOLINGS = ("median", "mode", "none"), ("square", "image"), ("binary", "area")
_SSD = _catalog.BACKBONES["ssd-1b"]  # the paper's backbone, whose defaults the help texts quote
K_HELP = ("kway: a number of segments, or auto: K chosen per image by merging the clusters of a "
          "16-way cut while a pair's two-way NCut is >= tau (as the recursive cut would not split "
          "them); eigengap and tree are the other rules (docs/kway.md). The JSON records k and the "
          "K chosen (k_chosen).")


@dataclass(frozen=True)
class SegmenterConfig:
    """Settings of the whole pipeline; the defaults reproduce DiffCut's open-vocabulary demos.

    Construction checks every value, without a model and without torch (SettingError, a
    ValueError naming the setting); `validate()` checks what needs torch (the device, the dtype on
    it). `config.replace(**changes)` is `dataclasses.replace` that fills the backbone's defaults
    again (alpha, tau) for fields that took them.
    """

    backbone: str = setting(
        "ssd-1b", "feature extractor, a name of `ovseg.list_backbones()`; \"ssd-1b\" (the paper's).",
        check=checks.check_backbone, cli="pipeline", metavar="TEXT",
        help="Feature extractor; `ovseg backbones` lists them.")
    weights: str | None = setting(
        None, "backbone weights: None for the official repo, another Hugging Face repo id "
              "(\"org/name\"), or a local folder (a value that looks like a path must exist).",
        check=lambda v: checks.check_weights_path("weights", v), cli="pipeline", metavar="DIR|REPO",
        help="Backbone weights: a local folder or a Hugging Face repo id [default: the backbone's official repo].")
    resolution: int | None = setting(
        None, "square backbone input in pixels, a multiple of the backbone's stride; None: the "
              f"backbone's own ({_SSD.resolution} for ssd-1b, the paper's).",
        check=checks.check_resolution, cli="pipeline", metavar="INTEGER",
        help="Square backbone input size in pixels, a multiple of its stride [default: the backbone's "
             f"own; {_SSD.resolution} for ssd-1b, as in the paper].")
    alpha: float | str | None = setting(
        None, "affinity exponent, W = C**alpha; finite and > 0, or \"auto\": chosen per image so that W's "
              f"mean off-diagonal entry is {_defaults.DEGREE_TARGET:g}, self-loops removed (METHOD.md 10; "
              "the JSON records alpha_chosen). None: the backbone's default (`ovseg.backbone_info(name).alpha`; "
              f"ssd-1b: {_SSD.alpha:g}, the paper's; \"auto\" for a backbone without a published recipe); "
              "recorded in `backbone_defaults` when so filled.",
        check=checks.check_alpha, cli="pipeline", metavar="FLOAT|auto",
        help=f"Affinity exponent W = C**alpha, or auto: chosen per image so that W's mean off-diagonal entry "
             f"is {_defaults.DEGREE_TARGET:g}, self-loops removed (recorded in the JSON as alpha_chosen) "
             f"[default: the backbone's; {_SSD.alpha:g} for ssd-1b, as in the paper; auto for backbones "
             "without a published recipe; `ovseg backbones` lists them].")
    min_area: float | None = setting(
        None, "segments under this fraction of the image, in [0, 1), merge into their most similar "
              "adjacent segment (mean feature) before PAMR (`ovseg.masks.min_area`); 0: none. None: the "
              f"backbone's default (0 for ssd-1b; {_defaults.MIN_AREA:g} with the calibrated rule).",
        check=lambda v: checks.check_fraction("min_area", v), cli="pipeline", metavar="FRACTION",
        help="Merge segments under this fraction of the image into their most similar adjacent segment, "
             f"before PAMR; 0: none [default: the backbone's; 0 for ssd-1b, {_defaults.MIN_AREA:g} for "
             "backbones whose default alpha is auto].")
    method: str = setting(
        "diffcut", "a cut method of `ovseg.masks.list_methods()`: \"diffcut\" (recursive NCut of the "
                   "feature affinity, the paper), \"random-walk\" (NCut of the backbone's self-attention read "
                   "as a random walk) or \"kway\" (discrete K-way NCut, docs/kway.md).",
        check=checks.check_method, cli="pipeline", choices=_methods.list_methods, help=_methods.method_help)
    tau: float | str | None = setting(
        None, "NCut threshold in [0, 2]; a split is kept when its NCut < tau (lower: fewer, larger "
              f"segments); None: the backbone's default (ssd-1b: {_SSD.tau:g}, the paper's; `ovseg backbones` "
              "lists each, docs/benchmarks-real.md); \"auto\" picks it per image from the hierarchy "
              "(docs/random-walk.md; the JSON records the chosen value as tau_chosen). The JSON records "
              "the values used.",
        check=checks.check_tau, cli="pipeline", metavar="FLOAT|auto",
        help="NCut threshold in [0, 2]: lower gives fewer, larger segments; auto: chosen per image "
             f"(recorded in the JSON as tau_chosen) [default: the backbone's; {_SSD.tau:g} for ssd-1b, as in "
             "the paper]; kway: the merge threshold of --k auto.")
    k: int | str = setting(
        "auto", "kway only: the number of segments (an int >= 1; clusters that empty are dropped), or "
                "a rule: \"auto\" (solve at 16, merge while a pair's two-way NCut is >= tau), \"eigengap\" "
                "or \"tree\" (docs/kway.md); with any k but \"auto\" and \"tree\" tau plays no part. The "
                "JSON and the cache key record it, and the JSON the K chosen (k_chosen).",
        check=checks.check_k, cli="pipeline", metavar="N|auto", help=K_HELP)
    walk_steps: int = setting(
        1, "random-walk only: k of the k-step walk P^k (1: Meila & Shi's one-step walk); larger k merges more.",
        check=_integer("walk_steps"), cli="pipeline", metavar="INTEGER",
        help="random-walk: k-step walks P^k (larger merges more).")
    attention_layers: tuple[int | str, ...] | None = setting(
        None, "random-walk only: self-attention layers combined (names or indices, negative allowed); "
              "None: every layer the backbone's pass runs through (docs/random-walk.md).",
        check=checks.parse_layers, cli="pipeline", metavar="all|LAYERS", none="all",
        help="random-walk: self-attention layers to combine, comma-separated indices (negative allowed) "
             "or names; all: every one the pass runs through.")
    refine: bool = setting(
        True, "refine the upsampled segments with PAMR (DiffCut's open-vocabulary setting).",
        cli="pipeline", help="Refine mask edges with PAMR.")
    refine_iterations: int = setting(
        _defaults.PAMR_ITERATIONS, f"PAMR iterations ({_defaults.PAMR_ITERATIONS}, DiffCut's open-vocabulary "
                                   "evaluation; its demo notebook: 30).",
        check=_integer("refine_iterations", 0), cli="pipeline", metavar="INTEGER",
        help="PAMR iterations (DiffCut's open-vocabulary setting).")
    refine_dilations: tuple[int, ...] = setting(
        _defaults.PAMR_DILATIONS, "PAMR neighbourhood dilations (DiffCut's 1024 px setting).",
        check=checks.check_dilations)
    refine_filter: str = setting(
        _defaults.PAMR_FILTER, "3x3 label filter after PAMR: \"median\" (DiffCut), \"mode\" (majority, never "
                               "invents a minority id) or \"none\".",
        check=_choice("refine_filter", _FILTERS), cli="pipeline", choices=_FILTERS,
        help="3x3 label filter after PAMR: median (DiffCut) or mode (majority).")
    work_aspect: str = setting(
        "square", "\"square\": assign, refine and name segments on the backbone's res x res input, as "
                  "DiffCut, then map back to the image; \"image\": at the image's own aspect.",
        check=_choice("work_aspect", _ASPECTS), cli="pipeline", choices=_ASPECTS,
        help="Assign, refine and name segments on the backbone's square input (DiffCut) or at the image's own aspect.")
    labeler: str = setting("convnext_large_d_320", "open_clip model naming the segments (DiffCut's).")
    labeler_pretrained: str = setting("laion2b_s29b_b131k_ft_soup", "its open_clip pretrained tag.")
    clip_weights: str | None = setting(
        None, "local folder (or repo id) of the labeler's weights.",
        check=lambda v: checks.check_weights_path("clip_weights", v), cli="labeler", metavar="DIR|REPO",
        help="Labeler (open_clip) weights: a local folder or a repo id.")
    clip_resolution: int | None = setting(
        None, "CLIP input short side; None: the working image as is (the backbone's square by default, "
              "as DiffCut); 320 is several times faster on a CPU.",
        check=_integer("clip_resolution", checks.MIN_RESOLUTION), cli="labeler", metavar="INTEGER",
        help="CLIP input short side; 320 is ~10x faster on CPU [default: the backbone's square input, as DiffCut].")
    clip_normalize: bool = setting(
        False, "CLIP's mean/std on its input (False: raw [0, 1], as DiffCut's code).",
        cli="labeler", help="Apply CLIP's mean/std to its input (DiffCut feeds raw [0, 1]).")
    clip_pooling: str = setting(
        "binary", "\"binary\" (segment masks nearest-exact on the CLIP grid, DiffCut) or \"area\" "
                  "(area-weighted masks).",
        check=_choice("clip_pooling", _POOLINGS), cli="labeler", choices=_POOLINGS,
        help="Segment masks on the CLIP grid: binary nearest-exact (DiffCut) or area weights.")
    top_k: int = setting(
        3, "alternatives kept per segment in the JSON.",
        check=_integer("top_k"), cli="labeler", metavar="INTEGER", help="Alternative classes kept per segment in the JSON.")
    max_classes: int = setting(
        12, "automatic names (`label` with no class list): names chosen per image at most "
            "(docs/auto-vocabulary.md).",
        check=_integer("max_classes"), cli="names", metavar="INTEGER",
        help="Automatic names: at most this many per image.")
    bank: str | None = setting(
        None, "automatic names: a name-bank file; None: the shipped bank (2,135 names from LVIS, "
              "COCO-Stuff, ADE20K-full, Objects365, OpenImages; prompts/README.md).",
        check=lambda v: checks.check_file("bank", v, "a name bank: one class per line"), cli="names",
        metavar="FILE", help="Automatic names: your own name bank (one class per line, synonyms by commas) "
                             "[default: the shipped bank, 2,135 names].")
    device: str | None = setting(
        None, "\"cpu\", \"cuda\", \"cuda:1\", \"mps\"; None: CUDA when available, else CPU.",
        check=precheck_device, cli="pipeline", metavar="TEXT", help="cpu, cuda, cuda:1, ... [default: cuda if available]")
    dtype: str | None = setting(
        None, "backbone precision \"float32\" | \"float16\" | \"bfloat16\"; None: float16 on CUDA, float32 on the CPU.",
        check=_choice("dtype", DTYPES, none=True), cli="pipeline", choices=DTYPES, none="auto",
        help="Backbone precision; auto: fp16 on GPU, fp32 on CPU (the backbone's choice).")
    batch_size: int = setting(
        1, "images per backbone pass and dense CLIP pass.",
        check=_integer("batch_size"), cli="pipeline", metavar="INTEGER", help="Images per backbone pass.")
    overlap: bool = setting(
        True, "process_files decodes ahead and writes behind in background threads; the outputs are "
              "the same bytes either way (`ovseg.pipeline._runner`).")
    max_pixels: int = setting(
        _defaults.MAX_PIXELS, "inputs (files and arrays) above this many pixels are scaled down first "
                              "(2**25, about 33.5 MP; see `ovseg.io`).",
        check=_integer("max_pixels"), cli="pipeline", metavar="INTEGER",
        help="Larger images (any format) are scaled down to this many pixels; files above 179 MP are "
             "refused as possible decompression bombs.")
    cache: bool = setting(
        True, "keep segment maps (and class-name embeddings) on disk, keyed by pixels and settings, so "
              "relabelling skips the backbone (see `ovseg.io.cache`; its bound: $OVSEG_CACHE_SIZE).",
        cli="pipeline", help="Reuse segments of images seen before with the same settings.")
    cache_dir: str | None = setting(None, "folder of the segment cache; None: `$OVSEG_CACHE/segments`.")
    backbone_defaults: tuple[str, ...] = field(default=(), init=False, compare=False, metadata={
        "doc": "set on construction, not given: the fields (alpha, tau, min_area) that were None and took the "
               "backbone's defaults; `replace` and `Segmenter(config, backbone=...)` fill them again."})

    def __post_init__(self) -> None:
        for f in fields(self):  # each value on its own, normalised
            if f.init and f.metadata.get("check") is not None:
                object.__setattr__(self, f.name, f.metadata["check"](getattr(self, f.name)))
        given = [f.name for f in fields(self) if f.init and getattr(self, f.name) != f.default]
        facts = _catalog.backbone_facts(self.backbone)
        filled = tuple(name for name in ("alpha", "tau", "min_area") if getattr(self, name) is None)
        for name in filled:  # the backbone's defaults, recorded as such (docs/benchmarks-real.md)
            object.__setattr__(self, name, getattr(facts, name))
        object.__setattr__(self, "backbone_defaults", filled)
        checks.check_resolution(self.resolution or facts.resolution, self.backbone)
        checks.check_method_settings(self.method, {f.name: getattr(self, f.name) for f in fields(self)}, given,
                                     ignored=False)  # a value the method ignores lies unused (the CLI refuses it)
        if _methods.get_method(self.method).needs == "attention":
            object.__setattr__(self, "attention_layers", checks.check_attention_layers(self.backbone, self.attention_layers))
        if self.cache:
            checks.check_cache_size()

    def validate(self) -> SegmenterConfig:
        """What needs torch, before any model loads: the device exists on this machine and the dtype
        suits it. Raises SettingError (a ValueError) naming the setting; returns self."""
        device = resolve_device(self.device)
        if self.dtype == "float16" and device.type == "cpu":
            raise SettingError("dtype", "dtype float16 is not supported on the CPU (slow, and some kernels "
                                        "lack it): use float32 or bfloat16, or run on a GPU")
        if self.dtype == "bfloat16" and device.type == "cuda":
            import torch

            if not torch.cuda.is_bf16_supported():
                raise SettingError("dtype", f"dtype bfloat16 is not supported by {device}: use float16")
        return self

    def replace(self, **changes) -> SegmenterConfig:
        """`dataclasses.replace` with the backbone's defaults filled again for the fields that took
        them (`backbone_defaults`), so a new backbone brings its own alpha and tau."""
        return dataclasses.replace(self, **{**{name: None for name in self.backbone_defaults}, **changes})

    def segment_settings(self) -> dict:
        """The settings that change segment maps: the cache key and the JSON record them."""
        out = {k: getattr(self, k) for k in ("backbone", "weights", "resolution")}
        out.update(self.method_settings())  # alpha and tau for DiffCut (their order in the JSON)
        out.update({"min_area": self.min_area} if self.min_area else {})  # 0 (DiffCut's): the key as before
        out.update({k: getattr(self, k) for k in ("refine", "dtype", "method", "work_aspect")})
        if "attention_layers" in _methods.get_method(self.method).settings:
            out["attention_layers"] = "all" if self.attention_layers is None else list(self.attention_layers)
        if self.resolution is None:  # the catalog knows it without loading the model
            out["resolution"] = _catalog.backbone_facts(self.backbone).resolution
        if self.refine:
            out.update(refine_iterations=self.refine_iterations, refine_dilations=self.refine_dilations,
                       refine_filter=self.refine_filter)
        if self.weights and Path(self.weights).expanduser().is_dir():
            out["weights"] = str(Path(self.weights).expanduser().resolve())
        return out

    def method_settings(self) -> dict:
        """The cut method's own settings (`ovseg.masks.get_method(method).settings`), as
        {field: value}: what the method's build and cut read, and the JSON records."""
        return {k: getattr(self, k) for k in _methods.get_method(self.method).settings}


def _settings_doc() -> str:
    """The "Arguments:" section of `help(SegmenterConfig)` and `help(Segmenter)`, from the fields."""
    lines = ["    Arguments:"]
    for f in fields(SegmenterConfig):
        lines += textwrap.wrap(f"{f.name} ({f.type}): {f.metadata['doc']}", 98, initial_indent="      ",
                               subsequent_indent="        ")
    return "\n".join(lines)


# The settings' descriptions, shown by help(ovseg.Segmenter) too
SETTINGS_DOC = _settings_doc()
SegmenterConfig.__doc__ = SegmenterConfig.__doc__.rstrip() + "\n\n" + SETTINGS_DOC + "\n"
