"""One device and dtype rule for every model ovseg builds (backbones, labeler, evaluation, demo).

    resolve_device(None)        -> cuda when available, else cpu
    resolve_device("cuda")      -> SettingError("device", ...) on a machine without CUDA
    resolve_dtype(None, device) -> float16 on CUDA, float32 elsewhere (the backbones' choice)
"""
from __future__ import annotations

from ovseg._checks import SettingError

__all__ = ["resolve_device", "resolve_dtype"]

DTYPES = ("float32", "float16", "bfloat16")


def resolve_device(device=None):
    """torch.device of a setting ("cpu", "cuda", "cuda:1", "mps", a torch.device; None: cuda when
    available, else cpu). Raises SettingError("device") when that device is not on this machine."""
    import torch

    if isinstance(device, torch.device):
        device = str(device)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise SettingError("device", f"device {device!r}: CUDA is not available on this machine "
                                         "(torch.cuda.is_available() is False); use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise SettingError("device", f"device {device!r}: this machine has "
                                         f"{torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise SettingError("device", f"device {device!r}: MPS is not available on this machine")
    elif dev.type not in ("cpu", "cuda", "mps"):
        mod = getattr(torch, dev.type, None)
        if mod is None or not getattr(mod, "is_available", lambda: False)():
            raise SettingError("device", f"device {device!r} is not available on this machine")
    return dev


def resolve_dtype(dtype, device) -> str:
    """The dtype name a model runs in: `dtype` ("float32" | "float16" | "bfloat16", or a
    torch.dtype) as given; None: "float16" on CUDA, "float32" elsewhere."""
    if dtype is None:
        return "float16" if getattr(device, "type", str(device)).startswith("cuda") else "float32"
    name = str(dtype).removeprefix("torch.")
    if name not in DTYPES:
        raise SettingError("dtype", f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return name


def torch_dtype(name):
    """torch.float32 etc. for a dtype name (None stays None)."""
    if name is None:
        return None
    import torch

    return getattr(torch, str(name).removeprefix("torch."))
