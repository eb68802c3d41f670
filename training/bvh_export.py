"""Our 16-joint 3D poses as a BVH skeleton that animation tools (Blender's importer) open.

A BVH needs fixed bone lengths and joint rotations, while poses give joint positions whose bone
lengths wobble from frame to frame. So each bone's length is the median over the take, and each
joint's rotation is the one that turns its rest-pose bone onto the posed bone:

- a joint with one child bone (knees, elbows, thorax, hips, shoulders, and hip bones and clavicles
  added at the pelvis and neck to carry the hips and shoulders) gets the smallest rotation that
  turns the rest direction onto the posed direction (no twist about the bone: positions do not
  define it);
- the pelvis and the upper neck, which have several children, get the rotation between two frames
  built from their bones (pelvis: up the spine and across the hips; neck: up to the head and across
  the shoulders): the spine and the head land exactly, the hips and shoulders by their own bones.

Convention: Y up, the rest pose faces +Z (towards the viewer) in a T-pose, the person's right on -X;
centimetres; every joint rotates in Z, X, Y channel order (R = Rz @ Rx @ Ry, as BVH readers apply it);
the root also carries its position. Leaf joints (ankles, wrists, head top) end in a short End Site.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from wildpose.errors import ConfigError
from wildpose.training import joints

J = joints.INDEX
# (joint, parent): every one of our 16 joints, parents first; upper_neck hangs off the thorax
TREE: tuple[tuple[str, str | None], ...] = (
    ("pelvis", None), ("r_hipbone", "pelvis"), ("r_hip", "r_hipbone"), ("r_knee", "r_hip"), ("r_ankle", "r_knee"),
    ("l_hipbone", "pelvis"), ("l_hip", "l_hipbone"), ("l_knee", "l_hip"), ("l_ankle", "l_knee"),
    ("thorax", "pelvis"), ("upper_neck", "thorax"), ("head_top", "upper_neck"),
    ("r_clavicle", "upper_neck"), ("r_shoulder", "r_clavicle"), ("r_elbow", "r_shoulder"), ("r_wrist", "r_elbow"),
    ("l_clavicle", "upper_neck"), ("l_shoulder", "l_clavicle"), ("l_elbow", "l_shoulder"), ("l_wrist", "l_elbow"),
)
# hip bones and clavicles are not among our joints: they sit at the pelvis and the upper neck (zero
# offset) and carry each hip and shoulder on its own bone, so these land where the pose put them
VIRTUAL = {"r_hipbone": "pelvis", "l_hipbone": "pelvis", "r_clavicle": "upper_neck", "l_clavicle": "upper_neck"}
# the direction of each bone (joint -> its child) in the rest pose
_REST_DIRECTION = {
    "r_hipbone": (-1, 0, 0), "l_hipbone": (1, 0, 0), "r_hip": (-1, 0, 0), "l_hip": (1, 0, 0),
    "r_knee": (0, -1, 0), "l_knee": (0, -1, 0),
    "r_ankle": (0, -1, 0), "l_ankle": (0, -1, 0), "thorax": (0, 1, 0), "upper_neck": (0, 1, 0),
    "head_top": (0, 1, 0), "r_clavicle": (-1, 0, 0), "l_clavicle": (1, 0, 0), "r_shoulder": (-1, 0, 0),
    "l_shoulder": (1, 0, 0), "r_elbow": (-1, 0, 0),
    "l_elbow": (1, 0, 0), "r_wrist": (-1, 0, 0), "l_wrist": (1, 0, 0),
}
_END_SITE_MM = 50.0
_CHILDREN = {name: [c for c, p in TREE if p == name] for name, _ in TREE}
# joints with several children: (primary child, the pair whose difference gives the second axis)
_FRAMES = {"pelvis": ("thorax", ("r_hip", "l_hip")), "upper_neck": ("head_top", ("r_shoulder", "l_shoulder"))}
CAMERA_TO_Y_UP = np.diag([1.0, -1.0, -1.0])  # camera axes (x right, y down, z forward) -> Y up, facing +Z


def _position(poses: np.ndarray, name: str) -> np.ndarray:
    return poses[:, J[VIRTUAL.get(name, name)]]


def bone_lengths(poses: np.ndarray) -> dict[str, float]:
    """Median length (mm) over the take of every bone, keyed by the bone's child joint."""
    return {name: float(np.median(np.linalg.norm(_position(poses, name) - _position(poses, parent), axis=-1)))
            for name, parent in TREE[1:]}


def _unit(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(norm > 1e-9, norm, 1.0)


def _frame(primary: np.ndarray, across: np.ndarray) -> np.ndarray:
    """`(..., 3, 3)` orthonormal frame (columns) from a primary axis and a vector across it."""
    y = _unit(primary)
    z = _unit(np.cross(across, y))
    x = np.cross(y, z)
    return np.stack([x, y, z], axis=-1)


def _swing(rest: np.ndarray, posed: np.ndarray) -> np.ndarray:
    """`(F, 3, 3)`: the smallest rotations turning the unit `rest` direction onto each `posed` one."""
    posed = _unit(posed)
    axis = np.cross(rest, posed)
    sin = np.linalg.norm(axis, axis=-1)
    cos = np.clip(posed @ rest, -1.0, 1.0)
    angle = np.arctan2(sin, cos)
    fallback = np.cross(rest, [0.0, 0.0, 1.0]) if abs(rest[2]) < 0.9 else np.cross(rest, [1.0, 0.0, 0.0])
    axis = np.where(sin[:, None] > 1e-9, axis / np.where(sin[:, None] > 1e-9, sin[:, None], 1.0), _unit(fallback))
    return Rotation.from_rotvec(axis * angle[:, None]).as_matrix()


def _rest_positions(lengths: dict[str, float]) -> dict[str, np.ndarray]:
    rest = {"pelvis": np.zeros(3)}
    for name, parent in TREE[1:]:
        rest[name] = rest[parent] + np.asarray(_REST_DIRECTION[name], float) * lengths[name]
    return rest


def global_rotations(poses: np.ndarray, lengths: dict[str, float]) -> dict[str, np.ndarray]:
    """`(F, 3, 3)` world rotation of every joint that has children (leaves keep their parent's)."""
    rest = _rest_positions(lengths)
    rotations = {}
    for name, _ in TREE:
        children = _CHILDREN[name]
        if not children:
            continue
        if name in _FRAMES:
            primary, (a, b) = _FRAMES[name]
            posed = _frame(_position(poses, primary) - _position(poses, name),
                           _position(poses, b) - _position(poses, a))
            rest_frame = _frame(rest[primary] - rest[name], rest[b] - rest[a])
            rotations[name] = posed @ rest_frame.T
        else:
            (child,) = children
            rotations[name] = _swing(np.asarray(_REST_DIRECTION[child], float),
                                     _position(poses, child) - _position(poses, name))
    return rotations


def to_bvh(poses: np.ndarray, fps: float, roots: np.ndarray | None = None) -> str:
    """BVH text of `(F, 16, 3)` poses in millimetres, Y up (see the module's convention); `roots`
    `(F, 3)` mm places the pelvis (default: the poses' own pelvis positions)."""
    poses = np.asarray(poses, np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (joints.NUM_JOINTS, 3) or len(poses) == 0:
        raise ConfigError(f"BVH export needs (frames, 16, 3) poses, got {poses.shape}")
    if not np.all(np.isfinite(poses)) or not fps > 0:
        raise ConfigError("BVH export needs finite poses and a positive frame rate")
    lengths = bone_lengths(poses)
    rotations = global_rotations(poses, lengths)
    roots = poses[:, J["pelvis"]] if roots is None else np.asarray(roots, np.float64)
    lines = ["HIERARCHY"]
    for name, parent in TREE:
        depth = _depth(name)
        pad = "  " * depth
        offset = np.zeros(3) if parent is None else np.asarray(_REST_DIRECTION[name], float) * lengths[name]
        if parent is None:
            lines += [f"ROOT {name}", "{", f"  OFFSET {_fmt(offset / 10)}",
                      "  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation"]
        else:
            lines += [f"{pad}JOINT {name}", f"{pad}{{", f"{pad}  OFFSET {_fmt(offset / 10)}",
                      f"{pad}  CHANNELS 3 Zrotation Xrotation Yrotation"]
        if not _CHILDREN[name]:
            tip = np.asarray(_REST_DIRECTION[name], float) * _END_SITE_MM
            lines += [f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET {_fmt(tip / 10)}", f"{pad}  }}"]
        for closing in _closings(name):
            lines.append("  " * closing + "}")
    frames = len(poses)
    identity = np.broadcast_to(np.eye(3), (frames, 3, 3))
    columns = [roots / 10.0]
    for name, parent in TREE:
        world = rotations.get(name, rotations.get(parent) if parent else identity)
        parent_world = identity if parent is None else rotations[parent]
        local = np.einsum("fji,fjk->fik", parent_world, world)
        columns.append(Rotation.from_matrix(local).as_euler("ZXY", degrees=True))
    motion = np.concatenate(columns, axis=1)
    lines += ["MOTION", f"Frames: {frames}", f"Frame Time: {1.0 / fps:.8f}"]
    lines += [" ".join(f"{v:.4f}" for v in row) for row in motion]
    return "\n".join(lines) + "\n"


def write_bvh(path: str | Path, poses: np.ndarray, fps: float, roots: np.ndarray | None = None) -> Path:
    path = Path(path)
    if not path.parent.is_dir():
        raise ConfigError(f"BVH output folder {path.parent} does not exist")
    partial = path.with_name(path.name + ".partial")
    partial.write_text(to_bvh(poses, fps, roots))
    partial.replace(path)
    return path


def _depth(name: str) -> int:
    depth = 0
    parent = dict(TREE)[name]
    while parent is not None:
        depth += 1
        parent = dict(TREE)[parent]
    return depth


def _closings(name: str) -> list[int]:
    """Depths of the blocks that close after `name`'s block in the file's nesting (parents first)."""
    order = [n for n, _ in TREE]
    index = order.index(name)
    next_depth = _depth(order[index + 1]) if index + 1 < len(order) else 0
    return list(range(_depth(name), next_depth - 1, -1))


def _fmt(values: np.ndarray) -> str:
    return " ".join(f"{v:.4f}" for v in values)
