"""Fixtures shared by the whole suite: an isolated cache, the shared real data, generated clips."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Models the suite builds go to a temporary cache, never the user's ~/.cache/wildpose."""
    cache = tmp_path_factory.mktemp("wildpose-cache")
    os.environ["WILDPOSE_CACHE"] = str(cache)
    return cache


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data` beside the checkout (real videos, images, annotations, mocap)."""
    if not (SHARED_DATA / "MANIFEST.md").is_file():
        pytest.skip(f"real test data not found at {SHARED_DATA} (the ../shared folder beside the "
                    "checkout); these tests need it")
    return SHARED_DATA


@pytest.fixture(scope="session")
def walker_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's own generated clip: 48 frames, 640x360, 24 fps, H.264."""
    from wildpose.tools import democlip

    return democlip.write_clip(tmp_path_factory.mktemp("clips") / "walker.mp4")
