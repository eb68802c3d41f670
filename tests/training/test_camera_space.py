"""Camera intrinsics and the root's place in camera space: the solver on real Human3.6M frames with
their cameras, and every way of giving the intrinsics, good and bad."""

from __future__ import annotations

import json
import math
import pickle

import cv2
import numpy as np
import pytest

from wildpose.errors import ConfigError
from wildpose.training import camera_space, joints


@pytest.fixture(scope="module")
def h36m(shared_data):
    folder = shared_data / "pose3d" / "h36m"
    frames = np.load(folder / "test_h36m_body3d.npz", allow_pickle=True)
    with open(folder / "cameras.pkl", "rb") as handle:
        cameras = pickle.load(handle)  # noqa: S301 (the shared data's own file)
    return frames, cameras


def test_the_solved_root_matches_human36m_recorded_translation_within_two_percent(h36m):
    """Ground-truth 2D and root-relative 3D of 4 real frames, with their cameras' intrinsics and
    distortion: the solved pelvis lands where the motion capture put it."""
    frames, cameras = h36m
    errors = []
    for index, name in enumerate(frames["imgname"]):
        subject, camera_id = name.split("/")[0], name.split("/")[1].split(".")[1]
        camera = cameras[(subject, camera_id)]
        f, c = np.ravel(camera["f"]), np.ravel(camera["c"])
        k, p = np.ravel(camera["k"]), np.ravel(camera["p"])
        intrinsics = camera_space.Intrinsics(f[0], f[1], c[0], c[1], int(camera["w"]), int(camera["h"]),
                                             (k[0], k[1], p[0], p[1], k[2]))
        pose = frames["S"][index][list(joints.H36M_TO_OURS), :3] * 1000.0  # mm, camera frame
        pixels = frames["part"][index][list(joints.H36M_TO_OURS), :2]
        root = camera_space.solve_root(pixels, pose - pose[joints.ROOT], intrinsics)
        errors.append(np.linalg.norm(root - pose[joints.ROOT]) / np.linalg.norm(pose[joints.ROOT]))
    print("relative errors:", np.round(errors, 5))
    assert max(errors) < 0.02


def test_a_synthetic_skeleton_is_placed_exactly_and_confidence_weights_the_joints():
    rng = np.random.default_rng(0)
    skeleton = rng.normal(0, 300, (16, 3))
    skeleton -= skeleton[joints.ROOT]
    root = np.array([400.0, -200.0, 5000.0])
    intrinsics = camera_space.from_focal(640, 480, 600.0)
    pixels = (skeleton + root)[:, :2] / (skeleton + root)[:, 2:] * 600.0 + [319.5, 239.5]
    assert np.allclose(camera_space.solve_root(pixels, skeleton, intrinsics), root, atol=1e-6)
    wrong = pixels.copy()
    wrong[0] += 200.0  # one joint far off ...
    weights = np.ones(16)
    weights[0] = 0.0  # ... that the network was not sure of
    assert np.allclose(camera_space.solve_root(wrong, skeleton, intrinsics, weights), root, atol=1e-6)
    assert camera_space.solve_root(pixels, skeleton, intrinsics, np.zeros(16)) is None


def test_intrinsics_from_a_field_of_view_and_the_stated_default():
    intrinsics = camera_space.from_fov(640, 360, 90.0)
    assert intrinsics.fx == pytest.approx(320.0) and (intrinsics.cx, intrinsics.cy) == (319.5, 179.5)
    default = camera_space.from_fov(640, 360, camera_space.DEFAULT_FOV_DEG, default=True)
    assert default.fx == pytest.approx(320 / math.tan(math.radians(30)))
    assert "assumed: 60 degrees" in default.describe()["source"]


@pytest.mark.parametrize("suffix", [".yml", ".json"])
def test_an_opencv_calibration_file_is_read_and_its_distortion_removed(tmp_path, suffix):
    matrix = np.array([[800.0, 0, 330.0], [0, 790.0, 250.0], [0, 0, 1]])
    distortion = np.array([[-0.2, 0.05, 0.001, -0.002, 0.0]])
    path = tmp_path / f"camera{suffix}"
    storage = cv2.FileStorage(str(path), cv2.FILE_STORAGE_WRITE)
    storage.write("image_width", 640)
    storage.write("image_height", 480)
    storage.write("camera_matrix", matrix)
    storage.write("distortion_coefficients", distortion)
    storage.release()
    intrinsics = camera_space.from_calibration(path, 640, 480)
    assert (intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy) == (800.0, 790.0, 330.0, 250.0)
    point = np.array([[0.3, -0.2, 1.0]])
    pixel = cv2.projectPoints(point, np.zeros(3), np.zeros(3), matrix, distortion)[0].reshape(2)
    assert np.allclose(intrinsics.normalised(pixel), [0.3, -0.2], atol=1e-5)
    half = camera_space.from_calibration(path, 320, 240)  # the same camera at half resolution
    assert (half.fx, half.cx) == (400.0, 165.0)


def test_a_plain_json_calibration_is_read(tmp_path):
    path = tmp_path / "k.json"
    path.write_text(json.dumps({"camera_matrix": [[500, 0, 320], [0, 500, 240], [0, 0, 1]]}))
    assert camera_space.from_calibration(path, 640, 480).fx == 500.0


@pytest.mark.parametrize("text, message", [
    ("not a calibration", "not an OpenCV calibration file"),
    ('{"camera_matrix": [[1, 2], [3, 4]]}', "camera_matrix must be 3x3"),
    ('{"camera_matrix": [[500, 0, 320], [0, 500, 240], [0, 0, 2]]}', "3x3 pinhole matrix"),
    ('{"camera_matrix": [[0.5, 0, 320], [0, 0.5, 240], [0, 0, 1]]}', "is not plausible"),
    ("{nope", "not valid JSON"),
])
def test_bad_calibration_files_are_refused_with_the_reason(tmp_path, text, message):
    path = tmp_path / ("bad.json" if text.startswith("{") else "bad.yml")
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        camera_space.from_calibration(path, 640, 480)


@pytest.mark.parametrize("focal", [0.0, -5.0, 1e9, math.nan])
def test_absurd_focal_lengths_are_refused(focal):
    with pytest.raises(ConfigError, match="not plausible|finite"):
        camera_space.from_focal(640, 480, focal)


def test_evaluation_reports_the_root_depth_error_where_the_camera_is_known():
    """A skeleton of exactly the prior's size, seen by a known camera: perfect predictions place the
    root exactly; without the camera there is no such score."""
    from wildpose.training import evaluate, pose3d

    rng = np.random.default_rng(1)
    skeleton = pose3d.metric_scale(rng.normal(0, 300, (1, 16, 3)))[0]
    skeleton -= skeleton[joints.ROOT]
    matrix = np.array([[700.0, 0, 319.5], [0, 700.0, 239.5], [0, 0, 1]])
    roots = np.array([[100.0, 50.0, 3000.0], [-300.0, 0.0, 7000.0]])
    points = skeleton[None] + roots[:, None]
    pixels = points[..., :2] / points[..., 2:] * 700.0 + [319.5, 239.5]
    truth = {"joints2d": pixels, "visible": np.ones((2, 16), bool), "joints3d": np.stack([skeleton] * 2),
             "head_size": np.zeros(2), "box_size": np.zeros(2), "root_cam": roots, "intrinsics": np.stack([matrix] * 2)}
    exact = evaluate.score(truth, pixels, np.stack([skeleton] * 2))
    assert exact["root_depth_error_pct"] == pytest.approx(0.0, abs=1e-6)
    unknown = evaluate.score({**truth, "intrinsics": np.full((2, 3, 3), np.nan)}, pixels, np.stack([skeleton] * 2))
    assert "root_depth_error_pct" not in unknown


def test_a_pose_with_no_solution_in_front_of_the_camera_gives_none():
    intrinsics = camera_space.from_focal(640, 480, 600.0)
    skeleton = np.random.default_rng(1).normal(0, 300, (16, 3))
    same_pixel = np.tile([[320.0, 240.0]], (16, 1))  # every joint on one ray: the distance is undetermined
    assert camera_space.solve_root(same_pixel, skeleton, intrinsics) is None
    root = np.array([0.0, 0.0, 4000.0])
    mirrored = (skeleton + root)[:, :2] / (skeleton + root)[:, 2:] * -600.0 + [319.5, 239.5]  # fits only behind
    assert camera_space.solve_root(mirrored, skeleton, intrinsics) is None
