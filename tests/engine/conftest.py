"""Untrained models of each preset, exported once per test session."""

from pathlib import Path

import pytest

from wildpose.engine import default_model


@pytest.fixture(scope="session")
def preset_models(isolated_cache):
    """preset name -> (checkpoint path, ONNX path), untrained weights from seed 0, built on demand."""
    cache: dict[str, tuple[Path, Path]] = {}

    def get(preset: str) -> tuple[Path, Path]:
        if preset not in cache:
            cache[preset] = (default_model.untrained_checkpoint(preset, 0),
                             default_model.untrained_onnx(preset, 0))
        return cache[preset]

    return get
