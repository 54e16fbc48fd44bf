"""Keeping the command line quiet: third-party warnings, log lines and progress bars off.

Model loading prints much that is not for the user of `ovseg label` (diffusers' advice to install
`accelerate`, transformers' "Loading weights" bars, Hugging Face Hub download bars). The CLI calls
`quiet_third_party()` unless `--verbose`; the Python API leaves logging to the caller.
"""
from __future__ import annotations

import logging
import os
import sys
import warnings

THIRD_PARTY = ("accelerate", "transformers", "diffusers", "huggingface_hub", "open_clip", "timm",
               "safetensors")


def quiet_third_party() -> None:
    """Silence warnings, log records below ERROR and progress bars of the libraries ovseg loads
    models with, whether they are imported already or later (environment variables)."""
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["TRANSFORMERS_VERBOSITY"] = "error"
    os.environ["DIFFUSERS_VERBOSITY"] = "error"
    os.environ["TRANSFORMERS_NO_ADVISORY_WARNINGS"] = "1"
    for name in THIRD_PARTY:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"(%s)(\.|$)" % "|".join(THIRD_PARTY + ("torch",)))
    if "huggingface_hub" in sys.modules:
        sys.modules["huggingface_hub"].utils.disable_progress_bars()
    for lib in ("transformers", "diffusers"):
        if lib in sys.modules:
            log = sys.modules[lib].utils.logging
            log.set_verbosity_error()
            log.disable_progress_bar()
