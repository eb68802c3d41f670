"""The pinhole camera: our axes (x right, y down, z forward, mm), pixel centres at integers, and
projection that back-projects to the same points."""

from __future__ import annotations

import numpy as np
import pytest

from wildpose.errors import ConfigError
from wildpose.training.synthpose.camera import Camera

TARGET = np.array([100.0, 900.0, -300.0])
FACING = np.array([0.0, 0.0, 1.0])


def orbit(**overrides) -> Camera:
    settings = dict(target=TARGET, facing=FACING, distance_mm=4000.0, height_mm=1500.0, yaw_deg=0.0,
                    focal_px=500.0, width=320, height=240)
    settings.update(overrides)
    return Camera.orbit(**settings)


CAMERAS = {
    "frontal": orbit(),
    "side-rolled": orbit(yaw_deg=90.0, roll_deg=8.0),
    "low-pitched": orbit(yaw_deg=-135.0, height_mm=300.0, pitch_deg=12.0, focal_px=900.0),
    "overhead": orbit(yaw_deg=30.0, height_mm=6000.0, distance_mm=2500.0),
}


@pytest.mark.parametrize("name", sorted(CAMERAS))
def test_projection_round_trips_through_back_projection(name):
    camera = CAMERAS[name]
    points = np.random.default_rng(0).uniform([-800, 0, -1000], [800, 1900, 400], (50, 3))
    cam = camera.world_to_camera(points)
    assert np.all(cam[:, 2] > 0)
    pixels = camera.project(cam)
    assert camera.back_project(pixels, cam[:, 2]) == pytest.approx(cam, abs=1e-6)
    assert camera.camera_to_world(cam) == pytest.approx(points, abs=1e-6)
    # K from `intrinsics` does the same projection
    homogeneous = cam @ camera.intrinsics.T
    assert homogeneous[:, :2] / homogeneous[:, 2:] == pytest.approx(pixels, abs=1e-9)


@pytest.mark.parametrize(("width", "height"), [(320, 240), (321, 241)])
def test_look_at_puts_the_target_on_the_centre_pixel(width, height):
    camera = Camera.look_at([0, 1500, 4000], TARGET, 500.0, width, height)
    assert camera.project(camera.world_to_camera(TARGET)) == pytest.approx([(width - 1) / 2, (height - 1) / 2])


def test_camera_axes_are_right_down_forward_and_right_handed():
    camera = orbit()
    assert np.linalg.det(camera.rotation) == pytest.approx(1.0)
    centre = camera.world_to_camera(TARGET)
    above = camera.world_to_camera(TARGET + [0, 200, 0])
    assert above[1] < centre[1]  # world up is image up (camera y points down)
    assert centre[2] > 0  # in front of the camera
    assert centre[2] == pytest.approx(np.linalg.norm(camera.position - TARGET))


@pytest.mark.parametrize(
    ("yaw", "expected_side"),
    [(0.0, FACING), (90.0, np.array([1.0, 0.0, 0.0])), (180.0, -FACING), (-90.0, np.array([-1.0, 0.0, 0.0]))],
)
def test_orbit_yaw_is_measured_from_the_subjects_facing(yaw, expected_side):
    """Facing +z with y up, the subject's left is +x: yaw +90 looks at their left side."""
    camera = orbit(yaw_deg=yaw)
    offset = (camera.position - TARGET) * [1, 0, 1]
    assert offset / np.linalg.norm(offset) == pytest.approx(expected_side, abs=1e-9)
    assert camera.position[1] == pytest.approx(1500.0)


def test_a_frontal_view_shows_the_subjects_left_on_the_image_right():
    """Seen from the front, a person's left hand is on the viewer's right: not mirrored."""
    camera = orbit()
    left_hand, right_hand = TARGET + [300, 0, 0], TARGET + [-300, 0, 0]
    assert camera.project(camera.world_to_camera(left_hand))[0] > camera.project(camera.world_to_camera(right_hand))[0]


def test_positive_pitch_looks_up_so_the_target_drops_below_centre():
    pixel = orbit(pitch_deg=10.0).project(orbit(pitch_deg=10.0).world_to_camera(TARGET))
    assert pixel[1] > (240 - 1) / 2 + 50


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Camera(fx=0, fy=500, cx=0, cy=0, width=10, height=10), "focal lengths must be positive"),
        (lambda: Camera(fx=5, fy=5, cx=0, cy=0, width=0, height=10), "image size must be positive"),
        (lambda: Camera(fx=5, fy=5, cx=0, cy=0, width=10, height=10, rotation=np.diag([1.0, 1.0, -1.0])),
         "proper rotation"),
        (lambda: Camera.look_at(TARGET, TARGET, 500.0, 10, 10), "eye and target coincide"),
        (lambda: Camera.look_at(TARGET + [0, 3000, 0], TARGET, 500.0, 10, 10), "straight up or down"),
        (lambda: orbit(distance_mm=0.0), "distance must be positive"),
    ],
)
def test_bad_camera_settings_are_config_errors(build, message):
    with pytest.raises(ConfigError, match=message):
        build()
