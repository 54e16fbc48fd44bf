"""Settings checks that need no model: they run before any model loads, so a bad setting costs
seconds, not the minute a diffusion backbone takes to load. Each raises SettingError naming the
setting (the CLI turns it into a usage error on the matching option, exit code 2)."""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path


class SettingError(ValueError):
    """A setting that cannot work, found before any model loads; `setting` names it ("resolution")."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(message)
        self.setting = setting


DEVICE_PATTERN = re.compile(r"(cpu|cuda|mps|xpu|hpu|npu|xla|meta|ipu|privateuseone)(:\d+)?")


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


def looks_like_path(text: str) -> bool:
    """A weights value read as a local folder, not a repo id ("org/name"): it starts with ".", "~"
    or "/", ends with a separator, or has a separator other than the one between org and name."""
    return (text.startswith((".", "~", "/", os.sep)) or text.endswith(("/", os.sep))
            or text.count("/") > 1 or (os.sep != "/" and os.sep in text) or os.path.isabs(text))


def looks_like_file(text: str) -> bool:
    """A vocabulary given as a file: a path separator, or a file suffix such as ".txt"."""
    return ("/" in text or os.sep in text or "," not in text
            and re.fullmatch(r"\.[A-Za-z][A-Za-z0-9]{0,4}", Path(text).suffix) is not None)


def check_weights_path(setting: str, weights: str | None) -> None:
    if weights is None:
        return
    path = Path(str(weights)).expanduser()
    if path.is_dir():
        return
    if path.exists():
        raise SettingError(setting, f"{setting} {weights}: not a folder (expected a folder of model files)")
    if looks_like_path(str(weights)):
        raise SettingError(setting, f"{setting} {weights}: no such folder (a value that looks like a "
                                    "path is read as a local folder; a Hugging Face repo id is org/name)")
