"""The synthetic person's body: human bone lengths, retargeting mocap onto them, and its 3D shape.

Mocap skeletons are few (6 subjects here) and the CMU BVH release shortened torsos and forearms
(cmu.py), so every figure gets its own bone lengths drawn around Human3.6M's, keeping the mocap's
bone directions. The shape is a set of capsules and ellipsoids (raster.py) grown around the joints,
so each joint label lies inside the rendered body.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from wildpose.errors import ConfigError
from wildpose.training import joints
from wildpose.training.synthpose import cmu
from wildpose.training.synthpose.raster import Capsule, Ellipsoid, Primitive

J = joints.INDEX
EXTRA = {name: i for i, name in enumerate(cmu.EXTRA_NAMES)}

# The kinematic tree over our joints (EDGES has no thorax; this tree does): child -> (parent, segment).
TREE: Final[tuple[tuple[str, str, str], ...]] = (
    ("r_hip", "pelvis", "hip"), ("r_knee", "r_hip", "thigh"), ("r_ankle", "r_knee", "shin"),
    ("l_hip", "pelvis", "hip"), ("l_knee", "l_hip", "thigh"), ("l_ankle", "l_knee", "shin"),
    ("thorax", "pelvis", "spine"), ("upper_neck", "thorax", "chest"), ("head_top", "upper_neck", "head"),
    ("r_shoulder", "upper_neck", "shoulder"), ("r_elbow", "r_shoulder", "upper_arm"),
    ("r_wrist", "r_elbow", "forearm"),
    ("l_shoulder", "upper_neck", "shoulder"), ("l_elbow", "l_shoulder", "upper_arm"),
    ("l_wrist", "l_elbow", "forearm"),
)
EXTRA_TREE: Final[tuple[tuple[str, str, str], ...]] = (
    ("r_toe", "r_ankle", "foot"), ("l_toe", "l_ankle", "foot"),
    ("r_hand", "r_wrist", "hand"), ("l_hand", "l_wrist", "hand"),
)

# Mean adult segment lengths, mm. hip, thigh, shin, spine, chest, shoulder, upper_arm and forearm are
# Human3.6M's, measured on the 4 frames of ../shared/data/pose3d/h36m (hip 119-147, thigh 428-452,
# shin 438-454, pelvis->spine 224-261, spine->thorax 251-257, thorax->shoulder 140-169, upper arm
# 265-290, forearm 244-252) and the reference's 456/452 and 284/250 (paper-facts.md); head (neck ->
# head top) is within Human3.6M's 136-215; foot (ankle -> toe tip) and hand (wrist -> fingertip) are
# anthropometric averages.
MEAN_SEGMENT_MM: Final[dict[str, float]] = {
    "hip": 135.0, "thigh": 445.0, "shin": 445.0, "spine": 235.0, "chest": 255.0, "head": 190.0,
    "shoulder": 150.0, "upper_arm": 280.0, "forearm": 250.0, "foot": 190.0, "hand": 180.0,
}
# Mean radii (mm) of the body's parts at build 1.0.
MEAN_RADIUS_MM: Final[dict[str, float]] = {
    "thigh": 72.0, "shin": 50.0, "upper_arm": 44.0, "forearm": 36.0, "neck": 50.0,
}

STATURE_SD = 0.055  # overall scale: 1 sd ~ 10 cm of stature
STATURE_RANGE = (0.85, 1.15)  # ~1.5 m to ~2.0 m
SEGMENT_SD = 0.04  # per-segment proportion, same on both sides (the geometric loss assumes symmetry)
SEGMENT_RANGE = (0.9, 1.1)
BUILD_RANGE = (0.8, 1.3)  # slim to heavy: scales the radii and the torso's width and depth

# Materials: indices into the albedo table the renderer draws per figure. FEATURES (eyes, brows) is a
# fixed dark brown, never drawn at random, so figures without a face render exactly as before.
SKIN, SHIRT, TROUSERS, SHOES, HAIR, FEATURES = range(6)
NUM_MATERIALS: Final[int] = 6


@dataclass(frozen=True)
class BodyShape:
    """One figure's proportions: `segments` mm per TREE/EXTRA_TREE segment name, `radii` mm per part,
    `build` (torso width/depth factor), and clothing cut (`long_sleeves`, `long_trousers`)."""

    segments: dict
    radii: dict
    build: float
    long_sleeves: bool
    long_trousers: bool
    hair: float  # hair volume: 0 (bald) .. 1
    face: bool = False  # eyes, brows, nose and a neckline on the front: which way the figure faces

    def __post_init__(self) -> None:
        needed = set(MEAN_SEGMENT_MM)
        if set(self.segments) != needed or set(self.radii) != set(MEAN_RADIUS_MM):
            raise ConfigError(f"a body shape needs segments {sorted(needed)} and radii {sorted(MEAN_RADIUS_MM)}, got "
                              f"{sorted(self.segments)} and {sorted(self.radii)}; fix: start from body.mean_shape()")
        if min(self.segments.values()) <= 0 or min(self.radii.values()) <= 0 or self.build <= 0:
            raise ConfigError("body segment lengths, radii and build must be positive")


def mean_shape() -> BodyShape:
    """The average figure (for tests and previews)."""
    return BodyShape(dict(MEAN_SEGMENT_MM), dict(MEAN_RADIUS_MM), 1.0, True, True, 0.5)


def sample_shape(rng: np.random.Generator) -> BodyShape:
    """A random adult: stature, proportions and build within human ranges, and a clothing cut."""
    stature = float(np.clip(1.0 + STATURE_SD * rng.standard_normal(), *STATURE_RANGE))
    segments = {name: length * stature * float(np.clip(1.0 + SEGMENT_SD * rng.standard_normal(), *SEGMENT_RANGE))
                for name, length in MEAN_SEGMENT_MM.items()}
    build = float(rng.uniform(*BUILD_RANGE))
    radii = {name: r * stature * build * float(rng.uniform(0.92, 1.08)) for name, r in MEAN_RADIUS_MM.items()}
    return BodyShape(segments=segments, radii=radii, build=build, long_sleeves=bool(rng.random() < 0.6),
                     long_trousers=bool(rng.random() < 0.75), hair=float(rng.uniform(0.0, 1.0)))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.sqrt((v * v).sum(axis=-1, keepdims=True)), 1e-9)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product of two 3-vectors; np.cross costs ~20 us a call, too much per body part."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def _length(v: np.ndarray) -> float:
    return float(np.sqrt(v @ v))


def retarget(pose: np.ndarray, extras: np.ndarray, shape: BodyShape, floor_y: float | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """Give `(..., 16, 3)` joints and `(..., 4, 3)` extras (mm, y-up world) `shape`'s segment lengths,
    keeping every bone's direction. The pelvis keeps its place, or, with `floor_y`, its height above
    the floor scales with the legs so feet that touched the floor still do."""
    out = np.empty_like(pose)
    out_extras = np.empty_like(extras)
    out[..., J["pelvis"], :] = pose[..., J["pelvis"], :]
    if floor_y is not None:
        old_leg = np.linalg.norm(pose[..., J["r_knee"], :] - pose[..., J["r_hip"], :], axis=-1) + \
            np.linalg.norm(pose[..., J["r_ankle"], :] - pose[..., J["r_knee"], :], axis=-1)
        ratio = (shape.segments["thigh"] + shape.segments["shin"]) / np.maximum(old_leg, 1e-6)
        out[..., J["pelvis"], 1] = floor_y + (pose[..., J["pelvis"], 1] - floor_y) * ratio
    for child, parent, segment in TREE:
        direction = _unit(pose[..., J[child], :] - pose[..., J[parent], :])
        out[..., J[child], :] = out[..., J[parent], :] + shape.segments[segment] * direction
    for child, parent, segment in EXTRA_TREE:
        direction = _unit(extras[..., EXTRA[child], :] - pose[..., J[parent], :])
        out_extras[..., EXTRA[child], :] = out[..., J[parent], :] + shape.segments[segment] * direction
    return out, out_extras


def facing(pose: np.ndarray) -> np.ndarray:
    """`(..., 3)` horizontal unit direction the body faces, from the hips (y-up, right-handed world:
    forward = left x up)."""
    left = pose[..., J["l_hip"], :] - pose[..., J["r_hip"], :]
    forward = np.cross(left, np.array([0.0, 1.0, 0.0]))
    forward[..., 1] = 0.0
    return _unit(forward)


def _frame(up: np.ndarray, left: np.ndarray) -> np.ndarray:
    """Rows (left, up, forward) of an orthonormal frame from an up vector and a left-ward vector;
    forward = left x up in any right-handed frame (world y-up or camera y-down alike)."""
    up = _unit(up)
    lateral = _unit(left - (left @ up) * up)
    forward = _cross(lateral, up)
    return np.stack([lateral, up, forward])


# The parts each joint lies inside: a joint whose pixel shows any other part is self-occluded.
JOINT_PARTS: Final[dict[str, tuple[str, ...]]] = {
    **{f"{s}_ankle": (f"{s}_shin", f"{s}_foot") for s in "rl"},
    **{f"{s}_knee": (f"{s}_thigh", f"{s}_shin") for s in "rl"},
    **{f"{s}_hip": (f"{s}_thigh", "hips") for s in "rl"},
    "pelvis": ("hips", "waist", "r_thigh", "l_thigh"),
    "thorax": ("waist", "chest", "hips"),
    "upper_neck": ("chest", "neck", "head", "hair", "nose", "r_eye", "l_eye", "r_brow", "l_brow", "neckline"),
    "head_top": ("head", "hair", "r_brow", "l_brow"),
    **{f"{s}_shoulder": (f"{s}_upper_arm", "chest") for s in "rl"},
    **{f"{s}_elbow": (f"{s}_upper_arm", f"{s}_forearm") for s in "rl"},
    **{f"{s}_wrist": (f"{s}_forearm", f"{s}_hand") for s in "rl"},
}


def primitives(pose_cam: np.ndarray, extras_cam: np.ndarray, shape: BodyShape) -> list[tuple[str, Primitive]]:
    """The figure's named parts (capsules and ellipsoids, camera frame) for `(16, 3)` joints and
    `(4, 3)` extras already retargeted to `shape` and moved into the camera frame (mm)."""
    p = {name: pose_cam[i] for name, i in J.items()}
    e = {name: extras_cam[i] for name, i in EXTRA.items()}
    r = shape.radii
    build = shape.build
    parts: list[tuple[str, Primitive]] = []
    arm = SHIRT if shape.long_sleeves else SKIN
    leg = TROUSERS if shape.long_trousers else SKIN
    for side in ("r", "l"):
        parts.append((f"{side}_thigh", Capsule(p[f"{side}_hip"], p[f"{side}_knee"], r["thigh"], TROUSERS)))
        parts.append((f"{side}_shin", Capsule(p[f"{side}_knee"], p[f"{side}_ankle"], r["shin"], leg)))
        parts.append((f"{side}_upper_arm", Capsule(p[f"{side}_shoulder"], p[f"{side}_elbow"], r["upper_arm"], SHIRT)))
        parts.append((f"{side}_forearm", Capsule(p[f"{side}_elbow"], p[f"{side}_wrist"], r["forearm"], arm)))
        # Hand: a flattened ellipsoid from the wrist towards the fingertips.
        wrist, tip = p[f"{side}_wrist"], e[f"{side}_hand"]
        along = _unit(tip - wrist)
        hand_len = _length(tip - wrist)
        side_axis = _unit(_cross(along, p[f"{side}_elbow"] - wrist + np.array([1e-3, 0.0, 0.0])))
        hand_axes = np.stack([along, side_axis, _cross(along, side_axis)])
        parts.append((f"{side}_hand", Ellipsoid(wrist + 0.45 * hand_len * along, hand_axes,
                                                np.array([0.5 * hand_len, 0.9 * r["forearm"], 0.6 * r["forearm"]]),
                                                SKIN)))
        # Foot: an ellipsoid from behind the ankle to the toe tip, its sole near the floor.
        ankle, toe = p[f"{side}_ankle"], e[f"{side}_toe"]
        foot = toe - ankle
        foot_len = _length(foot)
        along = _unit(foot)
        shin_dir = _unit(p[f"{side}_knee"] - ankle)
        across = _unit(_cross(shin_dir, along))
        foot_axes = np.stack([along, across, _unit(_cross(along, across))])
        parts.append((f"{side}_foot", Ellipsoid(ankle + 0.42 * foot - 0.25 * r["shin"] * shin_dir, foot_axes,
                                                np.array([0.62 * foot_len, 0.95 * r["shin"], 0.85 * r["shin"]]),
                                                SHOES)))
    # Torso: an elliptic capsule for the chest (round shoulders), a narrower one for the belly and an
    # ellipsoid for the hips, each in a frame from the spine and the shoulder or hip line.
    chest_frame = _frame(p["upper_neck"] - p["thorax"], p["l_shoulder"] - p["r_shoulder"])
    hip_frame = _frame(p["thorax"] - p["pelvis"], p["l_hip"] - p["r_hip"])
    belly_frame = _frame(chest_frame[1] + hip_frame[1], chest_frame[0] + hip_frame[0])
    shoulder_half = 0.5 * _length(p["l_shoulder"] - p["r_shoulder"])
    hip_half = 0.5 * _length(p["l_hip"] - p["r_hip"])
    chest_len = _length(p["upper_neck"] - p["thorax"])
    spine_len = _length(p["thorax"] - p["pelvis"])
    width = np.sqrt(build)
    depth = 95.0 * build
    cap = 0.42 * chest_len  # vertical radius of the chest's round top and bottom
    chest_top = p["upper_neck"] + 0.06 * chest_len * chest_frame[1]
    chest_bottom = p["thorax"] - 0.1 * spine_len * chest_frame[1]
    parts.append(("chest", Ellipsoid((chest_top + chest_bottom) / 2.0, chest_frame,
                                     np.array([(shoulder_half + 0.35 * r["upper_arm"]) * width, cap, depth]), SHIRT,
                                     stretch=max(0.5 * _length(chest_top - chest_bottom) - cap, 0.0))))
    belly_cap = 0.35 * spine_len
    parts.append(("waist", Ellipsoid(p["pelvis"] + 0.55 * (p["thorax"] - p["pelvis"]), belly_frame,
                                     np.array([(0.45 * shoulder_half + 0.45 * hip_half + 12.0) * width, belly_cap,
                                               0.92 * depth]), SHIRT, stretch=0.25 * spine_len)))
    parts.append(("hips", Ellipsoid(p["pelvis"] + 0.12 * spine_len * hip_frame[1], hip_frame,
                                    np.array([(hip_half + 0.7 * r["thigh"]) * width, 0.45 * spine_len, 0.95 * depth]),
                                    TROUSERS)))
    # Neck and head. The head hangs below head_top along the neck->head_top line, face forward.
    head_up = _unit(p["head_top"] - p["upper_neck"])
    head_frame = _frame(head_up, chest_frame[0])
    head_size = shape.segments["head"] / MEAN_SEGMENT_MM["head"]
    semi = np.array([76.0, 105.0, 95.0]) * head_size
    head_centre = p["head_top"] - 0.8 * semi[1] * head_up + 0.15 * semi[2] * head_frame[2]
    parts.append(("neck", Capsule(p["upper_neck"] - 0.3 * chest_len * chest_frame[1],
                                  head_centre - 0.3 * semi[1] * head_up, r["neck"], SKIN)))
    parts.append(("head", Ellipsoid(head_centre, head_frame, semi, SKIN)))
    if shape.face:
        parts += _face(head_centre, head_frame, semi, chest_top, chest_frame, depth, cap, shoulder_half * width)
    if shape.hair > 0.15:
        grow = 1.0 + 0.08 * shape.hair
        parts.append(("hair", Ellipsoid(head_centre + 0.3 * semi[1] * head_up - 0.18 * semi[2] * head_frame[2],
                                        head_frame, semi * np.array([1.05 * grow, 0.86 * grow, 1.03 * grow]), HAIR)))
    return parts


def _face(head_centre: np.ndarray, head_frame: np.ndarray, semi: np.ndarray, chest_top: np.ndarray,
          chest_frame: np.ndarray, chest_depth: float, chest_cap: float, shoulder_half: float
          ) -> list[tuple[str, Primitive]]:
    """Eyes, brows and nose on the head's front and a neckline on the shirt's: without them the figure
    seen from behind is nearly the mirror image of the figure seen from the front, and only the bend
    of knees and elbows and the feet tell a network its left limbs from its right ones.

    Each feature is centred just under the surface it sits on, so only its front part shows."""
    left, up, forward = head_frame

    def on_head(x: float, y: float, sink: float) -> np.ndarray:
        """The point `sink` mm under the head's surface at (x, y) of its half-width and half-height."""
        z = semi[2] * np.sqrt(max(1.0 - x * x - y * y, 0.0))
        return head_centre + x * semi[0] * left + y * semi[1] * up + (z - sink) * forward

    scale = semi[0] / 76.0
    parts: list[tuple[str, Primitive]] = []
    for side, sign in (("r", -1.0), ("l", 1.0)):
        parts.append((f"{side}_eye", Ellipsoid(on_head(0.36 * sign, 0.12, 3.0 * scale), head_frame,
                                               np.array([12.0, 6.5, 6.0]) * scale, FEATURES)))
        parts.append((f"{side}_brow", Ellipsoid(on_head(0.38 * sign, 0.3, 3.0 * scale), head_frame,
                                                np.array([15.0, 3.5, 5.0]) * scale, FEATURES)))
    parts.append(("nose", Ellipsoid(on_head(0.0, -0.08, 4.0 * scale), head_frame,
                                    np.array([9.0, 20.0, 16.0]) * scale, SKIN)))
    _, c_up, c_forward = chest_frame
    # A round neckline: skin where the shirt's front meets the neck, its top just under the shoulders'
    # line so that it does not show from behind.
    neckline = chest_top - 0.4 * chest_cap * c_up + 0.55 * chest_depth * c_forward
    parts.append(("neckline", Ellipsoid(neckline, chest_frame,
                                        np.array([0.42 * shoulder_half, 0.38 * chest_cap, 0.38 * chest_depth]), SKIN)))
    return parts
