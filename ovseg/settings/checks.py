"""One check per setting, one message each: they need no model and no torch, so a bad setting
costs milliseconds, not the minute a diffusion backbone takes to load.

Each check takes the value as Python gives it (the command line's text goes through `from_text`
first: "0.4" -> 0.4), returns it normalised (a float, an int, a tuple) and raises
`SettingError(setting, message)` otherwise. `SegmenterConfig` runs them on construction, the click types of every command call
them (`ovseg.commands.options`), so the API and the CLI say the same words; the CLI names the
option ("alpha" -> --alpha) and exits 2.

    check_backbone      a registered name          check_resolution   >= 32, a multiple of the stride
    check_alpha         finite, > 0                check_tau          [0, 2] or "auto"
    check_method        a registered cut method    check_k            an int >= 1 or a K rule
    check_integer       an int >= a minimum        check_choice       one of a few words
    check_attention_layers   the backbone's layers (names or indices)
    check_method_settings    no setting of another cut method (nor one this method ignores)
    check_weights_path / check_file / check_output_dir / check_cache_size   folders, files, $OVSEG_CACHE_SIZE
    automatic_names / check_names    class list or automatic names: the one rule
"""
from __future__ import annotations

import math
import numbers
import os
import re
import tempfile
from pathlib import Path
from typing import Iterable

from ovseg.settings import catalog as _catalog
from ovseg.settings import defaults as _defaults
from ovseg.settings import methods as _methods


class SettingError(ValueError):
    """A setting that cannot work, found before any model loads; `setting` names it ("resolution")."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(message)
        self.setting = setting


DEVICE_PATTERN = re.compile(r"(cpu|cuda|mps|xpu|hpu|npu|xla|meta|ipu|privateuseone)(:\d+)?")
MIN_RESOLUTION = 32  # the smallest input any backbone's stride (<= 32) leaves one feature cell of


def _real(value) -> float:
    """float(value) of a real number; NaN for anything else, text and True included (so every
    range check refuses it)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return math.nan
    return float(value)


def _whole(value) -> int | None:
    """The int of an int or a whole float; None for anything else (text and True included)."""
    number = _real(value)
    return int(number) if math.isfinite(number) and number == int(number) else None


def from_text(text):
    """A number typed on the command line as Python would give it ("4" -> 4, "0.4" -> 0.4, "nan"
    -> nan); other text ("auto", "six") as is, for the setting's check to judge."""
    if not isinstance(text, str):
        return text
    for kind in (int, float):
        try:
            return kind(text.strip())
        except ValueError:
            pass
    return text.strip()


# -- numbers ---------------------------------------------------------------------------------------
def check_integer(setting: str, value, minimum: int = 1):
    """An int >= minimum (its text too); None stays None."""
    if value is None:
        return None
    number = _whole(value)
    if number is None or number < minimum:
        raise SettingError(setting, f"{setting} must be an integer >= {minimum}, got {value!r}")
    return number


def check_alpha(alpha):
    """The affinity exponent W = C**alpha: a finite number > 0, or "auto" (chosen per image,
    METHOD.md 10); None: the backbone's."""
    if alpha is None or isinstance(alpha, str) and alpha.strip() == "auto":
        return None if alpha is None else "auto"
    number = _real(alpha)
    if not (math.isfinite(number) and number > 0):
        raise SettingError("alpha", f'alpha must be a finite positive number or "auto", got {alpha!r}')
    return number


def check_fraction(setting: str, value):
    """A fraction of the image in [0, 1) (min_area: 0 merges nothing); None: the backbone's."""
    if value is None:
        return None
    number = _real(value)
    if not 0 <= number < 1:
        raise SettingError(setting, f"{setting} must be a fraction of the image in [0, 1), got {value!r}")
    return number


def check_tau(tau):
    """The NCut threshold: a number in [0, 2] (the range of NCut) or "auto"; None: the backbone's."""
    if tau is None or isinstance(tau, str) and tau.strip() == "auto":
        return None if tau is None else "auto"
    number = _real(tau)
    if not 0 <= number <= 2:
        raise SettingError("tau", f'tau must be a number in [0, 2] (the range of NCut) or "auto", got {tau!r}')
    return number


def check_k(k):
    """kway's K: a number of segments (an int >= 1) or a K rule (`ovseg.settings.methods.K_RULES`)."""
    if isinstance(k, str) and k.strip() in _methods.K_RULES:
        return k.strip()
    number = _whole(k)
    if number is None or number < 1:
        raise SettingError("k", f"k must be a number of segments (an int >= 1) or one of "
                                f"{', '.join(_methods.K_RULES)}, got {k!r}")
    return number


def check_choice(setting: str, value, choices: Iterable[str], *, none: bool = False):
    """One of `choices` (None too when `none`)."""
    choices = tuple(choices)
    if value is None and none or value in choices:
        return value
    raise SettingError(setting, f"{setting} must be one of {', '.join(choices)}, got {value!r}")


def check_dilations(dilations) -> tuple[int, ...]:
    """PAMR's neighbourhood dilations: one or more ints >= 1."""
    try:
        out = tuple(check_integer("refine_dilations", d) for d in dilations)
    except (TypeError, SettingError):
        out = ()
    if not out:
        raise SettingError("refine_dilations", f"refine_dilations must be one or more ints >= 1, got {dilations!r}")
    return out


# -- backbones -------------------------------------------------------------------------------------
def check_backbone(name) -> str:
    """A name of `ovseg.list_backbones()` (plugins by name, none imported)."""
    try:
        _catalog.backbone_facts(name)
    except ValueError as err:
        raise SettingError("backbone", str(err)) from None
    return name


def nearest_multiple(value: int, step: int) -> int:
    """The multiple of `step` nearest `value` (at least `step`)."""
    return max(step, round(value / step) * step)


def check_resolution(resolution, backbones: str | Iterable[str] = (), *, stride: int | None = None):
    """The square backbone input: an int >= 32 and, for each of `backbones` (or for `stride`), a
    multiple of its stride; the message suggests the nearest multiple. None: the backbone's own."""
    if resolution is None:
        return None
    res = _whole(resolution)
    if res is None or res < MIN_RESOLUTION:
        raise SettingError("resolution", f"resolution must be an integer >= {MIN_RESOLUTION}, got {resolution!r}")
    names = [backbones] if isinstance(backbones, str) else list(backbones)
    if stride is not None:  # the stride of a backbone built already (`create_backbone`)
        strides = {names[0]: stride}
    else:
        strides = {n: s for n in names if (s := _catalog.backbone_facts(n).stride)}
    step = math.lcm(*strides.values()) if strides else 1
    if res % step:
        if len(strides) == 1:
            (name, s), = strides.items()
            raise SettingError("resolution", f"resolution {res} is not a multiple of the {name} backbone's "
                                             f"stride {s}; try {nearest_multiple(res, s)}")
        raise SettingError("resolution", f"resolution {res} is not a multiple of every backbone's stride "
                                         f"({', '.join(f'{n}: {s}' for n, s in strides.items())}); "
                                         f"try {nearest_multiple(res, step)}")
    return res


def parse_layers(layers) -> tuple[int | str, ...] | None:
    """Attention layers as given: None or "all" (every layer), a tuple, or text "0,-1,name"."""
    if layers is None or isinstance(layers, str) and layers.strip() == "all":
        return None
    parts = layers.split(",") if isinstance(layers, str) else list(layers)
    out = tuple(int(p) if isinstance(p, str) and p.strip().lstrip("-").isdigit() else p.strip()
                if isinstance(p, str) else p for p in parts)
    if not out or any(p == "" for p in out):
        raise SettingError("attention_layers", f"attention_layers {layers!r}: an empty layer; give at least "
                                               "one layer (indices or names), or all")
    return out


def check_attention_layers(backbone: str, layers=None) -> tuple[int | str, ...] | None:
    """Layers of `backbone`'s self-attention maps: None (every layer the pass runs through), or
    indices into `ovseg.settings.catalog.attention_layers(backbone)` (negative allowed) and/or
    their names. SettingError "method" for a backbone without attention maps (naming those that
    have them), "attention_layers" for an unknown name or an index out of range."""
    layers = parse_layers(layers)
    if _catalog.backbone_facts(backbone).attention is None:  # a plugin not loaded yet: its loader decides
        return layers
    names = _catalog.attention_layers(backbone)
    if names is None:
        raise SettingError("method", f"backbone {backbone!r} gives no self-attention maps, which the "
                                     f"random-walk method needs; backbones that do: "
                                     f"{', '.join(_catalog.attention_backbones())}")
    for layer in layers or ():
        if isinstance(layer, bool) or not isinstance(layer, (int, str)):
            raise SettingError("attention_layers", f"attention layer {layer!r}: give an index or a name")
        if isinstance(layer, int) and not -len(names) <= layer < len(names):
            raise SettingError("attention_layers", f"attention layer {layer} out of range: {backbone} records "
                                                   f"{len(names)} layers (indices {-len(names)}..{len(names) - 1})")
        if isinstance(layer, str) and layer not in names:
            raise SettingError("attention_layers", f"unknown attention layer {layer!r} of {backbone}; "
                                                   f"valid: {', '.join(names)}")
    return layers


# -- cut methods -----------------------------------------------------------------------------------
def check_method(method) -> str:
    """A name of `ovseg.masks.list_methods()`."""
    if method not in _methods.list_methods():
        raise SettingError("method", f"method must be one of {', '.join(_methods.list_methods())}, got {method!r}")
    return method


def check_method_settings(method: str, values: dict, given: Iterable[str], *, ignored: bool = True) -> None:
    """No setting of another cut method among `given` (the names set explicitly), and, with
    `ignored`, none that `method` ignores for these `values` (kway with a fixed k ignores tau: the
    command line refuses it; the API lets the value lie unused): each is a mistake the run would
    otherwise hide."""
    entry = _methods.get_method(method)
    given = set(given)
    for name in dict.fromkeys(f for m in _methods.list_methods() for f in _methods.get_method(m).settings):
        if name in given and name not in entry.settings:
            users = [m for m in _methods.list_methods() if name in _methods.get_method(m).settings]
            raise SettingError(name, f"{name} applies to method {' or '.join(users)} only")
    for name, reason in entry.ignores(dict(values)).items() if ignored else ():
        if name in given:
            raise SettingError(name, f"{name}: {reason}")


# -- files and folders -----------------------------------------------------------------------------
def looks_like_path(text: str) -> bool:
    """A weights value read as a local folder, not a repo id ("org/name"): it starts with ".", "~"
    or "/", ends with a separator, or has a separator other than the one between org and name."""
    return (text.startswith((".", "~", "/", os.sep)) or text.endswith(("/", os.sep))
            or text.count("/") > 1 or (os.sep != "/" and os.sep in text) or os.path.isabs(text))


def looks_like_file(text: str) -> bool:
    """A vocabulary given as a file: a path separator, or a file suffix such as ".txt"."""
    return ("/" in text or os.sep in text or "," not in text
            and re.fullmatch(r"\.[A-Za-z][A-Za-z0-9]{0,4}", Path(text).suffix) is not None)


def check_weights_path(setting: str, weights) -> str | None:
    """Model weights: None (the official repo), a Hugging Face repo id ("org/name") or a local
    folder; a value that looks like a path must be a folder."""
    if weights is None:
        return None
    path = Path(str(weights)).expanduser()
    if path.is_dir():
        return str(weights)
    if path.exists():
        raise SettingError(setting, f"{setting} {weights}: not a folder (expected a folder of model files)")
    if looks_like_path(str(weights)):
        raise SettingError(setting, f"{setting} {weights}: no such folder (a value that looks like a "
                                    "path is read as a local folder; a Hugging Face repo id is org/name)")
    return str(weights)


def check_file(setting: str, path, what: str) -> str | None:
    """A file that exists (None stays None); `what` says what it holds, for the message."""
    if path is None:
        return None
    if not Path(str(path)).expanduser().is_file():
        raise SettingError(setting, f"{setting} {path} does not exist (expected a file: {what})")
    return str(path)


def check_output_dir(out_dir: str | os.PathLike) -> Path:
    """Fail fast (SettingError "out") unless `out_dir` is, or can be created as, a writable folder:
    a file is created and removed in it, or in its nearest existing parent; nothing is left."""
    out = Path(out_dir).expanduser()
    probe = out
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise SettingError("out", f"cannot write outputs into {out}: {probe} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=probe, prefix=".ovseg-probe-"):
            pass
    except OSError as err:
        raise SettingError("out", f"cannot write outputs into {out}: {err.strerror or err}") from None
    return out


def check_cache_size() -> int:
    """The segment cache's size bound: `$OVSEG_CACHE_SIZE` ("500M", "4G", bytes), default 4 GB."""
    text = os.environ.get("OVSEG_CACHE_SIZE", "").strip().upper()
    if not text:
        return _defaults.CACHE_BYTES
    units = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    number, unit = (text[:-1], units[text[-1]]) if text[-1] in units else (text.rstrip("B"), 1)
    try:
        value = int(float(number) * unit)
    except (ValueError, OverflowError):  # "banana", "inf"
        raise SettingError("OVSEG_CACHE_SIZE", f"OVSEG_CACHE_SIZE={text!r}: expected a size such as "
                                               "500M, 4G or a number of bytes") from None
    if value < 0:
        raise SettingError("OVSEG_CACHE_SIZE", f"OVSEG_CACHE_SIZE must not be negative, got {text!r}")
    return value


# -- which names a run gives -----------------------------------------------------------------------
def automatic_names(classes, vocab) -> bool:
    """The one rule: automatic names (each image's chosen from the name bank) when neither a class
    list nor a vocabulary is given, or vocab="auto"; else the names given."""
    return classes is None and (vocab is None or isinstance(vocab, str) and vocab == "auto")


def check_names(classes, vocab, given: Iterable[str] = ()) -> bool:
    """At most one of classes and vocab, classes not blank, and the automatic-names settings
    (max_classes, bank; `given`: those set explicitly) only with automatic names. Returns
    `automatic_names(classes, vocab)`."""
    if classes is not None and vocab is not None:
        raise SettingError("classes", "give at most one of classes and vocab")
    texts = [classes] if isinstance(classes, str) else classes if isinstance(classes, (list, tuple)) else []
    if texts and any(isinstance(t, str) and not t.strip(" ,") for t in texts):  # the CLI's -c, given n times
        raise SettingError("classes", "classes is empty")
    auto = automatic_names(classes, vocab)
    for name in ("max_classes", "bank"):
        if name in set(given) and not auto:
            raise SettingError(name, f"{name} applies to automatic names only (neither classes nor vocab, "
                                     "or vocab auto)")
    return auto
