"""Where WildPose keeps what it derives and can rebuild: exported models, the default model."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "WILDPOSE_CACHE"


def cache_dir(*parts: str) -> Path:
    """`$WILDPOSE_CACHE/<parts>` (default `~/.cache/wildpose`), created if missing."""
    root = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "wildpose")
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
