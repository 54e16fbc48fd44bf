"""One device and dtype rule (`ovseg.settings.devices`): None -> CUDA when available; a device that is
not there is a SettingError naming it, before any model loads, in Python and on the CLI."""
import numpy as np
import pytest
import torch

from ovseg.settings.checks import SettingError
from ovseg.settings.devices import resolve_device, resolve_dtype

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
def test_segmenter_on_cuda_without_cuda_fails_before_loading(tiny_weights, monkeypatch):
    from ovseg import Segmenter, SegmenterConfig

    with pytest.raises(SettingError, match="CUDA is not available"):  # no driver: at construction
        Segmenter(SegmenterConfig(device="cuda", cache=False, resolution=64, **tiny_weights))
    monkeypatch.setattr("ovseg.settings.devices.GPU_DRIVER_FILES", (__file__,))  # the pre-check cannot be sure
    seg = Segmenter(device="cuda", cache=False, resolution=64, **tiny_weights)
    with pytest.raises(SettingError, match="CUDA is not available"):  # torch's answer, on first use
        seg.segment(np.zeros((16, 16, 3), np.uint8))
    assert seg.models.loaded() == {"backbone": None, "labeler": None}


@pytest.fixture
def no_torch_answer(monkeypatch):
    """torch.cuda / torch.backends.mps asked: the test fails (the pre-check must answer alone)."""
    def asked(*args):
        raise AssertionError("torch was asked")

    monkeypatch.setattr(torch.cuda, "is_available", asked)
    monkeypatch.setattr(torch.backends.mps, "is_available", asked)


@pytest.mark.parametrize("device", ["cuda", "cuda:1", torch.device("cuda", 0)])
def test_cuda_without_a_gpu_driver_is_refused_before_torch(monkeypatch, no_torch_answer, device):
    from ovseg.settings.devices import precheck_device

    monkeypatch.setattr("ovseg.settings.devices.GPU_DRIVER_FILES", ("/no/such/driver",))
    monkeypatch.setattr("sys.platform", "linux")
    for check in (precheck_device, resolve_device):
        with pytest.raises(SettingError, match="CUDA is not available .*no GPU driver") as info:
            check(device)
        assert info.value.setting == "device"
    monkeypatch.setattr("sys.platform", "darwin")  # torch has no CUDA on macOS
    with pytest.raises(SettingError, match="CUDA is not available"):
        precheck_device(device)


def test_mps_off_macos_is_refused_before_torch(monkeypatch, no_torch_answer):
    from ovseg.settings.devices import precheck_device

    monkeypatch.setattr("sys.platform", "linux")
    with pytest.raises(SettingError, match="MPS is not available .*macOS only"):
        resolve_device("mps")
    monkeypatch.setattr("sys.platform", "darwin")
    precheck_device("mps")  # on a Mac torch decides


def test_the_pre_check_passes_what_it_cannot_be_sure_of(monkeypatch, no_torch_answer):
    from ovseg.settings.devices import precheck_device

    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.setattr("ovseg.settings.devices.GPU_DRIVER_FILES", (__file__,))  # a driver file is there
    for device in ("cuda", "cuda:3", "cpu", None, "xpu"):
        precheck_device(device)
    monkeypatch.setattr("sys.platform", "win32")  # no driver files to look at
    monkeypatch.setattr("ovseg.settings.devices.GPU_DRIVER_FILES", ("/no/such/driver",))
    precheck_device("cuda")
    with pytest.raises(SettingError, match="not a device name"):
        precheck_device("gpu")


@no_cuda
def test_the_labeler_and_backbone_builders_use_the_same_rule(tiny_weights):
    from ovseg.features import create_backbone
    from ovseg.labels import create_labeler

    with pytest.raises(SettingError, match="CUDA"):
        create_backbone("ssd-1b", weights=tiny_weights["weights"], device="cuda")
    with pytest.raises(SettingError, match="CUDA"):
        create_labeler(weights=tiny_weights["clip_weights"], device="cuda")
    assert create_labeler(weights=tiny_weights["clip_weights"]).device.type == "cpu"  # None: cuda if available
