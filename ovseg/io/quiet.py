"""Keeping the command line quiet: third-party warnings, log lines and progress bars off.

Model loading prints much that is not for the user of `ovseg label` (diffusers' advice to install
`accelerate`, transformers' "Loading weights" bars, Hugging Face Hub download bars). The CLI calls
`quiet_third_party()` unless `--verbose`. The Python API leaves logging to the caller, except
while models load (`quiet_loading`): the accelerate advice and loading bars are never for them.
"""
from __future__ import annotations

import contextlib
import importlib
import logging
import os
import sys
import warnings
from typing import Iterator

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
    # import_module, not attribute access: these packages load their submodules lazily, so
    # `huggingface_hub.utils` may not be an attribute yet even though the package is imported.
    if "huggingface_hub" in sys.modules:
        importlib.import_module("huggingface_hub.utils").disable_progress_bars()
    for lib in ("transformers", "diffusers"):
        if lib in sys.modules:
            log = importlib.import_module(f"{lib}.utils.logging")
            log.set_verbosity_error()
            log.disable_progress_bar()


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """While models load (`create_backbone`, `create_labeler`), also in the Python API: the
    loggers of diffusers and transformers below ERROR off, and their progress bars ("Loading
    weights"), restored afterwards. A caller who asked for their output (TRANSFORMERS_VERBOSITY
    or DIFFUSERS_VERBOSITY set, or a level set on their loggers) keeps it."""
    saved = []
    for lib in ("diffusers", "transformers"):
        logger = logging.getLogger(lib)
        if os.environ.get(f"{lib.upper()}_VERBOSITY") or logger.level not in (logging.NOTSET, logging.WARNING):
            continue
        log = importlib.import_module(f"{lib}.utils.logging")
        saved.append((logger, logger.level, log, log.is_progress_bar_enabled()))
        logger.setLevel(logging.ERROR)
        log.disable_progress_bar()
    try:
        yield
    finally:
        for logger, level, log, bars in saved:
            logger.setLevel(level)
            if bars:
                log.enable_progress_bar()
