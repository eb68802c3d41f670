"""The synthetic body: retargeting to human bone lengths, and a shape that contains every joint."""

from __future__ import annotations

import numpy as np
import pytest

from wildpose.training import joints
from wildpose.training.synthpose import body
from wildpose.training.synthpose.raster import Capsule

J = joints.INDEX


def segment_length(pose, extras, child, parent):
    point = pose[J[child]] if child in J else extras[body.EXTRA[child]]
    return np.linalg.norm(point - pose[J[parent]])


@pytest.mark.parametrize("seed", range(5))
def test_retarget_gives_each_bone_the_shape_length_and_keeps_its_direction(standing, seed):
    pose, extras = standing
    shape = body.sample_shape(np.random.default_rng(seed))
    new_pose, new_extras = body.retarget(pose, extras, shape)
    assert new_pose[J["pelvis"]] == pytest.approx(pose[J["pelvis"]])
    for child, parent, segment in body.TREE + body.EXTRA_TREE:
        assert segment_length(new_pose, new_extras, child, parent) == pytest.approx(shape.segments[segment])
        old = (pose[J[child]] if child in J else extras[body.EXTRA[child]]) - pose[J[parent]]
        new = (new_pose[J[child]] if child in J else new_extras[body.EXTRA[child]]) - new_pose[J[parent]]
        assert np.cross(old, new) == pytest.approx(np.zeros(3), abs=1e-6) and old @ new > 0


def test_retarget_keeps_feet_on_the_floor_when_legs_grow(standing):
    pose, extras = standing
    pose = pose.copy()
    pose[:, 1] -= 80.0  # ankles on the floor at y = 0
    shape = body.sample_shape(np.random.default_rng(1))
    new_pose, _ = body.retarget(pose, extras, shape, floor_y=0.0)
    assert new_pose[J["r_ankle"], 1] == pytest.approx(0.0, abs=1.0)  # straight legs: exact up to the knee bend


def test_sampled_shapes_stay_within_human_ranges_and_are_symmetric(standing):
    pose, extras = standing
    sums = []
    for seed in range(200):
        shape = body.sample_shape(np.random.default_rng(seed))
        lo, hi = body.STATURE_RANGE[0] * body.SEGMENT_RANGE[0], body.STATURE_RANGE[1] * body.SEGMENT_RANGE[1]
        for name, mean in body.MEAN_SEGMENT_MM.items():
            assert lo * mean <= shape.segments[name] <= hi * mean
        new_pose, _ = body.retarget(pose, extras, shape)
        for right, left in joints.SYMMETRIC_BONES:
            assert np.linalg.norm(new_pose[right[0]] - new_pose[right[1]]) == \
                pytest.approx(np.linalg.norm(new_pose[left[0]] - new_pose[left[1]]))
        sums.append(joints.bone_lengths(new_pose).sum())
    # around the reference skeleton's 4296.99 mm, spread like adult statures
    assert 0.9 * joints.SKELETON_SUM_MM < np.mean(sums) < 1.02 * joints.SKELETON_SUM_MM
    assert 0.05 < np.std(sums) / np.mean(sums) < 0.1


def test_facing_is_left_cross_up(standing):
    pose, _ = standing
    assert body.facing(pose) == pytest.approx([0.0, 0.0, 1.0])
    turned = pose * [-1, 1, -1]  # the same person turned 180 degrees about y
    assert body.facing(turned) == pytest.approx([0.0, 0.0, -1.0])


def inside(primitive, point, slack=1e-6) -> bool:
    if isinstance(primitive, Capsule):
        ab = primitive.b - primitive.a
        t = np.clip((point - primitive.a) @ ab / max(ab @ ab, 1e-12), 0.0, 1.0)
        return np.linalg.norm(point - (primitive.a + t * ab)) <= primitive.radius + slack
    q = primitive.axes @ (point - primitive.centre) / primitive.radii
    stretch = primitive.stretch / primitive.radii[1]
    q[1] = np.sign(q[1]) * max(abs(q[1]) - stretch, 0.0)
    return np.linalg.norm(q) <= 1.0 + slack


@pytest.mark.parametrize("seed", range(8))
def test_every_joint_lies_inside_a_part_it_belongs_to(standing, seed):
    """So a joint's pixel always shows the figure: its own part, or one in front of it."""
    rng = np.random.default_rng(seed)
    shape = body.sample_shape(rng)
    pose, extras = standing
    # a random rigid placement in front of a camera, and a random bend of the arms
    pose, extras = pose.copy(), extras.copy()
    pose[J["r_wrist"]] += rng.uniform(-150, 150, 3)
    pose[J["l_elbow"]] += rng.uniform(-150, 150, 3)
    pose, extras = body.retarget(pose, extras, shape)
    parts = dict(body.primitives(pose, extras, shape))
    for name in joints.NAMES:
        owners = body.JOINT_PARTS[name]
        assert any(inside(parts[p], pose[J[name]]) for p in owners if p in parts), name


def test_clothing_cut_decides_which_limbs_show_skin(standing):
    pose, extras = standing
    shape = body.mean_shape()
    short = body.BodyShape(shape.segments, shape.radii, 1.0, long_sleeves=False, long_trousers=False, hair=0.0)
    materials = {name: p.material for name, p in body.primitives(pose, extras, short)}
    assert materials["r_forearm"] == body.SKIN and materials["l_shin"] == body.SKIN
    assert materials["chest"] == body.SHIRT and materials["hips"] == body.TROUSERS
    assert "hair" not in materials
    materials = {name: p.material for name, p in body.primitives(pose, extras, shape)}
    assert materials["r_forearm"] == body.SHIRT and materials["l_shin"] == body.TROUSERS and "hair" in materials
