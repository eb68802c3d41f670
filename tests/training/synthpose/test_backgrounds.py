"""Procedural backgrounds: deterministic, the right size, and a real domain gap (plain lab, busy wild)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from wildpose.training.synthpose import backgrounds
from wildpose.training.synthpose.camera import Camera


def lab_camera(width=320, height=240) -> Camera:
    return Camera.orbit(np.array([0.0, 900.0, 0.0]), np.array([0.0, 0.0, 1.0]), 4000.0, 900.0, 0.0, 300.0,
                        width, height)


def busyness(image: np.ndarray) -> float:
    """Mean absolute Laplacian of the grey image: edges and texture per pixel."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(np.abs(cv2.Laplacian(grey, cv2.CV_32F)).mean())


@pytest.mark.parametrize(("width", "height"), [(320, 320), (321, 239)])
def test_backgrounds_have_the_requested_size_and_are_deterministic(width, height):
    wild = backgrounds.wild(height, width, np.random.default_rng(7))
    lab = backgrounds.lab(lab_camera(width, height), 0.0, 6000.0, np.random.default_rng(7))
    for image, make in ((wild, lambda r: backgrounds.wild(height, width, r)),
                        (lab, lambda r: backgrounds.lab(lab_camera(width, height), 0.0, 6000.0, r))):
        assert image.shape == (height, width, 3) and image.dtype == np.uint8
        assert np.array_equal(image, make(np.random.default_rng(7)))
        assert not np.array_equal(image, make(np.random.default_rng(8)))


def test_wild_backgrounds_are_far_busier_than_lab_ones():
    wild = np.median([busyness(backgrounds.wild(240, 320, np.random.default_rng(s))) for s in range(12)])
    lab = np.median([busyness(backgrounds.lab(lab_camera(), 0.0, 6000.0, np.random.default_rng(s)))
                     for s in range(12)])
    assert wild > 4 * lab


def test_lab_floor_fills_the_bottom_and_the_wall_the_top_for_a_level_camera():
    """A camera at the subject's height looking level: the floor-wall edge is below the centre."""
    for seed in range(5):
        image = backgrounds.lab(lab_camera(), 0.0, 6000.0, np.random.default_rng(seed)).astype(int)
        top, bottom = image[5, 160], image[235, 160]
        assert np.abs(top - bottom).sum() > 0
        # rows of the upper half are one wall: nearly constant across the row
        assert np.abs(np.diff(image[60], axis=0)).max() <= 2


def test_value_noise_spans_zero_to_one():
    noise = backgrounds.value_noise(64, 80, np.random.default_rng(0))
    assert noise.shape == (64, 80) and noise.dtype == np.float32
    assert noise.min() == pytest.approx(0.0) and noise.max() == pytest.approx(1.0)
