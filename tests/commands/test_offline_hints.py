"""Issue 31 item 1: offline, with no weights anywhere, every command's message names the exact
files to copy (`hf download REPO --include FILE ...`, the list the loaders use and docs/weights.md
gives) for the backbone AND for CLIP, before any model is built."""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from ovseg.cli import main

SSD = ("`hf download segmind/SSD-1B --local-dir DIR --include model_index.json --include "
       "scheduler/scheduler_config.json --include unet/config.json --include vae/config.json --include "
       "unet/diffusion_pytorch_model.fp16.safetensors --include vae/diffusion_pytorch_model.fp16.safetensors "
       "--include text_encoder/config.json --include text_encoder/model.fp16.safetensors --include "
       '"tokenizer/*" --include text_encoder_2/config.json --include text_encoder_2/model.fp16.safetensors '
       '--include "tokenizer_2/*"`')
CLIP = ("`hf download laion/CLIP-convnext_large_d_320.laion2B-s29B-b131K-ft-soup --local-dir DIR "
        "--include open_clip_config.json --include open_clip_pytorch_model.bin`")
DINO = "`hf download facebook/dinov2-base --local-dir DIR --include config.json --include model.safetensors`"


@pytest.fixture
def offline(tmp_path, monkeypatch, no_models):
    """No weights on this machine: an empty Hugging Face cache, no hub; models may not be built."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("OVSEG_CACHE", str(tmp_path / "ovseg"))
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(tmp_path / "a.png")
    voc = tmp_path / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / sub).mkdir(parents=True)
    (voc / "ImageSets/Segmentation/val.txt").write_text("a\n")
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(voc / "JPEGImages/a.jpg")
    Image.fromarray(np.zeros((32, 32), np.uint8), "L").save(voc / "SegmentationClass/a.png")
    return tmp_path


@pytest.mark.parametrize("command, hint", [
    ("segment {a} --out {t}/o", SSD),
    ("label {a} -c cat --out {t}/o", SSD),
    ("label {a} -c cat --weights {tiny} --out {t}/o", CLIP),
    ("eval --dataset voc --root {t} --out {t}/e", SSD),
    ("eval --dataset voc --root {t} --protocol open-vocabulary --weights {tiny} --out {t}/e", CLIP),
    ("coherence {a} -b dinov2-b --out {t}/c.png", DINO),
    ("demo", SSD),
    ("demo --weights {tiny}", CLIP),
])
def test_every_command_names_the_files_to_copy(offline, tiny_weights, command, hint):
    if command.startswith("demo"):
        pytest.importorskip("gradio", reason='needs pip install -e ".[demo]"')
    args = command.format(a=offline / "a.png", t=offline, tiny=tiny_weights["weights"]).split()
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1, r.output
    assert hint in r.output, r.output
    assert "a model was built" not in r.output
