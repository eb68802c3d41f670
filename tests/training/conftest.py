"""Fixtures of the training tests: small synthetic datasets written once per session in real formats."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from wildpose.training.datasets import synthetic


@dataclass(frozen=True)
class SyntheticData:
    """Paths of the session's generated datasets (stick figures; see training/datasets/synthetic.py)."""

    h36m_annotations: Path
    h36m_images: Path
    folder_annotations: Path  # 2D-only samples, JSON


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory: pytest.TempPathFactory) -> SyntheticData:
    root = tmp_path_factory.mktemp("synthetic")
    annotations, images = synthetic.write_h36m(root / "h36m", 48, seed=1)
    folder = synthetic.write_folder(root / "folder", 48, seed=2)
    return SyntheticData(annotations, images, folder)
