"""Person crops cut from whole frames: on the host with OpenCV, or with torch where the model runs.

A crop is the affine map `(2, 3)` frame -> crop of a square around a person (`stream/crop.py` makes
it), with pixel centres at integers in both images and black outside the frame. The pipeline
normally cuts crops on the host, in each stream's preprocess process, and ships them to inference;
with crops cut on the device, each frame is uploaded once and every person's crop is sampled
bilinearly from it there, rounded to uint8 as OpenCV's output is, so both paths feed the network
the same pixels but for a grey level here and there (OpenCV interpolates with 1/32-pixel fixed-point
weights; tests/engine/test_frame_crops.py measures how close).

Two torch implementations of the same sampling, because their costs differ by device: on a GPU
each torch call costs a kernel launch and some microseconds of host time whatever its size, so
`gather_crops` cuts every crop of every frame in a batch with the same few dozen calls; on a CPU
the calls are cheap and the arithmetic is not, and `cut_with_torch` (one `grid_sample` a frame) is
several times faster (64 frames of 640x360 to 256x256 crops on 2 cores: 74 ms against 618 ms). The
dispatcher counts the calls: per frame 14, so 833 for 64 frames; gathered 117 for up to 64 crops.
"""

from __future__ import annotations

import numpy as np

# OpenCV and torch are imported where used: the Triton server's environment has neither.


def cut_on_host(frame: np.ndarray, affine: np.ndarray, size: int, out: np.ndarray | None = None) -> np.ndarray:
    """`(size, size, 3)` uint8 crop of an `(H, W, 3)` uint8 frame (into `out` if given)."""
    import cv2

    return cv2.warpAffine(frame, affine, (size, size), dst=out, flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def crop_to_frame_maps(affines: np.ndarray) -> np.ndarray:
    """`(k, 2, 3)` float64 crop -> frame pixel maps: the inverses of `(k, 2, 3)` frame -> crop maps."""
    affines = np.asarray(affines, dtype=np.float64).reshape(-1, 2, 3)
    inverse = np.linalg.inv(affines[:, :, :2])
    return np.concatenate([inverse, -inverse @ affines[:, :, 2:]], axis=2)


def grid_theta(affines: np.ndarray, frame_height: int, frame_width: int, size: int) -> np.ndarray:
    """`(k, 2, 3)` float32 `affine_grid` matrices (normalised crop -> normalised frame coordinates,
    `align_corners=False`) for `(k, 2, 3)` frame -> crop pixel maps."""
    crop_to_frame = crop_to_frame_maps(affines)
    to_crop_pixels = np.array([[size / 2, 0.0, (size - 1) / 2], [0.0, size / 2, (size - 1) / 2], [0.0, 0.0, 1.0]])
    to_frame_normalised = np.array([[2.0 / frame_width, 0.0, 1.0 / frame_width - 1.0],
                                    [0.0, 2.0 / frame_height, 1.0 / frame_height - 1.0], [0.0, 0.0, 1.0]])
    thetas = np.empty((len(crop_to_frame), 2, 3), dtype=np.float32)
    for i, inverse in enumerate(crop_to_frame):
        thetas[i] = (to_frame_normalised @ np.vstack([inverse, [0.0, 0.0, 1.0]]) @ to_crop_pixels)[:2]
    return thetas


def cut_with_torch(frame, affines: np.ndarray, size: int):
    """`(k, size, size, 3)` uint8 crops of an `(H, W, 3)` uint8 torch tensor, on its device: one
    `grid_sample` of the whole frame."""
    import torch
    from torch.nn import functional

    height, width = frame.shape[:2]
    thetas = torch.from_numpy(grid_theta(affines, height, width, size)).to(frame.device)
    image = frame.permute(2, 0, 1).unsqueeze(0).float()  # coordinates and pixels in float32, on any device
    grid = functional.affine_grid(thetas, [len(thetas), 3, size, size], align_corners=False)
    crops = functional.grid_sample(image.expand(len(thetas), -1, -1, -1), grid, mode="bilinear",
                                   padding_mode="zeros", align_corners=False)
    return crops.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


def crop_table(shapes, offsets, affines) -> np.ndarray:
    """`(k, 9)` float64 rows, one per crop: its crop -> frame pixel map (6 numbers, row-major), the
    byte offset of its frame in the flat buffer, and that frame's height and width. `shapes[i]`,
    `offsets[i]` and `affines[i]` (`(k_i, 2, 3)` frame -> crop maps) describe frame i."""
    rows = []
    for shape, offset, maps in zip(shapes, offsets, affines, strict=True):
        crop_to_frame = crop_to_frame_maps(maps).reshape(-1, 6)
        frame = np.broadcast_to(np.array([offset, shape[0], shape[1]], dtype=np.float64), (len(crop_to_frame), 3))
        rows.append(np.concatenate([crop_to_frame, frame], axis=1))
    return np.concatenate(rows) if rows else np.empty((0, 9))


GATHER_CHUNK = 64  # crops sampled together by `gather_crops`: bounds its scratch memory (~0.5 GB at 256 px)


def gather_crops(flat, table, size: int):
    """`(k, size, size, 3)` uint8 crops of frames lying anywhere in the flat uint8 tensor `flat`, one
    per `crop_table` row (`table` float64 on the same device): bilinear, black outside each frame.

    Every `GATHER_CHUNK` crops, of however many frames, are cut by the same few dozen torch calls,
    and only the pixels they read are converted to float."""
    import torch

    parts = [_gather(flat, table[first:first + GATHER_CHUNK], size) for first in range(0, len(table), GATHER_CHUNK)]
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def _gather(flat, table, size: int):
    import torch

    count, device = len(table), flat.device
    maps = table[:, :6].to(torch.float32).view(count, 2, 3, 1, 1)
    offsets, heights, widths = table[:, 6:9].to(torch.int64).view(count, 3, 1, 1).unbind(1)
    pixels = torch.arange(size, dtype=torch.float32, device=device)
    column, row = pixels.view(1, 1, size), pixels.view(1, size, 1)
    x = maps[:, 0, 0] * column + maps[:, 0, 1] * row + maps[:, 0, 2]  # (k, S, S) frame coordinates
    y = maps[:, 1, 0] * column + maps[:, 1, 1] * row + maps[:, 1, 2]
    left, top = x.floor(), y.floor()
    # per neighbour column (left, left + 1): its byte offset in a row and its weight, 0 outside the frame;
    # per neighbour row likewise its byte offset from the buffer's start
    columns, rows = [], []
    for start, fraction, limit, scale, base, into in ((left, x - left, widths, 3, 0, columns),
                                                       (top, y - top, heights, widths * 3, offsets, rows)):
        start = start.to(torch.int64)
        for step, weight in ((0, 1.0 - fraction), (1, fraction)):
            at = start + step
            inside = (at >= 0) & (at < limit)
            into.append((base + torch.minimum(at.clamp(min=0), limit - 1) * scale, weight * inside))
    channels = torch.arange(3, dtype=torch.int64, device=device)
    crops = torch.zeros((count, size, size, 3), dtype=torch.float32, device=device)
    for row_offset, row_weight in rows:
        for column_offset, column_weight in columns:
            values = flat[(row_offset + column_offset).unsqueeze(-1) + channels].to(torch.float32)
            crops.addcmul_(values, (row_weight * column_weight).unsqueeze(-1))
    return crops.round_().clamp_(0, 255).to(torch.uint8)
