"""The inference graph: the network followed by heatmap decoding.

Exported to ONNX and run by the torch backend alike, so every backend returns the same three small
outputs (16 points, 16 confidences, 16 depths per crop) instead of 16 heatmaps.
"""

from __future__ import annotations

import torch
from torch import nn

from wildpose.training import heatmaps
from wildpose.training.models.hourglass import HEATMAP_STRIDE, PoseNet3D


class DecodedPoseNet(nn.Module):
    """`(B, 3, S, S)` crops -> joints2d_crop `(B, J, 2)` crop px, conf `(B, J)`, depth `(B, J)`."""

    def __init__(self, network: PoseNet3D) -> None:
        super().__init__()
        self.network = network

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        stack_heatmaps, depth = self.network(image)
        return self.decode(stack_heatmaps[-1], depth)

    def decode(self, heatmap: torch.Tensor, depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The last stack's heatmaps and the depths -> the three outputs."""
        # Decoded in float32 whatever the network computes in: a quarter-pixel step and a peak's
        # neighbours compared in fp16 could round differently from the float32 reference.
        coords, conf = heatmaps.decode(heatmap.float())
        return heatmaps.heatmap_to_crop(coords, HEATMAP_STRIDE), conf, depth.float()
