"""Fixtures for SynthPose: the shared CMU mocap (skipped when absent) and a hand-made standing pose."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wildpose.training import joints
from wildpose.training.synthpose import cmu

# Frames per file as listed in ../shared/data/MANIFEST.md ("Motion capture").
MANIFEST_FRAMES = {
    "02_01": 344, "02_03": 174, "09_01": 149, "02_04": 484, "02_05": 1855, "05_02": 1124, "06_15": 546,
    "01_06": 5134, "01_01": 2752, "131_01": 994, "131_02": 1247, "131_03": 1102,
}


@pytest.fixture(scope="session")
def mocap_dir(shared_data: Path) -> Path:
    return shared_data / "cmu_mocap"


@pytest.fixture(scope="session")
def motions(mocap_dir: Path) -> dict[str, cmu.CmuMotion]:
    """Every CMU file mapped to our joints, parsed once per session."""
    return {stem: cmu.load_motion(mocap_dir / f"{stem}.bvh") for stem in MANIFEST_FRAMES}


@pytest.fixture()
def standing() -> tuple[np.ndarray, np.ndarray]:
    """A person standing at the origin facing +z, arms hanging (world mm, y-up: left is +x)."""
    points = {
        "pelvis": (0, 950, 0), "r_hip": (-130, 950, 0), "l_hip": (130, 950, 0),
        "r_knee": (-130, 510, 20), "l_knee": (130, 510, 20), "r_ankle": (-130, 80, 0), "l_ankle": (130, 80, 0),
        "thorax": (0, 1180, 0), "upper_neck": (0, 1430, 0), "head_top": (0, 1620, 10),
        "r_shoulder": (-170, 1400, 0), "l_shoulder": (170, 1400, 0), "r_elbow": (-200, 1120, -10),
        "l_elbow": (200, 1120, -10), "r_wrist": (-210, 870, 30), "l_wrist": (210, 870, 30),
    }
    pose = np.array([points[name] for name in joints.NAMES], np.float64)
    extras = np.array([(-130, 10, 180), (130, 10, 180), (-215, 690, 40), (215, 690, 40)], np.float64)
    return pose, extras
