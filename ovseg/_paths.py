"""Where ovseg keeps what it computes once and reuses (prompt embeddings, features, segments)."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """`$OVSEG_CACHE` or `~/.cache/ovseg`, joined with `parts`; created on first use."""
    root = Path(os.environ.get("OVSEG_CACHE") or Path.home() / ".cache" / "ovseg").expanduser()
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
