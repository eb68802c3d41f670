"""Re-posed limbs: bones keep their lengths, the body outside the limbs keeps the mocap's pose, elbows
and knees stay in their ranges, feet stay on the floor, and only training samples are re-posed. Folded
elbows (`fold_elbows`): only the arms move, and the elbows end folded."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from wildpose.errors import ConfigError
from wildpose.training import joints
from wildpose.training.datasets import DatasetConfig
from wildpose.training.synthpose import body, domains, repose

J = joints.INDEX
LIMB_JOINTS = {name for limb in repose.LIMBS for name in (limb.middle, limb.end)}


def bone_lengths(pose, extras):
    lengths = [np.linalg.norm(pose[J[child]] - pose[J[parent]]) for child, parent, _ in body.TREE]
    lengths += [np.linalg.norm(extras[body.EXTRA[child]] - pose[J[parent]]) for child, parent, _ in body.EXTRA_TREE]
    return np.array(lengths)


def interior_angle(pose, limb):
    upper = pose[J[limb.root]] - pose[J[limb.middle]]
    lower = pose[J[limb.end]] - pose[J[limb.middle]]
    return np.degrees(np.arccos(upper @ lower / np.linalg.norm(upper) / np.linalg.norm(lower)))


def reposed_many(standing, count=200, probability=1.0):
    pose, extras = standing
    for seed in range(count):
        yield repose.repose_limbs(pose, extras, probability, np.random.default_rng(seed))


def test_bones_keep_their_lengths_and_the_trunk_keeps_its_pose(standing):
    pose, extras = standing
    for new_pose, new_extras in reposed_many(standing):
        np.testing.assert_allclose(bone_lengths(new_pose, new_extras), bone_lengths(pose, extras), atol=1e-6)
        shift = new_pose[J["pelvis"]] - pose[J["pelvis"]]
        assert shift[0] == 0.0 and shift[2] == 0.0  # at most a vertical shift, from keeping the feet down
        for name in set(joints.NAMES) - LIMB_JOINTS:
            np.testing.assert_allclose(new_pose[J[name]], pose[J[name]] + shift, atol=1e-9)


def test_elbows_and_knees_bend_within_their_ranges_and_reach_the_folded_end(standing):
    pose, _ = standing
    angles = {limb.middle: [] for limb in repose.LIMBS}
    for new_pose, _ in reposed_many(standing):
        for limb in repose.LIMBS:
            angles[limb.middle].append(interior_angle(new_pose, limb))
    for limb in repose.LIMBS:
        low, high = limb.interior_deg
        values = np.array(angles[limb.middle])
        assert values.min() >= low - 1e-6 and values.max() <= high + 1e-6, limb.middle
        assert np.mean(values < low + 25.0) > 0.1, limb.middle  # the folded end is reached, not just drawn
        assert interior_angle(pose, limb) > 150.0  # the standing pose had them almost straight


def test_arms_stay_out_of_the_torso_and_the_lowest_foot_point_keeps_its_height(standing):
    pose, extras = standing
    lowest = min(pose[[J["r_ankle"], J["l_ankle"]], 1].min(), extras[:2, 1].min())
    for new_pose, new_extras in reposed_many(standing):
        for name in ("r_elbow", "r_wrist", "l_elbow", "l_wrist"):  # the standing pose's are all clear
            distance = repose._spine_distance(new_pose[J[name]], new_pose[J["pelvis"]], new_pose[J["upper_neck"]])
            assert distance >= repose.TORSO_CLEARANCE_MM - 1e-6, name
        assert min(new_pose[[J["r_ankle"], J["l_ankle"]], 1].min(), new_extras[:2, 1].min()) == pytest.approx(lowest)


def test_probability_zero_changes_nothing_and_a_seed_gives_the_same_pose(standing):
    pose, extras = standing
    same_pose, same_extras = repose.repose_limbs(pose, extras, 0.0, np.random.default_rng(0))
    assert np.array_equal(same_pose, pose) and np.array_equal(same_extras, extras)
    first = repose.repose_limbs(pose, extras, 0.5, np.random.default_rng(7))
    again = repose.repose_limbs(pose, extras, 0.5, np.random.default_rng(7))
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))


def test_folding_moves_only_the_arms_and_leaves_most_elbows_folded_out_of_the_torso(standing):
    pose, extras = standing
    arms = {name for limb in repose.FOLDED_ARMS for name in (limb.middle, limb.end)}
    folded = []
    for seed in range(200):
        new_pose, new_extras = repose.fold_elbows(pose, extras, 1.0, np.random.default_rng(seed))
        np.testing.assert_allclose(bone_lengths(new_pose, new_extras), bone_lengths(pose, extras), atol=1e-6)
        for name in set(joints.NAMES) - arms:
            assert np.array_equal(new_pose[J[name]], pose[J[name]]), name
        toes = [body.EXTRA["r_toe"], body.EXTRA["l_toe"]]
        assert np.array_equal(new_extras[toes], extras[toes])
        for limb in repose.FOLDED_ARMS:
            moved = not np.array_equal(new_pose[J[limb.end]], pose[J[limb.end]])
            if moved:
                distance = repose._spine_distance(new_pose[J[limb.end]], pose[J["pelvis"]], pose[J["upper_neck"]])
                assert distance >= repose.TORSO_CLEARANCE_MM - 1e-6
            folded.append(moved and 35.0 - 1e-6 <= interior_angle(new_pose, limb) <= 70.0 + 1e-6)
    assert np.mean(folded) > 0.9  # a fold whose every try hits the torso is skipped; few are


@pytest.fixture(scope="module")
def configs(mocap_dir):
    plain = domains.SynthConfig(mocap_dir=str(mocap_dir), width=128, height=128)
    return plain, dataclasses.replace(plain, repose_limbs=1.0)


def test_only_training_samples_are_reposed_and_their_labels_still_match_the_picture(configs):
    plain, reposed = configs
    for index in range(3):
        test_a, test_b = (domains.sample("wild", "test", 3, index, c) for c in configs)
        assert np.array_equal(test_a.image, test_b.image) and np.array_equal(test_a.joints2d, test_b.joints2d)
        train_a, train_b = (domains.sample("lab", "train", 3, index, c) for c in configs)
        assert not np.allclose(train_a.joints3d_cam, train_b.joints3d_cam)
        # the same person (bone lengths), and the 3D label still projects onto the 2D label
        np.testing.assert_allclose(bone_lengths(train_b.joints3d_cam, np.zeros((4, 3)))[:15],
                                   bone_lengths(train_a.joints3d_cam, np.zeros((4, 3)))[:15], rtol=1e-9)
        k = train_b.intrinsics
        projected = (train_b.joints3d_cam @ k.T)[:, :2] / train_b.joints3d_cam[:, 2:3]
        np.testing.assert_allclose(projected, train_b.joints2d, atol=1e-6)
        labels = domains.labels("lab", "train", 3, index, reposed)
        np.testing.assert_allclose(labels.joints2d, train_b.joints2d)


def test_reposing_reaches_elbow_angles_the_training_takes_lack(configs):
    """No training take folds an elbow under ~60 degrees; the held-out subject 131 does."""
    plain, reposed = configs
    folded = {}
    for name, config in (("plain", plain), ("reposed", dataclasses.replace(reposed, repose_limbs=0.5))):
        poses = np.array([domains.labels(d, "train", 5, i, config).joints3d_cam
                          for d in ("lab",) for i in range(150)])
        angles = np.concatenate([[interior_angle(p, limb) for p in poses] for limb in repose.LIMBS[:2]])
        folded[name] = float(np.mean(angles < 55.0))
    print(f"elbows folded under 55 degrees: {folded}")
    assert folded["plain"] < 0.03 and folded["reposed"] > max(0.05, 3 * folded["plain"])


def test_folding_elbows_at_a_quarter_folds_about_a_quarter_of_training_elbows_and_no_test_one(configs):
    plain, _ = configs
    folding = dataclasses.replace(plain, fold_elbows=0.25)
    arms = repose.FOLDED_ARMS
    angles = np.array([[interior_angle(domains.labels("lab", "train", 5, i, folding).joints3d_cam, limb)
                        for limb in arms] for i in range(150)])
    share = float(np.mean(angles < 70.0 + 1e-6))
    print(f"training elbows at 70 degrees or less with fold_elbows 0.25: {share:.2f}")
    assert 0.15 < share < 0.4
    for index in range(3):
        a, b = (domains.labels("wild", "test", 3, index, c) for c in (plain, folding))
        assert np.array_equal(a.joints2d, b.joints2d)


@pytest.mark.parametrize("changes, message", [
    ({"repose_limbs": 1.5}, "repose_limbs must be a probability"),
    ({"repose_limbs": "yes"}, "repose_limbs must be a probability"),
    ({"repose_limbs": 0.5, "split": "test"}, "applies to the train split only"),
    ({"fold_elbows": -0.1}, "fold_elbows must be a probability"),
    ({"fold_elbows": True}, "fold_elbows must be a probability"),
    ({"fold_elbows": 0.2, "split": "test"}, "fold_elbows applies to the train split only"),
])
def test_bad_repose_settings_are_config_errors(changes, message):
    with pytest.raises(ConfigError, match=message):
        DatasetConfig(**{"format": "synthpose", "domain": "wild", "size": 4, **changes})
