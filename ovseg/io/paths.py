"""Where ovseg keeps what it computes once and reuses (prompt embeddings, features, segments)."""
from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """`$OVSEG_CACHE` or `~/.cache/ovseg`; not created (see `cache_dir`)."""
    return Path(os.environ.get("OVSEG_CACHE") or Path.home() / ".cache" / "ovseg").expanduser()


def cache_dir(*parts: str) -> Path:
    """`cache_root()` joined with `parts`; created on first use (OSError if it cannot be)."""
    path = cache_root().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
