"""3D assembly: weak-perspective depth joined to 2D, root-relative, metric by the skeleton prior."""

import numpy as np
import pytest

from wildpose.training import joints, pose3d


def random_pose(seed: int = 0, n: int = 3):
    rng = np.random.default_rng(seed)
    return rng.uniform(20, 170, (n, 16, 2)).astype(np.float32), rng.uniform(-1, 1, (n, 16)).astype(np.float32)


def test_assembled_pose_is_root_relative_and_sums_to_the_skeleton_prior():
    joints2d, depth = random_pose()
    pose = pose3d.assemble(joints2d, depth, input_size=192)
    assert pose.shape == (3, 16, 3) and pose.dtype == np.float32
    assert np.allclose(pose[:, joints.ROOT], 0.0)
    assert joints.bone_lengths(pose).sum(axis=1) == pytest.approx([joints.SKELETON_SUM_MM] * 3, rel=1e-5)


def test_prior_is_configurable():
    joints2d, depth = random_pose(1, n=1)
    pose = pose3d.assemble(joints2d, depth, input_size=192, skeleton_sum_mm=3000.0)
    assert joints.bone_lengths(pose).sum() == pytest.approx(3000.0, rel=1e-5)


def test_depth_shares_the_crop_scale_of_x_and_y():
    """depth is z over half the crop: depth 1 at the root's x offset of S/2 gives a 45-degree bone."""
    joints2d = np.zeros((1, 16, 2), np.float32)
    depth = np.zeros((1, 16), np.float32)
    joints2d[0, 1] = [96.0, 0.0]
    depth[0, 1] = 1.0  # half of a 192 crop = 96 px
    pose = pose3d.weak_perspective(joints2d, depth, input_size=192)
    assert pose[0, 1] == pytest.approx([96.0, 0.0, 96.0])


def test_collapsed_pose_gives_zeros_not_nan():
    pose = pose3d.assemble(np.full((1, 16, 2), 50.0, np.float32), np.zeros((1, 16), np.float32), 192)
    assert np.all(pose == 0.0)


def test_scale_is_described_for_consumers():
    assert "4296.99 mm" in pose3d.describe_scale()
