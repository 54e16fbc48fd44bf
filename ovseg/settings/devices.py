"""One device and dtype rule for every model ovseg builds (backbones, labeler, evaluation, demo).

    resolve_device(None)        -> cuda when available, else cpu
    resolve_device("cuda")      -> SettingError("device", ...) on a machine without CUDA
    resolve_dtype(None, device) -> float16 on CUDA, float32 elsewhere (the backbones' choice)
    precheck_device("cuda")     -> the same SettingError without importing torch (2-7 s), where
                                   the answer is certain (no GPU driver on Linux; mps off macOS)
"""
from __future__ import annotations

import os
import sys

from ovseg.settings.checks import DEVICE_PATTERN, SettingError

__all__ = ["precheck_device", "resolve_device", "resolve_dtype"]

# What a Linux machine on which torch can reach a CUDA (or ROCm, HIP as "cuda") GPU has, whatever
# the container: the NVIDIA driver's files, WSL's GPU device, or the ROCm kernel driver.
GPU_DRIVER_FILES = ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg", "/dev/kfd")


def precheck_device(device):
    """Without torch: SettingError("device") for a device name that is not one, for "cuda" on
    Linux with none of GPU_DRIVER_FILES (or on macOS, where torch has no CUDA) and for "mps" off
    macOS. Anything it cannot be sure of passes: `resolve_device` (torch) decides. Returns `device`."""
    if device is None:
        return None
    name = str(device)  # a torch.device too (str() needs no import)
    if not DEVICE_PATTERN.fullmatch(name):
        raise SettingError("device", f"device {name!r} is not a device name: use cpu, cuda, cuda:N "
                                     "or mps (or leave it unset: cuda when available)")
    kind = name.partition(":")[0]
    if kind == "cuda" and (sys.platform == "darwin" or sys.platform.startswith("linux")
                           and not any(os.path.exists(f) for f in GPU_DRIVER_FILES)):
        raise SettingError("device", f"device {name!r}: CUDA is not available on this machine (no GPU "
                                     "driver found); use --device cpu")
    if kind == "mps" and sys.platform != "darwin":
        raise SettingError("device", f"device {name!r}: MPS is not available on this machine (MPS is "
                                     "Apple silicon's GPU, macOS only); use --device cpu")
    return device

DTYPES = ("float32", "float16", "bfloat16")


def resolve_device(device=None):
    """torch.device of a setting ("cpu", "cuda", "cuda:1", "mps", a torch.device; None: cuda when
    available, else cpu). Raises SettingError("device") when that device is not on this machine:
    at once (`precheck_device`) where that is certain, else after asking torch."""
    precheck_device(device)
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
