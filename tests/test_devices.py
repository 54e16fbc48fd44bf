"""One device and dtype rule (`ovseg._devices`): None -> CUDA when available; a device that is
not there is a SettingError naming it, before any model loads, in Python and on the CLI."""
import numpy as np
import pytest
import torch

from ovseg._checks import SettingError
from ovseg._devices import resolve_device, resolve_dtype

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")


def test_the_default_device_and_dtype():
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(None).type == want and resolve_device("cpu") == torch.device("cpu")
    assert resolve_dtype(None, torch.device("cpu")) == "float32"
    assert resolve_dtype(None, torch.device("cuda")) == "float16"
    assert resolve_dtype("bfloat16", torch.device("cpu")) == "bfloat16"
    assert resolve_dtype(torch.float16, torch.device("cuda")) == "float16"
    with pytest.raises(SettingError, match="dtype"):
        resolve_dtype("float64", torch.device("cpu"))


@no_cuda
def test_cuda_without_cuda_is_a_setting_error():
    with pytest.raises(SettingError, match="CUDA is not available") as info:
        resolve_device("cuda")
    assert info.value.setting == "device"


@no_cuda
def test_segmenter_on_cuda_without_cuda_fails_before_loading(tiny_weights):
    from ovseg import Segmenter

    seg = Segmenter(device="cuda", cache=False, resolution=64, **tiny_weights)
    with pytest.raises(SettingError, match="CUDA is not available"):
        seg.segment(np.zeros((16, 16, 3), np.uint8))
    assert seg.models.loaded() == {"backbone": None, "labeler": None}


@no_cuda
def test_the_labeler_and_backbone_builders_use_the_same_rule(tiny_weights):
    from ovseg.features import create_backbone
    from ovseg.labels import create_labeler

    with pytest.raises(SettingError, match="CUDA"):
        create_backbone("ssd-1b", weights=tiny_weights["weights"], device="cuda")
    with pytest.raises(SettingError, match="CUDA"):
        create_labeler(weights=tiny_weights["clip_weights"], device="cuda")
    assert create_labeler(weights=tiny_weights["clip_weights"]).device.type == "cpu"  # None: cuda if available
