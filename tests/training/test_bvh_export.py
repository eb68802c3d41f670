"""BVH export: CMU motion -> our joints -> our BVH writer -> the project's BVH reader -> forward
kinematics gives the joints back; a third-party BVH parser reads the file too."""

from __future__ import annotations

import bvh as third_party_bvh
import numpy as np
import pytest

from wildpose.errors import ConfigError
from wildpose.training import bvh_export, joints
from wildpose.training.synthpose import bvh, cmu

TAKES = ("02_01", "05_02", "131_03", "01_01")  # walk, dance, hop, playground


@pytest.fixture(scope="module")
def motions(shared_data):
    return {take: cmu.load_motion(shared_data / "cmu_mocap" / f"{take}.bvh", fps=30) for take in TAKES}


@pytest.mark.parametrize("take", TAKES)
def test_a_cmu_take_round_trips_through_our_bvh_within_15_mm(motions, take):
    motion = motions[take]
    parsed = bvh.parse_bvh(bvh_export.to_bvh(motion.joints, 30.0))
    positions = bvh.forward_kinematics(parsed, unit_mm=10.0)  # the writer's unit is the centimetre
    ours = np.stack([positions[:, parsed.index(name)] for name in joints.NAMES], axis=1)
    error = np.linalg.norm(ours - motion.joints, axis=-1)
    print(f"{take}: median {np.median(error):.1f} mm, 95th percentile {np.percentile(error, 95):.1f} mm")
    assert parsed.num_frames == motion.num_frames and parsed.fps == pytest.approx(30.0)
    assert np.median(error) < 15.0
    # bones have one length all through the take, the median of the motion's own
    lengths = bvh_export.bone_lengths(motion.joints)
    knee_to_ankle = np.linalg.norm(ours[:, joints.INDEX["r_ankle"]] - ours[:, joints.INDEX["r_knee"]], axis=-1)
    assert np.allclose(knee_to_ankle, lengths["r_ankle"], atol=1e-3)


def test_a_third_party_parser_reads_the_file(motions):
    text = bvh_export.to_bvh(motions["02_01"].joints, 30.0)
    parsed = third_party_bvh.Bvh(text)
    assert parsed.nframes == motions["02_01"].num_frames
    assert parsed.frame_time == pytest.approx(1 / 30)
    assert set(joints.NAMES) <= set(parsed.get_joints_names())
    assert parsed.joint_channels("pelvis")[:3] == ["Xposition", "Yposition", "Zposition"]
    assert parsed.joint_channels("r_knee") == ["Zrotation", "Xrotation", "Yrotation"]


@pytest.mark.parametrize("poses, fps, message", [
    (np.zeros((5, 15, 3)), 30.0, r"\(frames, 16, 3\)"),
    (np.full((5, 16, 3), np.nan), 30.0, "finite poses"),
    (np.zeros((5, 16, 3)), 0.0, "positive frame rate"),
])
def test_bad_input_is_refused(poses, fps, message):
    with pytest.raises(ConfigError, match=message):
        bvh_export.to_bvh(poses, fps)
