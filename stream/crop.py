"""Person crops: the affine map between a video frame and the model's square input, both ways.

Coordinates are continuous with pixel centres at integers in both the frame and the crop, so the
crop spans [-0.5, S-0.5] and `cv2.warpAffine` and the inverse map used on the joints agree exactly.
A box is made square around its centre (never stretched): the network saw people with their true
aspect ratio in training.
"""

from __future__ import annotations

import cv2
import numpy as np

from wildpose.engine import frame_crops
from wildpose.engine.base import crops_to_input

# Context around a person's tight box: the reference crops MPII at 1.25 x its scale box.
DEFAULT_PADDING = 1.25


def full_frame_box(width: int, height: int) -> np.ndarray:
    """`(4,)` box x0, y0, x1, y1 covering the whole frame, pixel edges included."""
    return np.array([-0.5, -0.5, width - 0.5, height - 0.5], dtype=np.float64)


def square_box(box: np.ndarray, padding: float = 1.0) -> np.ndarray:
    """The square box of side `padding` x the longer side of `box`, with the same centre."""
    x0, y0, x1, y1 = np.asarray(box, dtype=np.float64)
    side = max(x1 - x0, y1 - y0) * padding
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])


def box_to_affine(box: np.ndarray, size: int) -> np.ndarray:
    """`(2, 3)` float64 matrix mapping frame coordinates into an `size` x `size` crop of the square
    around `box` (the box is squared first, so the map is a uniform scale plus a shift)."""
    x0, y0, x1, _ = square_box(box)
    scale = size / (x1 - x0)
    return np.array([[scale, 0.0, -0.5 - x0 * scale],
                     [0.0, scale, -0.5 - y0 * scale]])


def cut(frame: np.ndarray, affine: np.ndarray, size: int) -> np.ndarray:
    """`(size, size, 3)` uint8 crop of an `(H, W, 3)` uint8 frame; outside the frame is black (the
    engine's `frame_crops` holds the one definition, which inference can also run on its device)."""
    return frame_crops.cut_on_host(frame, affine, size)


to_model_input = crops_to_input  # `(N, S, S, 3)` uint8 -> `(N, 3, S, S)` float32 in [0, 1]


def crop_to_frame(points: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Map `(..., 2)` crop coordinates back into the frame with the inverse of `affine`."""
    inverse = cv2.invertAffineTransform(affine)
    return points @ inverse[:, :2].T + inverse[:, 2]
