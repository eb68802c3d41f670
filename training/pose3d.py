"""From the network's outputs to a root-relative 3D pose in millimetres.

The network predicts x, y as 2D joints and z as a depth in the same weak-perspective scale (z over
half the crop side), so its 3D pose has no absolute size. A metric pose needs a prior: like the
reference's evaluation we scale the skeleton so its 14 bone lengths sum to a known length
(4296.99 mm, the mean Human3.6M skeleton). Every consumer is told which scale was used.
"""

from __future__ import annotations

import numpy as np

from wildpose.training import joints

_DEGENERATE_SKELETON = 1e-6  # a bone-length sum below this (in crop pixels) has no usable scale


def describe_scale(skeleton_sum_mm: float = joints.SKELETON_SUM_MM) -> str:
    """The one-line statement of the metric scale that outputs carry."""
    return f"skeleton-sum prior: 14 bones sum to {skeleton_sum_mm:g} mm"


def weak_perspective(joints2d_crop: np.ndarray, depth: np.ndarray, input_size: int) -> np.ndarray:
    """`(N, J, 2)` crop pixels + `(N, J)` normalised depth -> `(N, J, 3)` crop pixels, root-relative.

    Axes are the camera's: x right, y down, z forward (away from the camera).
    """
    pose = np.concatenate([joints2d_crop, depth[..., None] * (input_size / 2.0)], axis=-1)
    return pose - pose[:, joints.ROOT : joints.ROOT + 1, :]


def metric_scale(pose: np.ndarray, skeleton_sum_mm: float = joints.SKELETON_SUM_MM) -> np.ndarray:
    """Scale `(N, J, 3)` poses so each skeleton's 14 bone lengths sum to `skeleton_sum_mm`.

    A collapsed pose (all joints on one point) has no scale and comes back as zeros, never NaN.
    """
    if skeleton_sum_mm <= 0:
        raise ValueError(f"skeleton_sum_mm must be positive, got {skeleton_sum_mm}")
    total = joints.bone_lengths(pose).sum(axis=-1)
    safe = np.where(total > _DEGENERATE_SKELETON, total, 1.0)
    scale = np.where(total > _DEGENERATE_SKELETON, skeleton_sum_mm / safe, 0.0)
    return pose * scale[:, None, None]


def assemble(joints2d_crop: np.ndarray, depth: np.ndarray, input_size: int,
             skeleton_sum_mm: float = joints.SKELETON_SUM_MM) -> np.ndarray:
    """`(N, J, 3)` float32, mm, camera axes, root-relative (pelvis = 0), metric by the skeleton prior."""
    pose = weak_perspective(joints2d_crop.astype(np.float64), depth.astype(np.float64), input_size)
    return metric_scale(pose, skeleton_sum_mm).astype(np.float32)
