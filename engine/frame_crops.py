"""Person crops cut from whole frames: on the host with OpenCV, or with torch where the model runs.

A crop is the affine map `(2, 3)` frame -> crop of a square around a person (`stream/crop.py` makes
it), with pixel centres at integers in both images and black outside the frame. The pipeline
normally cuts crops on the host, in each stream's preprocess process, and ships them to inference;
with crops cut on the device, each frame is uploaded once and every person's crop is a bilinear
`grid_sample` of it on the GPU, rounded to uint8 as OpenCV's output is, so both paths feed the network
the same pixels but for a grey level here and there (OpenCV interpolates with 1/32-pixel fixed-point
weights; tests/engine/test_frame_crops.py measures how close).
"""

from __future__ import annotations

import numpy as np

# OpenCV and torch are imported where used: the Triton server's environment has neither.


def cut_on_host(frame: np.ndarray, affine: np.ndarray, size: int, out: np.ndarray | None = None) -> np.ndarray:
    """`(size, size, 3)` uint8 crop of an `(H, W, 3)` uint8 frame (into `out` if given)."""
    import cv2

    return cv2.warpAffine(frame, affine, (size, size), dst=out, flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def grid_theta(affines: np.ndarray, frame_height: int, frame_width: int, size: int) -> np.ndarray:
    """`(k, 2, 3)` float32 `affine_grid` matrices (normalised crop -> normalised frame coordinates,
    `align_corners=False`) for `(k, 2, 3)` frame -> crop pixel maps."""
    affines = np.asarray(affines, dtype=np.float64).reshape(-1, 2, 3)
    linear, shift = affines[:, :, :2], affines[:, :, 2:]
    crop_to_frame = np.concatenate([np.linalg.inv(linear), -np.linalg.inv(linear) @ shift], axis=2)
    to_crop_pixels = np.array([[size / 2, 0.0, (size - 1) / 2], [0.0, size / 2, (size - 1) / 2], [0.0, 0.0, 1.0]])
    to_frame_normalised = np.array([[2.0 / frame_width, 0.0, 1.0 / frame_width - 1.0],
                                    [0.0, 2.0 / frame_height, 1.0 / frame_height - 1.0], [0.0, 0.0, 1.0]])
    thetas = np.empty((len(affines), 2, 3), dtype=np.float32)
    for i, inverse in enumerate(crop_to_frame):
        thetas[i] = (to_frame_normalised @ np.vstack([inverse, [0.0, 0.0, 1.0]]) @ to_crop_pixels)[:2]
    return thetas


def cut_with_torch(frame, affines: np.ndarray, size: int):
    """`(k, size, size, 3)` uint8 crops of an `(H, W, 3)` uint8 torch tensor, on its device."""
    import torch

    height, width = frame.shape[:2]
    return sample_crops(frame, torch.from_numpy(grid_theta(affines, height, width, size)).to(frame.device), size)


def sample_crops(frame, thetas, size: int):
    """`cut_with_torch` with the `grid_theta` matrices already on the frame's device (a pageable upload
    of them would make the host wait for everything queued on the stream before it)."""
    import torch
    from torch.nn import functional

    image = frame.permute(2, 0, 1).unsqueeze(0).float()  # coordinates and pixels in float32, on any device
    grid = functional.affine_grid(thetas, [len(thetas), 3, size, size], align_corners=False)
    crops = functional.grid_sample(image.expand(len(thetas), -1, -1, -1), grid, mode="bilinear",
                                   padding_mode="zeros", align_corners=False)
    return crops.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
