"""A recording of a real run, converted to BVH: the project's reader gets the published skeleton back."""

from __future__ import annotations

import numpy as np
from support import assert_one_error_line, wildpose

from wildpose.stream import schema
from wildpose.training import bvh_export, joints
from wildpose.training.synthpose import bvh


def test_a_recording_becomes_a_bvh_whose_skeleton_matches_the_published_poses(recorded_session, tmp_path):
    result = wildpose("bvh", str(recorded_session.path), "--output", str(tmp_path / "walker.bvh"))
    assert result.returncode == 0, result.stderr
    (path,) = [line for line in result.stdout.splitlines() if line.endswith(".bvh")]
    parsed = bvh.parse_bvh(open(path).read())
    poses = [schema.unpack(m.payload) for m in recorded_session.messages if m.topic.startswith("pose/")]
    seen = [(p["seq"], p["people"][0]) for p in poses if p["people"]]
    # a BVH frame per frame from the first seen to the last: a frame the run dropped holds the last pose
    assert parsed.num_frames == seen[-1][0] - seen[0][0] + 1
    positions = bvh.forward_kinematics(parsed, unit_mm=10.0)
    ours = np.stack([positions[:, parsed.index(name)] for name in joints.NAMES], axis=1)
    ours = ours[[seq - seen[0][0] for seq, _ in seen]]
    published = np.array([person["joints3d"] for _, person in seen]) @ bvh_export.CAMERA_TO_Y_UP.T
    # Bone lengths are fixed at their medians in a BVH, so compare where each of its bones points. The
    # drawn skeleton's pelvis -> neck edge spans two BVH bones (through the thorax), whose chord turns
    # as their lengths are fixed: compare the two bones instead.
    spine = (joints.INDEX["pelvis"], joints.INDEX["upper_neck"])
    edges = np.array([e for e in joints.EDGES if tuple(e) != spine]
                     + [(spine[0], joints.INDEX["thorax"]), (joints.INDEX["thorax"], spine[1])])
    def directions(pose):
        bones = pose[:, edges[:, 1]] - pose[:, edges[:, 0]]
        return bones / np.linalg.norm(bones, axis=-1, keepdims=True)
    angle = np.degrees(np.arccos(np.clip((directions(ours) * directions(published)).sum(-1), -1, 1)))
    print(f"bone directions: largest difference {angle.max():.4f} degrees over {angle.shape} bones")
    assert angle.max() < 0.5  # the rotations are exact; what remains is the BVH text's rounding


def test_a_recording_without_people_gets_one_clear_line(tmp_path):
    empty = tmp_path / "empty.mcap"
    empty.write_bytes(b"\x89MCAP0\r\n")
    assert_one_error_line(wildpose("bvh", str(empty), "--output", str(tmp_path / "x.bvh")), "nothing to write")
    assert_one_error_line(wildpose("bvh", str(empty), "--output", str(tmp_path / "x.txt")), "must end in .bvh")
