"""Metrics named after their protocols: known inputs give the protocol's known answers."""

import h5py
import numpy as np
import pytest

from wildpose.errors import InputError
from wildpose.training import joints, metrics


@pytest.fixture(scope="module")
def mpii_valid(shared_data):
    with h5py.File(shared_data / "mpii" / "valid.h5") as h5:
        part, normalize = h5["part"][()], h5["normalize"][()]
    return part, ~(part == 0).all(axis=-1), normalize


def test_pckh_of_the_ground_truth_against_itself_is_100_on_mpii_valid(mpii_valid):
    part, visible, head = mpii_valid
    result = metrics.pckh(part, part, visible, head)
    assert len(part) == 2958 and result.total == 100.0
    assert np.nanmin(result.per_joint) == 100.0


def test_pckh_drops_by_the_share_of_joints_shifted_past_half_a_head(mpii_valid):
    part, visible, head = mpii_valid
    shifted = part.copy()
    shifted[:1000, :, 0] += 0.51 * head[:1000, None]  # just past the threshold
    shifted[1000:, :, 1] += 0.49 * head[1000:, None]  # just inside it
    scored = visible[:, list(metrics.PCKH_TOTAL_JOINTS)]
    expected = 100.0 * scored[1000:].sum() / scored.sum()
    assert metrics.pckh(shifted, part, visible, head).total == pytest.approx(expected)
    assert 60.0 < expected < 70.0


def test_pckh_total_leaves_out_pelvis_and_thorax():
    target = np.zeros((1, 16, 2))
    predicted = target.copy()
    predicted[0, [joints.INDEX["pelvis"], joints.INDEX["thorax"]]] = 100.0
    result = metrics.pckh(predicted, target, np.ones((1, 16)), np.ones(1))
    assert result.total == 100.0 and result.joints_scored == 14
    assert result.per_joint[joints.INDEX["pelvis"]] == 0.0


def pose(seed=0, n=4):
    """Root-relative poses in mm whose 14 bones sum to the skeleton prior (as the reference's
    protocol assumes of Human3.6M's subjects)."""
    from wildpose.training.datasets.synthetic import random_pose

    rng = np.random.default_rng(seed)
    poses = np.stack([random_pose(rng) for _ in range(n)])
    poses = poses * (joints.SKELETON_SUM_MM / joints.bone_lengths(poses).sum(axis=1))[:, None, None]
    return poses - poses[:, joints.ROOT:joints.ROOT + 1]


def rotation_z(degrees):
    a = np.radians(degrees)
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])


@pytest.mark.parametrize("metric", [metrics.mpjpe, metrics.reference_mpjpe, metrics.protocol1_mpjpe,
                                    metrics.pa_mpjpe])
def test_a_pose_against_itself_scores_zero(metric):
    gt = pose()
    assert metric(gt, gt) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("change, mpjpe, reference, protocol1, pa", [
    # (what is done to the prediction, then whether each metric forgives it)
    (lambda p: p + [100.0, -50.0, 2000.0], False, True, True, True),   # a translation: every alignment removes it
    (lambda p: p * 1.7, False, True, False, True),                      # a scale: skeleton-sum and Procrustes remove it
    (lambda p: p @ rotation_z(20).T, False, False, False, True),        # a rotation: only Procrustes removes it
])
def test_each_protocol_forgives_exactly_its_alignment(change, mpjpe, reference, protocol1, pa):
    gt = pose()
    predicted = change(gt)
    for metric, forgiven in ((metrics.mpjpe, mpjpe), (metrics.reference_mpjpe, reference),
                             (metrics.protocol1_mpjpe, protocol1), (metrics.pa_mpjpe, pa)):
        value = metric(predicted, gt)
        assert (value < 1e-6) == forgiven, (metric.__name__, value)


def test_protocol1_scores_the_17_h36m_joints():
    gt = pose(n=1)
    predicted = gt.copy()
    predicted[0, joints.INDEX["head_top"]] += [0.0, 0.0, 170.0]  # head_top feeds H36M's neck and head
    assert metrics.protocol1_mpjpe(predicted, gt) == pytest.approx(2 * 170.0 / 17)
    assert metrics.mpjpe(predicted, gt) == pytest.approx(170.0 / 16)


def test_reference_protocol_uses_the_skeleton_sum_and_pelvis():
    gt = pose(n=2)
    crop_scale = 0.07 * gt + [[[128.0, 128.0, 0.0]]]  # what weak_perspective gives, in crop px
    assert metrics.reference_mpjpe(crop_scale, gt + [[[5.0, 5.0, 5000.0]]]) == pytest.approx(0.0, abs=1e-6)


def test_3dpck_and_auc_by_hand():
    gt = pose(n=2)
    predicted = gt.copy()
    scored = list(joints.MPI_INF_3DHP_EVAL_JOINTS)
    predicted[:, scored] += [97.5, 0.0, 0.0]  # every scored joint 97.5 mm off, the root untouched
    assert metrics.pck3d(predicted, gt) == 100.0
    assert metrics.pck3d(predicted, gt, threshold_mm=95.0) == 0.0
    assert metrics.auc3d(predicted, gt) == pytest.approx(100.0 * 11 / 31)  # thresholds 100..150 of 0..150
    assert metrics.auc3d(gt, gt) == pytest.approx(100.0 * 31 / 31)


def test_bone_symmetry_error_is_the_mean_left_right_length_gap():
    from wildpose.training.datasets.synthetic import _TEMPLATE

    symmetric = np.array([[_TEMPLATE[name] for name in joints.NAMES]], float)
    assert metrics.bone_symmetry_error(symmetric) == pytest.approx(0.0, abs=1e-9)
    longer = symmetric.copy()
    longer[0, joints.INDEX["r_wrist"], 1] += 12.0  # the right forearm grows by 12 mm
    assert metrics.bone_symmetry_error(longer) == pytest.approx(12.0 / len(joints.SYMMETRIC_BONES), rel=1e-3)


@pytest.mark.parametrize("call, message", [
    (lambda: metrics.mpjpe(np.zeros((2, 16, 3)), np.zeros((2, 17, 3))),
     r"target: expected shape \(2, 16, 3\), got \(2, 17, 3\)"),
    (lambda: metrics.mpjpe(np.zeros((16, 3)), np.zeros((16, 3))), r"predicted: expected shape \(N, N, 3\)"),
    (lambda: metrics.protocol1_mpjpe(np.zeros((1, 17, 3)), np.zeros((1, 17, 3))), r"expected shape \(N, 16, N\)"),
    (lambda: metrics.pckh(np.zeros((2, 16, 2)), np.zeros((2, 16, 2)), np.ones((2, 15)), np.ones(2)), "visible"),
    (lambda: metrics.pckh(np.zeros((1, 16, 2)), np.zeros((1, 16, 2)), np.ones((1, 16)), np.zeros(1)), "head size"),
    (lambda: metrics.pck3d(np.zeros((0, 16, 3)), np.zeros((0, 16, 3))), "no poses"),
])
def test_wrong_shapes_are_refused_first(call, message):
    with pytest.raises(InputError, match=message):
        call()


@pytest.fixture()
def boxed_poses():
    """Three random 2D poses in image px, all joints visible, and their boxes' longer sides."""
    poses = np.random.default_rng(4).uniform(50, 250, (3, joints.NUM_JOINTS, 2))
    return poses, np.ones((3, joints.NUM_JOINTS)), np.ptp(poses, axis=1).max(axis=1)


def test_pck_bbox_of_the_ground_truth_against_itself_is_100(boxed_poses):
    poses, visible, box = boxed_poses
    assert metrics.pck_bbox(poses, poses, visible, box) == 100.0


@pytest.mark.parametrize("shift, expected", [
    (0.099, 100.0),  # just inside 0.1 x the box's longer side
    (0.101, 0.0),  # just past it
])
def test_pck_bbox_counts_a_joint_within_a_tenth_of_the_box(boxed_poses, shift, expected):
    poses, visible, box = boxed_poses
    moved = poses + np.array([0.6, 0.8]) * shift * box[:, None, None]  # a unit direction times the shift
    assert metrics.pck_bbox(moved, poses, visible, box) == expected


def test_pck_bbox_scores_only_the_visible_joints_of_each_sample(boxed_poses):
    poses, visible, box = boxed_poses
    moved = poses.copy()
    moved[:, :4, 0] += 0.5 * box[:, None]  # 4 of 16 joints far off ...
    assert metrics.pck_bbox(moved, poses, visible, box) == 75.0
    hidden = visible.copy()
    hidden[:, :4] = 0  # ... but not scored when not visible
    assert metrics.pck_bbox(moved, poses, hidden, box) == 100.0


def test_swaps_count_left_and_right_joints_put_on_their_partners():
    """Three poses whose left joints lie 80-160 px from their right partners (boxes of about 160 px)."""
    side = np.array([60.0 if n.startswith("l_") else -60.0 if n.startswith("r_") else 0.0 for n in joints.NAMES])
    poses = np.random.default_rng(5).uniform(130, 170, (3, joints.NUM_JOINTS, 2))
    poses[..., 0] += side
    visible, box = np.ones((3, joints.NUM_JOINTS)), np.ptp(poses, axis=1).max(axis=1)
    mirror = joints.flip_permutation()
    assert metrics.swaps_bbox(poses, poses, visible, box) == 0.0
    # the figure read the wrong way round: every left joint on the right one and back; 12 of 16 are sided
    assert metrics.swaps_bbox(poses[:, mirror], poses, visible, box) == 100.0
    assert metrics.pck_bbox(poses[:, mirror], poses, visible, box) == 25.0
    # one wrist swapped in each pose: 1 of the 12 sided joints; a joint that is just far off is no swap
    one = poses.copy()
    one[:, joints.INDEX["r_wrist"]] = poses[:, joints.INDEX["l_wrist"]]
    one[:, joints.INDEX["l_ankle"], 0] += 0.5 * box
    assert metrics.swaps_bbox(one, poses, visible, box) == pytest.approx(100.0 / 12)


@pytest.mark.parametrize("call, message", [
    (lambda: metrics.swaps_bbox(np.zeros((1, 16, 2)), np.zeros((1, 16, 2)), np.zeros((1, 16)), np.ones(1)),
     "swaps_bbox: no joint is marked visible"),
    (lambda: metrics.pck_bbox(np.zeros((2, 16, 2)), np.zeros((2, 16, 3)), np.ones((2, 16)), np.ones(2)),
     r"target: expected shape \(2, 16, 2\), got \(2, 16, 3\)"),
    (lambda: metrics.pck_bbox(np.zeros((2, 16, 2)), np.zeros((2, 16, 2)), np.ones((2, 16)), np.ones(3)),
     r"box_size: expected shape \(2\)"),
    (lambda: metrics.pck_bbox(np.zeros((1, 16, 2)), np.zeros((1, 16, 2)), np.ones((1, 16)), np.zeros(1)),
     "positive box size"),
    (lambda: metrics.pck_bbox(np.zeros((1, 16, 2)), np.zeros((1, 16, 2)), np.zeros((1, 16)), np.ones(1)),
     "no joint is marked visible"),
])
def test_pck_bbox_refuses_wrong_input_first(call, message):
    with pytest.raises(InputError, match=message):
        call()
