"""Limb poses beyond the mocap's: swing a limb at its shoulder or hip and bend it at the elbow or knee;
or, targeted, fold an elbow (`fold_elbows`) with a small swing and nothing else.

Seven training takes hold few arm and leg poses: no training take folds an elbow below ~60 degrees,
while the held-out subject 131 holds its right hand up at the shoulder or head, the elbow folded to
~48 degrees, for most of a take, and the bundled weights find that wrist in 28 % of such samples
(README, SynthPose). Re-posing a
limb keeps every bone's length, so the figure, its 2D joints and its 3D label stay consistent, and
the rest of the body keeps the mocap's real pose. Angles stay within human ranges: the swing is a
rotation of at most `max_swing_deg` about a random axis, the new interior elbow/knee angle is drawn
from the joint's range, and a limb whose elbow or wrist would pass through the torso is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from wildpose.training import joints
from wildpose.training.synthpose import body

J = joints.INDEX
EXTRA = body.EXTRA


@dataclass(frozen=True)
class Limb:
    """One limb's joints (root, middle, end), the extra point its end carries (fingertip or toe), how
    far it may swing at the root and the range of its interior angle at the middle joint (degrees)."""

    root: str
    middle: str
    end: str
    extra: str
    max_swing_deg: float
    interior_deg: tuple[float, float]
    arm: bool


# Elbows flex to ~35 degrees interior angle, knees to ~45 (both straighten to 180); arms swing freely
# at the shoulder, legs less at the hip, so a re-posed leg still reads as standing, walking or kicking.
LIMBS: Final[tuple[Limb, ...]] = (
    Limb("r_shoulder", "r_elbow", "r_wrist", "r_hand", 75.0, (35.0, 180.0), True),
    Limb("l_shoulder", "l_elbow", "l_wrist", "l_hand", 75.0, (35.0, 180.0), True),
    Limb("r_hip", "r_knee", "r_ankle", "r_toe", 35.0, (60.0, 180.0), False),
    Limb("l_hip", "l_knee", "l_ankle", "l_toe", 35.0, (60.0, 180.0), False),
)
# `fold_elbows`: the held-out subject's raised hand (interior angle ~48 degrees) without re-posing the
# rest of the figure; the shoulder swings less than `repose_limbs`' arms so the upper arm stays near
# the mocap's.
FOLDED_ARMS: Final[tuple[Limb, ...]] = tuple(
    Limb(limb.root, limb.middle, limb.end, limb.extra, 45.0, (35.0, 70.0), True) for limb in LIMBS if limb.arm)
TORSO_CLEARANCE_MM: Final[float] = 110.0  # an elbow or wrist this close to the spine is inside the torso
_TRIES: Final[int] = 4


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.sqrt(v @ v)), 1e-9)


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues: the matrix rotating by `angle` radians about the unit `axis`."""
    x, y, z = axis
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * (k @ k)


def _random_axis(rng: np.random.Generator) -> np.ndarray:
    return _unit(rng.standard_normal(3))


def _spine_distance(point: np.ndarray, pelvis: np.ndarray, neck: np.ndarray) -> float:
    """Distance from `point` to the pelvis -> upper neck segment."""
    along = neck - pelvis
    t = float(np.clip((point - pelvis) @ along / max(float(along @ along), 1e-9), 0.0, 1.0))
    return float(np.linalg.norm(point - (pelvis + t * along)))


def _repose_limb(pose: np.ndarray, extras: np.ndarray, limb: Limb, rng: np.random.Generator) -> bool:
    """Swing and bend `limb` in place; False (nothing changed) when every try hits the torso."""
    root, middle, end = pose[J[limb.root]], pose[J[limb.middle]], pose[J[limb.end]]
    tip = extras[EXTRA[limb.extra]]
    facing = body.facing(pose)
    for _ in range(_TRIES):
        swing = _rotation(_random_axis(rng), np.radians(rng.uniform(0.0, limb.max_swing_deg)))
        new_middle = root + swing @ (middle - root)
        new_end = root + swing @ (end - root)
        new_tip = root + swing @ (tip - root)
        upper, lower = _unit(new_middle - root), _unit(new_end - new_middle)
        flexion = float(np.degrees(np.arccos(np.clip(upper @ lower, -1.0, 1.0))))  # 0 = straight
        hinge = np.cross(upper, lower)
        if np.linalg.norm(hinge) < 0.17:  # within ~10 degrees of straight: the plane is unknown
            # Elbows bend the hand forward, knees the foot backward.
            hinge = np.cross(upper, facing if limb.arm else -facing)
        hinge = _unit(hinge)
        target = 180.0 - rng.uniform(*limb.interior_deg)
        bend = _rotation(hinge, np.radians(target - flexion))
        new_end_bent = new_middle + bend @ (new_end - new_middle)
        new_tip_bent = new_middle + bend @ (new_tip - new_middle)
        if limb.arm and min(_spine_distance(p, pose[J["pelvis"]], pose[J["upper_neck"]])
                            for p in (new_middle, new_end_bent)) < TORSO_CLEARANCE_MM:
            continue
        pose[J[limb.middle]], pose[J[limb.end]], extras[EXTRA[limb.extra]] = new_middle, new_end_bent, new_tip_bent
        return True
    return False


def repose_limbs(pose: np.ndarray, extras: np.ndarray, probability: float, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Copies of `(16, 3)` joints and `(4, 3)` extras (mm, y-up world) with each limb re-posed with
    `probability`. Bone lengths are kept; the lowest foot point keeps its height, so a figure that
    stood on the floor still does."""
    pose, extras = pose.copy(), extras.copy()
    feet = [J["r_ankle"], J["l_ankle"]], [EXTRA["r_toe"], EXTRA["l_toe"]]
    lowest = min(pose[feet[0], 1].min(), extras[feet[1], 1].min())
    for limb in LIMBS:
        if rng.random() < probability:
            _repose_limb(pose, extras, limb, rng)
    shift = lowest - min(pose[feet[0], 1].min(), extras[feet[1], 1].min())
    pose[:, 1] += shift
    extras[:, 1] += shift
    return pose, extras


def fold_elbows(pose: np.ndarray, extras: np.ndarray, probability: float, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray]:
    """Copies of `(16, 3)` joints and `(4, 3)` extras with each elbow folded to an interior angle of
    35-70 degrees with `probability` (the shoulder swung up to 45 degrees); legs and feet untouched."""
    pose, extras = pose.copy(), extras.copy()
    for limb in FOLDED_ARMS:
        if rng.random() < probability:
            _repose_limb(pose, extras, limb, rng)
    return pose, extras
