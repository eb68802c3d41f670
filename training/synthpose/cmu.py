"""CMU mocap skeletons -> our 16 joints, in millimetres, so SynthPose poses figures from real motion.

The CMU data comes in two BVH releases with different joint names (MotionBuilder-friendly, e.g.
`LeftUpLeg`/`LeftArm`, and 3dsMax-friendly, e.g. `LeftHip`/`LeftShoulder`); both map onto the same
16 joints here. Joint semantics follow Human3.6M, our 3D source (see the mapping comments).

Units, measured rather than assumed: the BVH offsets are in CMU ASF units, unscaled. In 01_01.bvh the
`LeftLeg` offset is 7.1578 units long, exactly the `lfemur` length in asfamc/01.asf (whose
`:units length 0.45` makes 1 unit = 1/0.45 inch = 0.056444 m), and femurs come out 371-429 mm across
the 12 files (tests/training/synthpose/test_cmu.py checks it).

Two quirks of the MotionBuilder release (cgspeed conversion): frame 1 is a T-pose the converter added
(integer angles, not motion), dropped here; and it lost two ASF bones, `thorax` (~116 mm of spine
between the upper back and the neck) and `lwrist`/`rwrist` (~98 mm beyond the forearm), so its torso
and forearms are short. `body.retarget` gives every figure human bone lengths, which undoes both.
The 3dsMax release (131_0x) has no T-pose frame, a rest pose with the arms down and ZXY arm channels.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from wildpose.errors import MocapError
from wildpose.training import joints
from wildpose.training.synthpose import bvh as bvh_io

log = logging.getLogger(__name__)

CMU_UNIT_MM: Final[float] = 56.444  # 1 ASF unit = (1 / 0.45) inch = 0.056444 m (MANIFEST.md, asfamc/*.asf)
CMU_FPS: Final[float] = 120.0

# Per naming scheme: for each of our joints, the BVH joint(s) whose mean position it takes.
#  - hips, knees, ankles: the femur head (`*UpLeg`/`*Hip`), knee and ankle joints; not `LHipJoint`,
#    which has zero offset and sits on the root.
#  - pelvis: the MIDPOINT OF THE TWO HIP JOINTS, not the CMU root. Human3.6M's pelvis is exactly that
#    midpoint (0.0 mm in pose3d/h36m/test_h36m_body3d.npz) and MPII annotates "between the hips"; the CMU
#    root sits ~100 mm above it, which would tilt and lengthen both hip bones.
#  - thorax: the end of CMU's lower-back bone (`Spine` / `Chest`). Our slot 7 holds Human3.6M's spine
#    (joints.H36M_TO_OURS), which lies at 47-51% of the pelvis->neck-base height there; this joint lies
#    at ~51% in the CMU files.
#  - upper_neck: the top of CMU's lower-neck bone (`Neck1` / `Neck`). Slot 8 holds Human3.6M's thorax,
#    where the shoulders hang (EDGES (12,8), (8,13)), 10-80 mm above the shoulder midpoint; the CMU joint
#    at the bottom of the neck (`Neck` / `lowerneck`) sits 65-95 mm BELOW the shoulders because the
#    converter dropped the thorax bone, while this one sits ~20-30 mm above them, as in Human3.6M.
#  - head_top: the head bone's End Site, 175-180 mm above upper_neck, within Human3.6M's 136-215 mm
#    thorax->head spread.
#  - shoulders, elbows, wrists: the humerus head (`*Arm` / `*Shoulder`, not the zero-offset collar
#    joint at the neck), the elbow, and the end of the forearm bone (`*Hand` / `*Wrist`).
SCHEMES: Final[dict[str, dict[str, tuple[str, ...]]]] = {
    "motionbuilder": {
        "r_ankle": ("RightFoot",), "r_knee": ("RightLeg",), "r_hip": ("RightUpLeg",),
        "l_hip": ("LeftUpLeg",), "l_knee": ("LeftLeg",), "l_ankle": ("LeftFoot",),
        "pelvis": ("RightUpLeg", "LeftUpLeg"), "thorax": ("Spine",), "upper_neck": ("Neck1",),
        "head_top": ("Head_end",),
        "r_wrist": ("RightHand",), "r_elbow": ("RightForeArm",), "r_shoulder": ("RightArm",),
        "l_shoulder": ("LeftArm",), "l_elbow": ("LeftForeArm",), "l_wrist": ("LeftHand",),
    },
    "3dsmax": {
        "r_ankle": ("RightAnkle",), "r_knee": ("RightKnee",), "r_hip": ("RightHip",),
        "l_hip": ("LeftHip",), "l_knee": ("LeftKnee",), "l_ankle": ("LeftAnkle",),
        "pelvis": ("RightHip", "LeftHip"), "thorax": ("Chest",), "upper_neck": ("Neck",),
        "head_top": ("Head_end",),
        "r_wrist": ("RightWrist",), "r_elbow": ("RightElbow",), "r_shoulder": ("RightShoulder",),
        "l_shoulder": ("LeftShoulder",), "l_elbow": ("LeftElbow",), "l_wrist": ("LeftWrist",),
    },
}

# Points the renderer needs beyond our 16 joints: toe tips orient the feet, fingertips the hands.
EXTRA_NAMES: Final[tuple[str, ...]] = ("r_toe", "l_toe", "r_hand", "l_hand")
EXTRAS: Final[dict[str, dict[str, str]]] = {
    "motionbuilder": {"r_toe": "RightToeBase_end", "l_toe": "LeftToeBase_end",
                      "r_hand": "RightHandIndex1_end", "l_hand": "LeftHandIndex1_end"},
    "3dsmax": {"r_toe": "RightToe_end", "l_toe": "LeftToe_end",
               "r_hand": "RFingers_end", "l_hand": "LFingers_end"},
}
# Parent joint of each extra point (for retargeting).
EXTRA_PARENTS: Final[tuple[str, ...]] = ("r_ankle", "l_ankle", "r_wrist", "l_wrist")

_FLOOR_PERCENTILE = 1.0  # of the per-frame lowest toe tip: robust to a few noisy frames, not to jumps


@dataclass(frozen=True, eq=False)
class CmuMotion:
    """One mocap sequence as our joints. World frame of the BVH (y-up, right-handed), millimetres.

    `joints` `(F, 16, 3)` in `joints.NAMES` order; `extras` `(F, 4, 3)` in `EXTRA_NAMES` order;
    `floor_y` the estimated floor height (mm; toe tips rest there).
    """

    name: str
    scheme: str
    joints: np.ndarray
    extras: np.ndarray
    fps: float
    floor_y: float
    dropped_tpose: bool

    @property
    def num_frames(self) -> int:
        return int(self.joints.shape[0])


def detect_scheme(bvh: bvh_io.Bvh) -> str:
    """Which CMU naming scheme the file uses ("motionbuilder" or "3dsmax")."""
    present = set(bvh.names)
    missing = {}
    for scheme, table in SCHEMES.items():
        needed = {n for names in table.values() for n in names} | set(EXTRAS[scheme].values())
        missing[scheme] = sorted(needed - present)
        if not missing[scheme]:
            return scheme
    raise MocapError(f"{bvh.source}: expected a CMU skeleton ({' or '.join(SCHEMES)} joint names), got one "
                     f"missing {missing}; fix: add the file's naming scheme to cmu.SCHEMES")


def has_converter_tpose(bvh: bvh_io.Bvh) -> bool:
    """True when frame 1 is the converter's T-pose: all its angles are whole degrees, frame 2's not.

    The cgspeed MotionBuilder files start with such a frame (-21, 21, -16, ... exactly); real motion
    written with 4 decimals never has all ~90 angles whole, and the 131_0x files start with motion.
    """
    if bvh.num_frames < 2:
        return False
    rotation_columns = [j.first_channel + k for j in bvh.joints for k, c in enumerate(j.channels)
                        if c in bvh_io.ROTATION_CHANNELS]
    first, second = bvh.motion[0, rotation_columns], bvh.motion[1, rotation_columns]
    return bool(np.all(first == np.round(first)) and not np.all(second == np.round(second)))


def to_ours(bvh: bvh_io.Bvh, name: str | None = None) -> CmuMotion:
    """Forward kinematics of a CMU BVH mapped onto our 16 joints, the converter's T-pose dropped."""
    scheme = detect_scheme(bvh)
    dropped = has_converter_tpose(bvh)
    frames = np.arange(1 if dropped else 0, bvh.num_frames)
    if frames.size == 0:
        raise MocapError(f"{bvh.source}: expected at least one frame of motion, got none; fix: use another file")
    world = bvh_io.forward_kinematics(bvh, CMU_UNIT_MM, frames)
    table = SCHEMES[scheme]
    ours = np.stack([world[:, [bvh.index(n) for n in table[joint]]].mean(axis=1) for joint in joints.NAMES], axis=1)
    extras = np.stack([world[:, bvh.index(EXTRAS[scheme][extra])] for extra in EXTRA_NAMES], axis=1)
    toes = extras[:, :2, 1].min(axis=1)
    floor_y = float(np.percentile(toes, _FLOOR_PERCENTILE))
    label = name or Path(bvh.source).stem
    log.debug("%s: %s scheme, %d frames, floor at %.0f mm%s", label, scheme, len(frames), floor_y,
              ", converter T-pose dropped" if dropped else "")
    # "Frame Time: .0083333" is 1/120 s rounded to 7 places; keep the rate whole so 120 -> 30 is exact.
    fps = round(bvh.fps) if abs(bvh.fps - round(bvh.fps)) < 0.01 else bvh.fps
    return CmuMotion(name=label, scheme=scheme, joints=ours, extras=extras, fps=float(fps), floor_y=floor_y,
                     dropped_tpose=dropped)


def load_motion(path: str | Path, fps: float | None = None) -> CmuMotion:
    """Read a CMU BVH file as our joints; `fps` resamples it (e.g. 120 -> 30), default as recorded."""
    motion = to_ours(bvh_io.load_bvh(path))
    if fps is None or fps == motion.fps:
        return motion
    return CmuMotion(name=motion.name, scheme=motion.scheme,
                     joints=resample(motion.joints, motion.fps, fps),
                     extras=resample(motion.extras, motion.fps, fps),
                     fps=float(fps), floor_y=motion.floor_y, dropped_tpose=motion.dropped_tpose)


def resample(positions: np.ndarray, src_fps: float, dst_fps: float) -> np.ndarray:
    """Resample `(F, ...)` frames from `src_fps` to `dst_fps` by linear interpolation in time.

    Output frame k is at time k / dst_fps, for every such time within the input's span, so
    120 -> 30 fps keeps every 4th frame exactly.
    """
    if not (src_fps > 0 and dst_fps > 0):
        raise ValueError(f"frame rates must be positive, got {src_fps} -> {dst_fps}")
    count = positions.shape[0]
    if count == 0:
        return positions.copy()
    duration = (count - 1) / src_fps
    out_count = int(np.floor(duration * dst_fps + 1e-9)) + 1
    source_index = np.arange(out_count) * (src_fps / dst_fps)
    lower = np.minimum(np.floor(source_index + 1e-9).astype(int), count - 1)
    upper = np.minimum(lower + 1, count - 1)
    weight = (source_index - lower).reshape((-1,) + (1,) * (positions.ndim - 1))
    weight = np.clip(weight, 0.0, 1.0)
    return positions[lower] * (1.0 - weight) + positions[upper] * weight
