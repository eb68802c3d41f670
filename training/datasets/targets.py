"""Training targets: Gaussian heatmaps and the weak-perspective depth the network regresses.

Both are written against the conventions inference reads them back with: heatmaps use
`training.heatmaps.crop_to_heatmap` (pixel centres at integers) and depth is the exact inverse of
`training.pose3d.weak_perspective`, so a target fed to `pose3d.assemble` returns the ground truth up
to the skeleton-sum scale (tests/training/datasets/test_targets.py checks the round trip).
"""

from __future__ import annotations

import numpy as np
import torch

from wildpose.training import joints
from wildpose.training.heatmaps import crop_to_heatmap
from wildpose.training.models.config import REFERENCE_SIGMA

# paper-facts.md, "Losses": a 7x7 window (radius 3) with sigma ~1.75 px on a 64x64 heatmap. Smaller
# heatmaps (the realtime and tiny presets) scale both with the heatmap side.
REFERENCE_HEATMAP_SIZE = 64
REFERENCE_RADIUS = 3
_DEGENERATE_BONES = 1e-6  # summed x,y bone length (mm) below which a 3D pose has no usable scale


def gaussian_window(heatmap_size: int, sigma: float = REFERENCE_SIGMA) -> tuple[int, float]:
    """(radius in heatmap px, sigma in heatmap px) for a heatmap of side `heatmap_size`.

    `sigma` is given at the reference's 64x64 heatmap and scales with the side; the window keeps the
    reference's radius/sigma ratio and is never smaller than 3x3.
    """
    factor = heatmap_size / REFERENCE_HEATMAP_SIZE
    radius = max(1, int(round(REFERENCE_RADIUS * factor)))
    return radius, sigma * factor


def gaussian_heatmaps(joints2d_crop: np.ndarray, visible: np.ndarray, heatmap_size: int, stride: int,
                      sigma: float = REFERENCE_SIGMA) -> np.ndarray:
    """`(J, H, H)` float32 targets: peak 1 at each visible joint's nearest heatmap pixel.

    `joints2d_crop` `(J, 2)` crop pixels; `visible` `(J,)` (0 = not annotated: an all-zero map, and the
    loss gives it zero weight). Like the reference, the peak sits on the nearest heatmap pixel (so it
    is exactly 1) and the window is cut at the map's edges; a joint outside the crop gets an empty map.
    """
    radius, sigma_px = gaussian_window(heatmap_size, sigma)
    offsets = np.arange(-radius, radius + 1)
    window = np.exp(-(offsets[None, :] ** 2 + offsets[:, None] ** 2) / (2.0 * sigma_px**2))
    targets = np.zeros((len(joints2d_crop), heatmap_size, heatmap_size), np.float32)
    centres = crop_to_heatmap(torch.from_numpy(np.asarray(joints2d_crop, np.float64)), stride).numpy()
    for j, (x, y) in enumerate(np.rint(centres).astype(np.int64)):
        if not visible[j]:
            continue
        x0, x1 = max(0, x - radius), min(heatmap_size, x + radius + 1)
        y0, y1 = max(0, y - radius), min(heatmap_size, y + radius + 1)
        if x0 >= x1 or y0 >= y1:
            continue
        targets[j, y0:y1, x0:x1] = window[y0 - (y - radius):y1 - (y - radius),
                                          x0 - (x - radius):x1 - (x - radius)]
    return targets


def bones_with_both_ends(visible: np.ndarray) -> np.ndarray:
    """`(14,)` bool: which of `joints.EDGES` have both joints visible."""
    edges = np.asarray(joints.EDGES)
    return np.asarray(visible, bool)[edges[:, 0]] & np.asarray(visible, bool)[edges[:, 1]]


def weak_perspective_scale(joints2d_crop: np.ndarray, joints3d: np.ndarray, visible: np.ndarray) -> float:
    """Crop pixels per mm: the 2D bone lengths' sum over the 3D pose's x,y bone lengths' sum.

    This is the reference's s2d / s3d (pytorch-pose-hg-3d `h36m.py`), summed over the bones whose
    two joints are visible. Returns 0 for a pose with no usable bones.
    """
    usable = bones_with_both_ends(visible)
    length2d = joints.bone_lengths(np.asarray(joints2d_crop, np.float64))[usable].sum()
    length3d = joints.bone_lengths(np.asarray(joints3d, np.float64)[:, :2])[usable].sum()
    return float(length2d / length3d) if length3d > _DEGENERATE_BONES else 0.0


def depth_target(joints2d_crop: np.ndarray, joints3d: np.ndarray, visible: np.ndarray,
                 input_size: int) -> np.ndarray:
    """`(J,)` float32 root-relative depth in the weak-perspective scale of the crop.

    `joints3d` `(J, 3)` mm, camera frame (x right, y down, z forward); `joints2d_crop` `(J, 2)` its
    joints in crop pixels. The 3D pose is scaled so its x,y bone lengths match the 2D ones, and its
    root-relative z is divided by half the crop side: about [-1, 1]. `pose3d.weak_perspective` undoes
    this (z = depth * input_size / 2).
    """
    joints3d = np.asarray(joints3d, np.float64)
    scale = weak_perspective_scale(joints2d_crop, joints3d, visible)
    depth = (joints3d[:, 2] - joints3d[joints.ROOT, 2]) * scale / (input_size / 2.0)
    return depth.astype(np.float32)
