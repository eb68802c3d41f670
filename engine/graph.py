"""The inference graph: the network followed by heatmap decoding.

Exported to ONNX and run by the torch backend alike, so every backend returns the same three small
outputs (16 points, 16 confidences, 16 depths per crop) instead of 16 heatmaps. With `flip_test`
the graph also runs each crop mirrored and averages the heatmaps (`training.heatmaps`): callers see
the same inputs and outputs, and the file's metadata says so.
"""

from __future__ import annotations

import torch
from torch import nn

from wildpose.training import heatmaps
from wildpose.training.models.hourglass import HEATMAP_STRIDE, PoseNet3D


class DecodedPoseNet(nn.Module):
    """`(B, 3, S, S)` crops -> joints2d_crop `(B, J, 2)` crop px, conf `(B, J)`, depth `(B, J)`."""

    def __init__(self, network: PoseNet3D, flip_test: bool = False) -> None:
        super().__init__()
        self.network = network
        self.flip_test = flip_test

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        stack_heatmaps, depth = self.network(self.network_input(image))
        return self.decode(stack_heatmaps[-1], depth)

    def network_input(self, image: torch.Tensor) -> torch.Tensor:
        """What the network runs on: the crops, and with `flip_test` their mirror images after them."""
        return heatmaps.with_mirrored(image) if self.flip_test else image

    def decode(self, heatmap: torch.Tensor, depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The last stack's heatmaps and the depths -> the three outputs."""
        # Decoded in float32 whatever the network computes in: a quarter-pixel step and a peak's
        # neighbours compared in fp16 could round differently from the float32 reference.
        heatmap, depth = heatmap.float(), depth.float()
        if self.flip_test:
            heatmap, depth = heatmaps.average_mirrored(heatmap, depth)
        coords, conf = heatmaps.decode(heatmap)
        return heatmaps.heatmap_to_crop(coords, HEATMAP_STRIDE), conf, depth
