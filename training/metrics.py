"""Evaluation metrics, each named after the protocol it implements and checking shapes first.

Human3.6M: the reference's protocol (`reference_mpjpe`: 16 joints, skeleton-sum scale, pelvis
aligned, no Procrustes), the standard Protocol 1 peers report (`protocol1_mpjpe`: 17 H36M joints,
root aligned) and PA-MPJPE (`pa_mpjpe`: Procrustes with scale). MPII: `pckh`. MPI-INF-3DHP: `pck3d` and
`auc3d`. SynthPose (no head sizes): `pck_bbox`, PCK@0.1 of the person's box. And
`bone_symmetry_error`, which the geometric loss is meant to lower. Poses are NumPy arrays
`(N, J, 3)` in mm unless said otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wildpose.errors import InputError
from wildpose.training import joints, pose3d

PCKH_THRESHOLD = 0.5  # fraction of the head size (MPII's PCKh@0.5)
# The MPII total leaves out the pelvis and thorax (the official evaluation and Newell's eval_PCKh).
PCKH_TOTAL_JOINTS = tuple(i for i in range(joints.NUM_JOINTS)
                          if joints.NAMES[i] not in ("pelvis", "thorax"))
# PCK of the bounding box (Yang & Ramanan, PAMI 2013): a joint is correct within alpha x max(box
# height, width). alpha = 0.1 is what issue #5 asks for on SynthPose, which has no head sizes.
PCK_BBOX_THRESHOLD = 0.1
PCK3D_THRESHOLD_MM = 150.0
AUC_THRESHOLDS_MM = np.linspace(0.0, 150.0, 31)  # 3DHP's evaluation: 0 to 150 mm in 5 mm steps
H36M_ROOT = joints.H36M_NAMES.index("pelvis")


def _check(name: str, array: np.ndarray, shape: tuple[int | None, ...]) -> np.ndarray:
    array = np.asarray(array, np.float64)
    if array.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, array.shape, strict=True)):
        expected = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise InputError(f"{name}: expected shape {expected}, got {array.shape}")
    return array


def _pair(predicted: np.ndarray, target: np.ndarray, dims: int = 3) -> tuple[np.ndarray, np.ndarray]:
    predicted = _check("predicted", predicted, (None, None, dims))
    target = _check("target", target, predicted.shape)
    if not len(predicted):
        raise InputError("predicted and target hold no poses; evaluate at least one sample")
    return predicted, target


def mpjpe(predicted: np.ndarray, target: np.ndarray) -> float:
    """Mean per-joint position error: the mean Euclidean distance, no alignment."""
    predicted, target = _pair(predicted, target)
    return float(np.linalg.norm(predicted - target, axis=-1).mean())


def _root_relative(pose: np.ndarray, root: int) -> np.ndarray:
    return pose - pose[:, root:root + 1]


def reference_mpjpe(predicted: np.ndarray, target: np.ndarray,
                    skeleton_sum_mm: float = joints.SKELETON_SUM_MM) -> float:
    """The reference's Human3.6M protocol over our 16 joints (pose-hg-3d eval).

    `predicted` `(N, 16, 3)` in any scale (e.g. `pose3d.weak_perspective`'s crop pixels) is scaled so
    its 14 bones sum to `skeleton_sum_mm`; both poses are aligned at the pelvis; no Procrustes.
    """
    predicted, target = _pair(predicted, target)
    _check("predicted", predicted, (None, joints.NUM_JOINTS, 3))
    scaled = pose3d.metric_scale(_root_relative(predicted, joints.ROOT), skeleton_sum_mm)
    return mpjpe(scaled, _root_relative(target, joints.ROOT))


def to_h36m(pose: np.ndarray) -> np.ndarray:
    """`(N, 16, C)` in our order -> `(N, 17, C)` in Human3.6M's (neck and head both from head_top)."""
    pose = _check("pose", pose, (None, joints.NUM_JOINTS, None))
    return pose[:, list(joints.OURS_TO_H36M)]


def protocol1_mpjpe(predicted: np.ndarray, target: np.ndarray) -> float:
    """Protocol 1: MPJPE over the 17 Human3.6M joints after aligning the roots (pelvis).

    Both `(N, 16, 3)` mm in our order (`predicted` metric, e.g. from `pose3d.assemble`), mapped with
    `joints.OURS_TO_H36M`.
    """
    predicted, target = _pair(predicted, target)
    return mpjpe(_root_relative(to_h36m(predicted), H36M_ROOT), _root_relative(to_h36m(target), H36M_ROOT))


def procrustes_align(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    """`predicted` moved onto `target` by the best similarity (rotation, scale, translation) per pose."""
    predicted, target = _pair(predicted, target)
    mu_x, mu_y = target.mean(axis=1, keepdims=True), predicted.mean(axis=1, keepdims=True)
    x, y = target - mu_x, predicted - mu_y
    norm_x = np.sqrt((x**2).sum(axis=(1, 2), keepdims=True))
    norm_y = np.sqrt((y**2).sum(axis=(1, 2), keepdims=True))
    norm_x, norm_y = np.maximum(norm_x, 1e-12), np.maximum(norm_y, 1e-12)
    x, y = x / norm_x, y / norm_y
    u, s, vt = np.linalg.svd(np.matmul(x.transpose(0, 2, 1), y))
    v = vt.transpose(0, 2, 1)
    rotation = np.matmul(v, u.transpose(0, 2, 1))
    # No reflections: flip the last singular vector where det(R) < 0.
    sign = np.sign(np.linalg.det(rotation))[:, None]
    v[:, :, -1] *= sign
    s[:, -1] *= sign[:, 0]
    rotation = np.matmul(v, u.transpose(0, 2, 1))
    scale = (s.sum(axis=1, keepdims=True)[:, :, None]) * norm_x / norm_y
    return scale * np.matmul(predicted - mu_y, rotation) + mu_x


def pa_mpjpe(predicted: np.ndarray, target: np.ndarray) -> float:
    """PA-MPJPE (Protocol 2): MPJPE over the 17 Human3.6M joints after Procrustes alignment with scale.
    Both `(N, 16, 3)` in our order."""
    predicted, target = _pair(predicted, target)
    h36m_target = to_h36m(target)
    return mpjpe(procrustes_align(to_h36m(predicted), h36m_target), h36m_target)


@dataclass(frozen=True)
class PCKh:
    """PCKh in percent: per joint `(16,)` (NaN where never annotated) and the MPII total."""

    per_joint: np.ndarray
    total: float
    joints_scored: int


def pckh(predicted: np.ndarray, target: np.ndarray, visible: np.ndarray, head_size: np.ndarray,
         threshold: float = PCKH_THRESHOLD) -> PCKh:
    """MPII's PCKh: a joint is correct within `threshold` x the head size (Newell's `normalize`).

    `predicted`, `target` `(N, 16, 2)` image px; `visible` `(N, 16)` marks the annotated joints, the
    only ones scored; `head_size` `(N,)` px. The total leaves out pelvis and thorax, as MPII's does.
    """
    predicted, target = _pair(predicted, target, dims=2)
    _check("predicted", predicted, (None, joints.NUM_JOINTS, 2))
    scored = _check("visible", visible, predicted.shape[:2]) > 0
    head_size = _check("head_size", head_size, (len(predicted),))
    if not (head_size[scored.any(axis=1)] > 0).all():
        raise InputError("pckh: every scored sample needs a positive head size (MPII's `normalize` "
                         "field); this dataset has none, so PCKh is not defined for it")
    distance = np.linalg.norm(predicted - target, axis=-1) / np.where(head_size > 0, head_size, 1.0)[:, None]
    correct = (distance <= threshold) & scored
    counts = scored.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_joint = np.where(counts > 0, 100.0 * correct.sum(axis=0) / counts, np.nan)
    chosen = list(PCKH_TOTAL_JOINTS)
    total_count = int(counts[chosen].sum())
    total = 100.0 * correct[:, chosen].sum() / total_count if total_count else float("nan")
    return PCKh(per_joint=per_joint, total=float(total), joints_scored=total_count)


def pck_bbox(predicted: np.ndarray, target: np.ndarray, visible: np.ndarray, box_size: np.ndarray,
             threshold: float = PCK_BBOX_THRESHOLD) -> float:
    """PCK@`threshold` of the box, in percent: a joint is correct within `threshold` x the longer side
    of the person's tight ground-truth joint box.

    `predicted`, `target` `(N, 16, 2)` image px; `visible` `(N, 16)` marks the joints scored (all 16
    count, the pelvis and thorax too); `box_size` `(N,)` px, positive for every scored sample.
    """
    predicted, target, box_size, scored = _checked_boxes("pck_bbox", predicted, target, visible, box_size, threshold)
    distance = _box_distances_to(predicted, target, box_size)
    return float(100.0 * ((distance <= threshold) & scored).sum() / scored.sum())


def swaps_bbox(predicted: np.ndarray, target: np.ndarray, visible: np.ndarray, box_size: np.ndarray,
               threshold: float = PCK_BBOX_THRESHOLD) -> float:
    """Left/right swaps, in percent of the scored left and right joints: a joint that `pck_bbox` misses
    but that lies within the threshold of its mirror partner (a right wrist put on the left wrist).
    A figure read the wrong way round (its back taken for its front) swaps every limb at once.

    Arguments as `pck_bbox`; the unpaired joints (pelvis, thorax, neck, head) are not counted.
    """
    predicted, target, box_size, scored = _checked_boxes("swaps_bbox", predicted, target, visible, box_size, threshold)
    distance = _box_distances_to(predicted, target, box_size)
    mirror = joints.flip_permutation()
    sided = scored & (mirror != np.arange(joints.NUM_JOINTS))[None, :]
    if not sided.any():
        raise InputError("swaps_bbox: no left or right joint is marked visible, so there is nothing to score")
    to_partner = _box_distances_to(predicted, target[:, mirror], box_size)
    return float(100.0 * ((distance > threshold) & (to_partner <= threshold) & sided).sum() / sided.sum())


def _checked_boxes(caller: str, predicted: np.ndarray, target: np.ndarray, visible: np.ndarray,
                   box_size: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(predicted, target, box_size) as arrays after the checks, and the `(N, 16)` scored mask."""
    predicted, target = _pair(predicted, target, dims=2)
    _check("predicted", predicted, (None, joints.NUM_JOINTS, 2))
    scored = _check("visible", visible, predicted.shape[:2]) > 0
    box_size = _check("box_size", box_size, (len(predicted),))
    if not (box_size[scored.any(axis=1)] > 0).all():
        raise InputError(f"{caller}: every scored sample needs a positive box size (the longer side of its "
                         "joints' box, px); pass the ground truth's box sizes")
    if not 0 < threshold:
        raise InputError(f"{caller}: threshold must be > 0 (a fraction of the box), got {threshold}")
    if not scored.any():
        raise InputError(f"{caller}: no joint is marked visible, so there is nothing to score")
    return predicted, target, box_size, scored


def _box_distances_to(predicted: np.ndarray, target: np.ndarray, box_size: np.ndarray) -> np.ndarray:
    """`(N, 16)` distances as fractions of each box (unscored samples may have no box)."""
    return np.linalg.norm(predicted - target, axis=-1) / np.where(box_size > 0, box_size, 1.0)[:, None]


def _joint_errors_3dhp(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    predicted, target = _pair(predicted, target)
    _check("predicted", predicted, (None, joints.NUM_JOINTS, 3))
    error = np.linalg.norm(_root_relative(predicted, joints.ROOT) - _root_relative(target, joints.ROOT), axis=-1)
    return error[:, list(joints.MPI_INF_3DHP_EVAL_JOINTS)]


def pck3d(predicted: np.ndarray, target: np.ndarray, threshold_mm: float = PCK3D_THRESHOLD_MM) -> float:
    """MPI-INF-3DHP's 3DPCK in percent: root-aligned joints within `threshold_mm`, over its 14 scored
    joints (`joints.MPI_INF_3DHP_EVAL_JOINTS`). Both `(N, 16, 3)` mm."""
    return float(100.0 * (_joint_errors_3dhp(predicted, target) <= threshold_mm).mean())


def auc3d(predicted: np.ndarray, target: np.ndarray, thresholds_mm: np.ndarray = AUC_THRESHOLDS_MM) -> float:
    """Area under the 3DPCK curve over `thresholds_mm` (0-150 mm), in percent: the mean PCK."""
    errors = _joint_errors_3dhp(predicted, target)
    return float(np.mean([100.0 * (errors <= t).mean() for t in thresholds_mm]))


def bone_symmetry_error(pose: np.ndarray) -> float:
    """Mean |right bone - left bone| length over `joints.SYMMETRIC_BONES`, in the pose's units."""
    pose = _check("pose", pose, (None, joints.NUM_JOINTS, None))
    if not len(pose):
        raise InputError("bone_symmetry_error: no poses given")
    right = np.array([r for r, _ in joints.SYMMETRIC_BONES])
    left = np.array([bone for _, bone in joints.SYMMETRIC_BONES])
    right_length = np.linalg.norm(pose[:, right[:, 0]] - pose[:, right[:, 1]], axis=-1)
    left_length = np.linalg.norm(pose[:, left[:, 0]] - pose[:, left[:, 1]], axis=-1)
    return float(np.abs(right_length - left_length).mean())
