"""The joint definitions every room imports: order, symmetry, skeleton and dataset mappings."""

import numpy as np
import pytest

from wildpose.training import joints


def test_sixteen_joints_in_mpii_order_with_pelvis_as_root():
    assert joints.NUM_JOINTS == 16
    assert joints.NAMES[0] == "r_ankle" and joints.NAMES[15] == "l_wrist"
    assert joints.NAMES[joints.ROOT] == "pelvis"


def test_flip_pairs_swap_right_and_left_names():
    for right, left in joints.FLIP_PAIRS:
        assert joints.NAMES[right].replace("r_", "") == joints.NAMES[left].replace("l_", "")
        assert joints.NAMES[right].startswith("r_") and joints.NAMES[left].startswith("l_")


def test_flip_permutation_is_an_involution_that_fixes_the_midline():
    perm = joints.flip_permutation()
    assert np.array_equal(perm[perm], np.arange(joints.NUM_JOINTS))
    for name in ("pelvis", "thorax", "upper_neck", "head_top"):
        assert perm[joints.INDEX[name]] == joints.INDEX[name]


def test_skeleton_is_a_tree_of_14_bones_over_every_joint_but_the_thorax():
    assert len(joints.EDGES) == 14
    touched = {j for edge in joints.EDGES for j in edge}
    assert touched == set(range(joints.NUM_JOINTS)) - {joints.INDEX["thorax"]}
    parent = {j: j for j in touched}  # union-find: 15 nodes and 14 edges with no cycle -> a tree

    def root(j):
        while parent[j] != j:
            j = parent[j]
        return j

    for a, b in joints.EDGES:
        assert root(a) != root(b), f"edge {a}-{b} closes a cycle"
        parent[root(a)] = root(b)


def test_bone_group_weights_are_the_reference_length_ratios():
    weights = {bone: w for group in joints.BONE_GROUPS.values() for bone, w in group}
    assert weights[(0, 1)] == pytest.approx(456.0086 / 452.1255, abs=1e-6)
    assert weights[(10, 11)] == pytest.approx(284.1253 / 249.7726, abs=1e-6)
    assert sorted(joints.BONE_GROUPS) == ["arms", "hips", "legs", "shoulders"]


@pytest.mark.parametrize("ours, theirs", [
    ("r_ankle", "r_foot"), ("r_knee", "r_knee"), ("r_hip", "r_hip"), ("l_hip", "l_hip"),
    ("l_ankle", "l_foot"), ("pelvis", "pelvis"), ("thorax", "spine"), ("upper_neck", "thorax"),
    ("head_top", "head"), ("r_wrist", "r_wrist"), ("l_shoulder", "l_shoulder"), ("l_wrist", "l_wrist"),
])
def test_h36m_mapping_takes_each_joint_from_its_h36m_counterpart(ours, theirs):
    assert joints.H36M_NAMES[joints.H36M_TO_OURS[joints.INDEX[ours]]] == theirs


def test_h36m_mappings_round_trip():
    assert [joints.OURS_TO_H36M[h] for h in joints.H36M_TO_OURS] == list(range(joints.NUM_JOINTS))


@pytest.mark.parametrize("ours, theirs", [
    ("r_ankle", "r_ankle"), ("pelvis", "root"), ("thorax", "spine"), ("upper_neck", "neck"),
    ("head_top", "head_top"), ("r_wrist", "r_wrist"), ("l_elbow", "l_elbow"),
])
def test_3dhp_mapping_takes_each_joint_from_its_counterpart(ours, theirs):
    assert joints.MPI_INF_3DHP_NAMES[joints.MPI_INF_3DHP_TO_OURS[joints.INDEX[ours]]] == theirs


def test_3dhp_scores_14_joints():
    assert len(joints.MPI_INF_3DHP_EVAL_JOINTS) == 14


def test_bone_lengths_of_a_unit_chain():
    pose = np.zeros((16, 3))
    pose[1] = [3.0, 4.0, 0.0]  # bone (0, 1) has length 5
    lengths = joints.bone_lengths(pose[None])
    assert lengths.shape == (1, 14)
    assert lengths[0, joints.EDGES.index((0, 1))] == pytest.approx(5.0)
