"""The BVH reader: every CMU file parses, forward kinematics matches hand-computed poses, and broken
files fail with the file and line."""

from __future__ import annotations

import numpy as np
import pytest

from wildpose.errors import MocapError, WildPoseError
from wildpose.training.synthpose import bvh, cmu

from .conftest import MANIFEST_FRAMES

# A root that translates and turns, a 3-channel joint 10 units up, and an End Site 5 units forward.
TINY = """HIERARCHY
ROOT Hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation
  JOINT Chest
  {
    OFFSET 0 10 0
    CHANNELS 3 {order}
    End Site
    {
      OFFSET 0 0 5
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.0083333
0 0 0 0 0 0 0 0 0
1 2 3 {root} {chest}
"""


def tiny(order: str = "Zrotation Yrotation Xrotation", root: str = "0 0 0", chest: str = "0 0 0") -> str:
    return TINY.replace("{order}", order).replace("{root}", root).replace("{chest}", chest)


@pytest.mark.parametrize(
    ("root", "order", "chest", "expected_chest", "expected_end"),
    [
        # rest pose: offsets add up
        ("0 0 0", "Zrotation Yrotation Xrotation", "0 0 0", (1, 12, 3), (1, 12, 8)),
        # root turned 90 deg about z: the chest offset (0, 10, 0) swings to -x
        ("90 0 0", "Zrotation Yrotation Xrotation", "0 0 0", (-9, 2, 3), (-9, 2, 8)),
        # chest turned 90 deg about x: the end offset (0, 0, 5) swings to -y
        ("0 0 0", "Zrotation Yrotation Xrotation", "0 0 90", (1, 12, 3), (1, 7, 3)),
        # both: Rz(90) Rx(90) (0, 0, 5) = Rz(90) (0, -5, 0) = (5, 0, 0)
        ("90 0 0", "Zrotation Yrotation Xrotation", "0 0 90", (-9, 2, 3), (-4, 2, 3)),
        # channels apply in the listed order: X then Z here, so Rx(90) Rz(90) (0, 0, 5) = (0, -5, 0)
        ("0 0 0", "Xrotation Yrotation Zrotation", "90 0 90", (1, 12, 3), (1, 7, 3)),
        # ... while Z then X gives Rz(90) Rx(90) (0, 0, 5) = (5, 0, 0)
        ("0 0 0", "Zrotation Yrotation Xrotation", "90 0 90", (1, 12, 3), (6, 12, 3)),
    ],
)
def test_forward_kinematics_matches_hand_computed_positions(root, order, chest, expected_chest, expected_end):
    parsed = bvh.parse_bvh(tiny(order, root, chest))
    world = bvh.forward_kinematics(parsed, unit_mm=1.0)
    assert parsed.names == ("Hips", "Chest", "Chest_end")
    assert world[1, 0] == pytest.approx([1, 2, 3])
    assert world[1, 1] == pytest.approx(expected_chest, abs=1e-9)
    assert world[1, 2] == pytest.approx(expected_end, abs=1e-9)


def test_position_channels_of_any_joint_add_to_its_offset():
    text = tiny().replace("CHANNELS 3 Zrotation Yrotation Xrotation\n    End",
                          "CHANNELS 6 Zrotation Xposition Yposition Zposition Yrotation Xrotation\n    End")
    text = text.replace("0 0 0 0 0 0 0 0 0\n", "0 0 0 0 0 0 0 0 0 0 0 0\n")
    text = text.replace("1 2 3 0 0 0 0 0 0", "1 2 3 0 0 0 0 4 5 6 0 0")  # chest moves by (4, 5, 6)
    parsed = bvh.parse_bvh(text)
    assert parsed.joints[1].channels[1:4] == bvh.POSITION_CHANNELS
    assert bvh.forward_kinematics(parsed, unit_mm=1.0)[1, 1] == pytest.approx([1 + 4, 2 + 10 + 5, 3 + 6])


def test_forward_kinematics_scales_file_units_to_millimetres():
    parsed = bvh.parse_bvh(tiny())
    assert bvh.forward_kinematics(parsed, unit_mm=56.444)[1, 2] == pytest.approx(np.array([1, 12, 8]) * 56.444)


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_line_endings_do_not_change_the_result(newline):
    text = tiny(root="30 -20 10", chest="5 6 7")
    mixed = "".join(line + (newline if i % 2 else "\n") for i, line in enumerate(text.splitlines()))
    reference = bvh.parse_bvh(text)
    parsed = bvh.parse_bvh(mixed)
    assert parsed.names == reference.names
    assert np.array_equal(parsed.motion, reference.motion)


@pytest.mark.parametrize(
    ("edit", "line", "expected"),
    [
        (lambda t: t.replace("OFFSET 0 10 0", "OFFSET 0 ten 0"), 8, "an OFFSET coordinate"),
        (lambda t: t.replace("CHANNELS 3 Zrotation", "CHANNELS 3 Wrotation"), 9, "a channel name"),
        (lambda t: t.replace("Zrotation Yrotation Xrotation\n    End", "Zrotation Zrotation Xrotation\n    End"),
         9, "each channel at most once"),
        (lambda t: t.replace("End Site", "End Sight"), 10, "'Site'"),
        (lambda t: t.replace("Frames: 2", "Frames: 3"), 20, "3 frames"),
        (lambda t: t.replace("Frames: 2", "Frames: two"), 17, "whole number of frames"),
        (lambda t: t.replace("Frame Time: 0.0083333", "Frame Time: 0"), 18, "positive frame time"),
        (lambda t: t.replace("1 2 3 0 0 0", "1 2 3 0 0"), 20, "9 values in frame 2"),
        (lambda t: t.replace("1 2 3 0 0 0", "1 2 x 0 0 0"), 20, "numbers in frame 2, got 'x'"),
        (lambda t: t.split("MOTION")[0], 15, "MOTION section"),
        (lambda t: "HIERARCHY\nROOT Hips\n{\n", 3, "'OFFSET'"),
    ],
)
def test_malformed_file_names_the_file_and_line(edit, line, expected):
    with pytest.raises(MocapError) as error:
        bvh.parse_bvh(edit(tiny()), source="walk.bvh")
    message = str(error.value)
    assert message.startswith(f"walk.bvh:{line}: expected"), message
    assert expected in message and "fix:" in message


def test_missing_file_is_a_wildpose_error_naming_it(tmp_path):
    missing = tmp_path / "nope.bvh"
    with pytest.raises(WildPoseError, match="nope.bvh"):
        bvh.load_bvh(missing)


@pytest.mark.parametrize("stem", sorted(MANIFEST_FRAMES))
def test_every_cmu_file_parses_with_the_manifest_frame_count(mocap_dir, stem):
    parsed = bvh.load_bvh(mocap_dir / f"{stem}.bvh")
    moving = [j for j in parsed.joints if j.channels]
    assert len(moving) == 31  # CMU skeleton: root + 30 joints, plus 7 End Sites
    assert sum(j.is_end_site for j in parsed.joints) == 7
    assert parsed.num_frames == MANIFEST_FRAMES[stem]
    assert parsed.frame_time == pytest.approx(1 / 120, rel=1e-4)
    assert parsed.motion.shape == (MANIFEST_FRAMES[stem], 96)  # 6 root channels + 30 x 3


def test_the_3dsmax_release_really_has_mixed_line_endings_and_zxy_arms(mocap_dir):
    raw = (mocap_dir / "131_01.bvh").read_bytes()
    assert b"\r\n" in raw and raw.count(b"\n") > raw.count(b"\r\n")
    parsed = bvh.load_bvh(mocap_dir / "131_01.bvh")
    assert parsed.joints[parsed.index("LeftElbow")].channels == ("Zrotation", "Xrotation", "Yrotation")


@pytest.mark.parametrize("stem", ["02_01", "131_02", "05_02"])
def test_bones_keep_their_length_in_every_frame_and_femurs_are_human(mocap_dir, stem):
    parsed = bvh.load_bvh(mocap_dir / f"{stem}.bvh")
    world = bvh.forward_kinematics(parsed, unit_mm=cmu.CMU_UNIT_MM)
    for j, joint in enumerate(parsed.joints):
        if joint.parent >= 0:
            lengths = np.linalg.norm(world[:, j] - world[:, joint.parent], axis=-1)
            assert np.ptp(lengths) < 1e-6, joint.name
    hip, knee = ("LeftUpLeg", "LeftLeg") if "LeftUpLeg" in parsed.names else ("LeftHip", "LeftKnee")
    femur = np.linalg.norm(world[0, parsed.index(knee)] - world[0, parsed.index(hip)])
    assert 350 < femur < 470  # CMU units are 56.444 mm: the files are unscaled


def test_cmu_bvh_offsets_are_the_asf_bone_lengths(mocap_dir):
    """01_01.bvh's femur offset is exactly asfamc/01.asf's lfemur length: the BVH is in ASF units."""
    parsed = bvh.load_bvh(mocap_dir / "01_01.bvh")
    offset = np.linalg.norm(parsed.joints[parsed.index("LeftLeg")].offset)
    asf = (mocap_dir / "asfamc" / "01.asf").read_text()
    lfemur = asf[asf.index("name lfemur"):]
    length = float(lfemur[lfemur.index("length") + 6:].split()[0])
    assert offset == pytest.approx(length, abs=1e-4)
