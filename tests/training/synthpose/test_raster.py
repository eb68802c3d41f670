"""Ray casting: exact silhouettes and depths of spheres, capsules and (stretched) ellipsoids, and a
depth buffer that does not depend on drawing order."""

from __future__ import annotations

import numpy as np
import pytest

from wildpose.training.synthpose.camera import Camera
from wildpose.training.synthpose.raster import Capsule, Ellipsoid, rasterise

CAMERA = Camera(fx=400.0, fy=400.0, cx=63.5, cy=63.5, width=128, height=128)
TOWARDS_CAMERA = np.array([0.0, 0.0, -1.0])


def sphere_shapes(centre, radius):
    return {
        "capsule": Capsule(centre, centre, radius, 0),
        "ellipsoid": Ellipsoid(centre, np.eye(3), np.full(3, radius), 0),
        "stretched": Ellipsoid(centre, np.eye(3), np.full(3, radius), 0, stretch=1e-9),
    }


@pytest.mark.parametrize("kind", ["capsule", "ellipsoid", "stretched"])
def test_a_sphere_casts_its_exact_disc_depth_and_shading(kind):
    centre, radius = np.array([0.0, 0.0, 2000.0]), 200.0
    buffers = rasterise([sphere_shapes(centre, radius)[kind]], CAMERA, TOWARDS_CAMERA)
    # The silhouette of a sphere at distance d has angular radius asin(r / d).
    expected_radius_px = 400.0 * np.tan(np.arcsin(radius / 2000.0))
    area = (buffers.index == 0).sum()
    assert area == pytest.approx(np.pi * expected_radius_px ** 2, rel=0.03)
    assert buffers.depth[63:65, 63:65] == pytest.approx(1800.0, abs=0.5)  # nearest point: d - r
    assert buffers.shade[63:65, 63:65] == pytest.approx(1.0, abs=1e-3)  # facing the light
    assert np.isinf(buffers.depth[0, 0]) and buffers.index[0, 0] == -1


def test_a_capsule_spans_its_segment_with_round_ends():
    a, b = np.array([-150.0, 0.0, 2000.0]), np.array([150.0, 0.0, 2000.0])
    buffers = rasterise([Capsule(a, b, 50.0, 0)], CAMERA, TOWARDS_CAMERA)
    # horizontal extent: -(150 + 50) to 200 mm at 2 m, i.e. +-40 px around the centre
    assert (buffers.index[64] == 0).sum() == pytest.approx(80, abs=2)
    assert not (buffers.index[40] == 0).any()  # 24 px off the axis, beyond the 10 px radius
    column = np.where(buffers.index[:, 63] == 0)[0]
    assert len(column) == pytest.approx(2 * 400 * 50 / 2000, abs=2)
    assert buffers.depth[64, 63] == pytest.approx(1950.0, abs=1.0)


def test_a_stretched_ellipsoid_is_an_elliptic_capsule():
    axes = np.eye(3)
    blob = Ellipsoid(np.array([0.0, 0.0, 3000.0]), axes, np.array([150.0, 60.0, 80.0]), 0, stretch=200.0)
    buffers = rasterise([blob], CAMERA, TOWARDS_CAMERA)
    rows = np.where(buffers.index[:, 63] == 0)[0]
    columns = np.where(buffers.index[64] == 0)[0]
    assert len(rows) == pytest.approx(2 * 400 * (200 + 60) / 3000, abs=2)  # stretch + cap
    assert len(columns) == pytest.approx(2 * 400 * 150 / 3000, abs=2)
    assert buffers.depth[64, 63] == pytest.approx(3000.0 - 80.0, abs=1.0)


def test_depth_buffer_is_independent_of_drawing_order_for_interpenetrating_parts():
    """Two capsules crossing in depth like an X seen from above: each is in front on one half,
    which no ordering of whole parts (the painter's algorithm) can draw."""
    first = Capsule(np.array([-300.0, 0.0, 1800.0]), np.array([300.0, 0.0, 2200.0]), 60.0, 0)
    second = Capsule(np.array([-300.0, 0.0, 2200.0]), np.array([300.0, 0.0, 1800.0]), 60.0, 1)
    forward = rasterise([first, second], CAMERA, TOWARDS_CAMERA)
    backward = rasterise([second, first], CAMERA, TOWARDS_CAMERA)
    seen_forward = np.where(forward.index >= 0, np.array([0, 1])[forward.index], -1)
    seen_backward = np.where(backward.index >= 0, np.array([1, 0])[backward.index], -1)
    assert np.array_equal(seen_forward, seen_backward)
    assert np.array_equal(forward.depth, backward.depth)
    assert seen_forward[64, 20] == 0 and seen_forward[64, 107] == 1  # each wins on its near side


def test_primitives_behind_or_outside_the_camera_draw_nothing():
    behind = Capsule(np.array([0.0, 0.0, -500.0]), np.array([0.0, 0.0, -900.0]), 50.0, 0)
    aside = Ellipsoid(np.array([5000.0, 0.0, 1000.0]), np.eye(3), np.full(3, 100.0), 0)
    buffers = rasterise([behind, aside], CAMERA, TOWARDS_CAMERA)
    assert np.all(buffers.index == -1)
