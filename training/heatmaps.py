"""Heatmap geometry: where a joint sits on the heatmap grid, and how a heatmap is read back.

Training renders targets and inference decodes peaks with the same pixel convention, so the two can
never drift apart: integer coordinates are pixel centres, and heatmap pixel i covers crop pixels
[stride*i, stride*(i+1)). Decoding is written with ONNX-exportable ops only (argmax, gather, sign)
so it runs inside the exported graph and engines return 16 points instead of 16 maps.
"""

from __future__ import annotations

import torch

# Reference protocol (pose-hg-3d eval): a quarter-pixel step toward the larger neighbour.
QUARTER_PIXEL = 0.25


def crop_to_heatmap(xy: torch.Tensor, stride: int) -> torch.Tensor:
    """Crop pixel coordinates -> heatmap pixel coordinates (pixel centres at integers)."""
    return (xy + 0.5) / stride - 0.5


def heatmap_to_crop(xy: torch.Tensor, stride: int) -> torch.Tensor:
    """Heatmap pixel coordinates -> crop pixel coordinates; the inverse of `crop_to_heatmap`."""
    return (xy + 0.5) * stride - 0.5


def decode(heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Peak of each heatmap with the reference's quarter-pixel refinement.

    `heatmaps` `(B, J, H, W)` -> coordinates `(B, J, 2)` (x, y) in heatmap pixels and confidence
    `(B, J)`, the peak value clamped to [0, 1] (targets peak at 1, so it reads as a probability).
    Peaks on the border are not refined: they have no neighbour on one side.
    """
    batch, num_joints, height, width = heatmaps.shape
    flat = heatmaps.reshape(batch, num_joints, height * width)
    peak, index = flat.max(dim=2)
    x = index % width
    y = torch.div(index, width, rounding_mode="floor")

    def at(offset_x: int, offset_y: int) -> torch.Tensor:
        neighbour_x = (x + offset_x).clamp(0, width - 1)
        neighbour_y = (y + offset_y).clamp(0, height - 1)
        return flat.gather(2, (neighbour_y * width + neighbour_x).unsqueeze(2)).squeeze(2)

    interior = (x > 0) & (x < width - 1) & (y > 0) & (y < height - 1)
    step_x = torch.sign(at(1, 0) - at(-1, 0)) * interior
    step_y = torch.sign(at(0, 1) - at(0, -1)) * interior
    coords = torch.stack((x.to(heatmaps.dtype) + QUARTER_PIXEL * step_x,
                          y.to(heatmaps.dtype) + QUARTER_PIXEL * step_y), dim=2)
    return coords, peak.clamp(0.0, 1.0)
