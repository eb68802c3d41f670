"""Where WildPose keeps what it derives and can rebuild: exported models, the default model."""

from __future__ import annotations

import os
from pathlib import Path

from wildpose.errors import ConfigError

CACHE_ENV = "WILDPOSE_CACHE"


def cache_dir(*parts: str) -> Path:
    """`$WILDPOSE_CACHE/<parts>` (default `~/.cache/wildpose`), created if missing.

    Raises `ConfigError` when it cannot be created: a container run as a user the image did not
    expect (Kubernetes' `runAsUser`, OpenShift's arbitrary uids) often has neither a writable home
    nor a writable cache folder."""
    root = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "wildpose")
    path = root.joinpath(*parts)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the cache folder {path} ({exc.strerror or exc}); "
                          f"set {CACHE_ENV} to a folder this user can write") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write in the cache folder {path} (permission denied); "
                          f"set {CACHE_ENV} to a folder this user can write")
    return path
