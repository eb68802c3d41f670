"""CMU skeletons -> our 16 joints: both naming schemes, the converter's T-pose, plausible people."""

from __future__ import annotations

import numpy as np
import pytest

from wildpose.errors import MocapError
from wildpose.training import joints
from wildpose.training.synthpose import bvh, cmu

from .conftest import MANIFEST_FRAMES

J = joints.INDEX
MOTIONBUILDER = sorted(s for s in MANIFEST_FRAMES if not s.startswith("131"))
MAX3DS = sorted(s for s in MANIFEST_FRAMES if s.startswith("131"))


def length(pose: np.ndarray, a: str, b: str) -> np.ndarray:
    return np.linalg.norm(pose[..., J[a], :] - pose[..., J[b], :], axis=-1)


@pytest.mark.parametrize("stem", sorted(MANIFEST_FRAMES))
def test_each_file_maps_to_16_finite_joints_in_mm_without_the_converter_tpose(motions, stem):
    motion = motions[stem]
    expected_scheme = "3dsmax" if stem in MAX3DS else "motionbuilder"
    assert motion.scheme == expected_scheme
    # The MotionBuilder release starts with a T-pose the converter added; the 3dsMax one does not.
    assert motion.dropped_tpose == (expected_scheme == "motionbuilder")
    frames = MANIFEST_FRAMES[stem] - (1 if motion.dropped_tpose else 0)
    assert motion.joints.shape == (frames, 16, 3)
    assert motion.extras.shape == (frames, len(cmu.EXTRA_NAMES), 3)
    assert np.isfinite(motion.joints).all() and np.isfinite(motion.extras).all()
    assert motion.fps == pytest.approx(120.0)


@pytest.mark.parametrize("stem", sorted(MANIFEST_FRAMES))
def test_mapped_skeletons_have_human_proportions(motions, stem):
    pose = motions[stem].joints
    for side in "rl":
        assert 350 < length(pose, f"{side}_hip", f"{side}_knee").mean() < 470  # femur
        assert 350 < length(pose, f"{side}_knee", f"{side}_ankle").mean() < 480  # tibia
        assert 230 < length(pose, f"{side}_shoulder", f"{side}_elbow").mean() < 340  # humerus
        # CMU's forearm bone stops short of the wrist (the converter dropped the wrist bone): 138-205 mm
        assert 120 < length(pose, f"{side}_elbow", f"{side}_wrist").mean() < 260
    for right, left in joints.SYMMETRIC_BONES:
        r = np.linalg.norm(pose[:, right[0]] - pose[:, right[1]], axis=-1).mean()
        l_ = np.linalg.norm(pose[:, left[0]] - pose[:, left[1]], axis=-1).mean()
        assert abs(r - l_) < 0.12 * max(r, l_)
    shoulders = length(pose, "r_shoulder", "l_shoulder").mean()
    hips = length(pose, "r_hip", "l_hip").mean()
    assert shoulders > 1.5 * hips
    # The pelvis is the hips' midpoint, as in Human3.6M.
    assert np.allclose(pose[:, J["pelvis"]], (pose[:, J["r_hip"]] + pose[:, J["l_hip"]]) / 2)


@pytest.mark.parametrize(
    ("stem", "hanging_arms"),
    [
        ("02_01", "rl"),  # walk
        ("09_01", "rl"),  # run
        # Subject 131's takes are stylised (the right arm gestures overhead for a third of 131_01),
        # but the left arm hangs throughout.
        ("131_01", "l"),
        ("131_02", "l"),
    ],
)
def test_upright_people_with_hanging_arms_and_toes_forward(motions, stem, hanging_arms):
    """Catches a wrong rotation order (the 3dsMax arms are ZXY) and mirrored left/right labels."""
    pose, extras = motions[stem].joints, motions[stem].extras
    y = pose[..., 1]
    assert np.all(y[:, J["head_top"]] > y[:, J["upper_neck"]])
    assert np.all(y[:, J["upper_neck"]] > y[:, J["thorax"]])
    assert np.all(y[:, J["thorax"]] > y[:, J["pelvis"]])
    assert np.mean(y[:, J["pelvis"]] > y[:, J["l_knee"]] + 200) > 0.95
    for side in hanging_arms:
        assert np.mean(y[:, J[f"{side}_wrist"]] < y[:, J[f"{side}_shoulder"]] - 150) > 0.95
    # forward = left x up in a right-handed y-up world; a foot standing on the floor points that way
    left = pose[:, J["l_hip"]] - pose[:, J["r_hip"]]
    forward = np.cross(left, [0.0, 1.0, 0.0])
    for toe, ankle in (("r_toe", "r_ankle"), ("l_toe", "l_ankle")):
        foot = extras[:, cmu.EXTRA_NAMES.index(toe)] - pose[:, J[ankle]]
        standing = pose[:, J[ankle], 1] < motions[stem].floor_y + 150
        assert standing.sum() > 20
        assert np.mean(np.einsum("fi,fi->f", foot, forward)[standing] > 0) > 0.95


@pytest.mark.parametrize("stem", ["02_01", "05_02", "131_01"])
def test_upper_neck_sits_above_the_shoulder_line_like_human36m_thorax(motions, stem):
    """Human3.6M's thorax (our slot 8) is 10-80 mm above the shoulders' midpoint; so is our choice."""
    pose = motions[stem].joints
    up = pose[:, J["upper_neck"]] - pose[:, J["pelvis"]]
    up /= np.linalg.norm(up, axis=-1, keepdims=True)
    shoulders = (pose[:, J["r_shoulder"]] + pose[:, J["l_shoulder"]]) / 2
    above = np.einsum("fi,fi->f", pose[:, J["upper_neck"]] - shoulders, up)
    assert 0 < above.mean() < 90


def test_floor_is_where_the_toes_rest(motions):
    motion = motions["02_01"]
    toes = motion.extras[:, :2, 1].min(axis=1)
    assert np.mean(np.abs(toes - motion.floor_y) < 60) > 0.5


def test_unknown_skeleton_is_refused_with_the_missing_names():
    text = ("HIERARCHY\nROOT Pelvis\n{\nOFFSET 0 0 0\nCHANNELS 3 Xposition Yposition Zposition\n"
            "End Site\n{\nOFFSET 0 1 0\n}\n}\nMOTION\nFrames: 1\nFrame Time: 0.01\n0 0 0\n")
    with pytest.raises(MocapError, match="expected a CMU skeleton.*LeftUpLeg"):
        cmu.to_ours(bvh.parse_bvh(text, source="robot.bvh"))


@pytest.mark.parametrize(
    ("src", "dst", "count", "expected_first"),
    [
        (120, 30, 3, [0, 4, 8]),  # integer ratio: every 4th frame exactly
        (120, 120, 12, list(range(12))),
        (120, 50, 5, [0, 2.4, 4.8, 7.2, 9.6]),  # in between: linear interpolation
        (30, 120, 45, [0, 0.25, 0.5, 0.75, 1.0]),
    ],
)
def test_resample_interpolates_linearly_in_time(src, dst, count, expected_first):
    ramp = np.arange(12, dtype=np.float64)[:, None, None] * np.ones((1, 2, 3))
    out = cmu.resample(ramp, src, dst)
    assert out.shape == (count, 2, 3)
    assert out[: len(expected_first), 0, 0] == pytest.approx(expected_first)
    assert out[-1, 0, 0] <= 11.0


def test_load_motion_resamples_to_the_requested_rate(mocap_dir, motions):
    slow = cmu.load_motion(mocap_dir / "02_03.bvh", fps=30)
    assert slow.fps == 30
    assert np.array_equal(slow.joints, motions["02_03"].joints[::4])
