"""Targets: Gaussian heatmaps in the decoder's pixel convention, and depth that round-trips through
pose3d.assemble to the ground truth (up to the skeleton-sum scale)."""

import numpy as np
import pytest
import torch

from wildpose.training import heatmaps, joints, pose3d
from wildpose.training.datasets import augment, targets


def one_joint(x, y, visible=True, size=64, stride=4):
    points = np.zeros((16, 2))
    points[0] = [x, y]
    mask = np.zeros(16, bool)
    mask[0] = visible
    return targets.gaussian_heatmaps(points, mask, size, stride)


def test_heatmap_peaks_at_one_on_the_joints_pixel_with_a_7x7_window_of_sigma_1_75():
    crop_xy = heatmaps.heatmap_to_crop(torch.tensor([20.0, 30.0]), 4).numpy()  # heatmap pixel (20, 30)
    target = one_joint(*crop_xy)[0]
    assert target[30, 20] == 1.0 and target.max() == 1.0
    assert target[30, 21] == pytest.approx(np.exp(-1 / (2 * 1.75**2)))
    assert target[33, 23] == pytest.approx(np.exp(-18 / (2 * 1.75**2)))
    assert np.count_nonzero(target) == 49 and target[30, 24] == 0.0


def test_heatmap_decodes_back_to_the_joint():
    target = one_joint(81.5, 121.5)  # heatmap (20, 30) exactly
    coords, confidence = heatmaps.decode(torch.from_numpy(target)[None, :1])
    assert coords[0, 0].tolist() == [20.0, 30.0] and confidence[0, 0] == 1.0


@pytest.mark.parametrize("size, window, sigma", [(64, 7, 1.75), (48, 5, 1.3125), (16, 3, 0.4375)])
def test_smaller_heatmaps_scale_the_window_and_sigma(size, window, sigma):
    radius, sigma_px = targets.gaussian_window(size)
    assert (2 * radius + 1, sigma_px) == (window, pytest.approx(sigma))
    target = one_joint(size * 2.0, size * 2.0, size=size)[0]
    assert np.count_nonzero(target) == window * window


@pytest.mark.parametrize("x, y, visible, nonzero", [
    (100.0, 100.0, False, 0),   # not annotated: empty map
    (-40.0, 100.0, True, 0),    # far outside the crop: empty map
    (1.5, 121.5, True, 4 * 7),  # on the left edge (heatmap x = 0): window cut to 4 columns
])
def test_invisible_outside_and_edge_joints(x, y, visible, nonzero):
    assert np.count_nonzero(one_joint(x, y, visible)[0]) == nonzero


def synthetic_pose(seed):
    from wildpose.training.datasets.synthetic import random_pose

    return random_pose(np.random.default_rng(seed)) + np.array([30.0, -20.0, 5000.0])


@pytest.mark.parametrize("seed", range(5))
def test_depth_target_round_trips_through_pose3d_assemble_under_weak_perspective(seed):
    pose = synthetic_pose(seed)
    crop = 0.05 * pose[:, :2] + np.array([128.0, 120.0])  # weak perspective: 0.05 px/mm
    depth = targets.depth_target(crop, pose, np.ones(16, bool), input_size=256)
    assert np.abs(depth).max() < 1.0
    rebuilt = pose3d.assemble(crop[None], depth[None], input_size=256)[0]
    expected = pose3d.metric_scale((pose - pose[joints.ROOT])[None])[0]
    assert rebuilt == pytest.approx(expected, abs=1e-3)


def test_depth_target_of_real_human36m_frames_round_trips_within_the_perspective_error(shared_data):
    """Real frames are perspective projections; the weak-perspective target is off by tens of mm."""
    data = np.load(shared_data / "pose3d/h36m/test_h36m_body3d.npz")
    order = list(joints.H36M_TO_OURS)
    errors = []
    for i in range(len(data["S"])):
        pose = data["S"][i][order, :3] * 1000.0  # m -> mm, camera frame
        crop = augment.apply(augment.crop_matrix(data["center"][i], 200 * data["scale"][i], 256),
                             data["part"][i][order, :2])
        depth = targets.depth_target(crop, pose, np.ones(16, bool), 256)
        assert np.abs(depth).max() < 1.0
        rebuilt = pose3d.assemble(crop[None], depth[None], 256)[0]
        expected = pose3d.metric_scale((pose - pose[joints.ROOT])[None])[0]
        errors.append(np.linalg.norm(rebuilt - expected, axis=-1).mean())
    assert max(errors) < 35.0, errors


def test_scale_uses_only_bones_with_both_joints_visible():
    pose = synthetic_pose(0)
    crop = 0.05 * pose[:, :2]
    crop[0] += 500.0  # a wild r_ankle ...
    visible = np.ones(16, bool)
    visible[0] = False  # ... that is not annotated
    assert targets.weak_perspective_scale(crop, pose, visible) == pytest.approx(0.05)
