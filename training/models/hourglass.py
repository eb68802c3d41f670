"""The paper's network: a stacked hourglass for 2D heatmaps plus a depth regression module.

Zhou et al., ICCV 2017, as built by its reference code (pose-hg-3d, branch `hg3d`); every size below
is from `../shared/reference/paper-facts.md`. The depth module reads the feature map that the stack
update produces after the LAST stack (the reference's "inter"), so depth sees both the hourglass
features and the heatmaps.
"""

from __future__ import annotations

import torch
from torch import nn

from wildpose.training.models.config import HEATMAP_STRIDE, PRESETS, ModelConfig, preset

__all__ = ["HEATMAP_STRIDE", "PRESETS", "ModelConfig", "PoseNet3D", "build", "parameter_count", "preset"]


class Residual(nn.Module):
    """Pre-activation bottleneck: BN-ReLU-1x1(out/2) -> BN-ReLU-3x3(out/2) -> BN-ReLU-1x1(out) + skip.

    The skip is the identity, or a 1x1 conv when the channel count changes; nothing follows the sum.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        mid = out_channels // 2
        self.body = nn.Sequential(
            nn.BatchNorm2d(in_channels), nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, mid, 1),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, padding=1),
            nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, out_channels, 1),
        )
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)


def _residuals(count: int, in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(*(Residual(in_channels if i == 0 else out_channels, out_channels)
                           for i in range(count)))


class Hourglass(nn.Module):
    """One recursive hourglass: a full-resolution branch plus a pooled branch that recurses, merged by
    nearest x2 upsampling and addition (Newell et al. 2016)."""

    def __init__(self, depth: int, features: int, residuals: int) -> None:
        super().__init__()
        self.up = _residuals(residuals, features, features)
        self.down = nn.Sequential(nn.MaxPool2d(2), _residuals(residuals, features, features))
        self.inner = (Hourglass(depth - 1, features, residuals) if depth > 1
                      else _residuals(residuals, features, features))
        self.after = _residuals(residuals, features, features)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.merge(self.up(x), self.inner(self.down(x)))

    def merge(self, up: torch.Tensor, inner: torch.Tensor) -> torch.Tensor:
        """The full-resolution branch's output plus the pooled branch's, brought back up."""
        return up + self.upsample(self.after(inner))


class Stack(nn.Module):
    """An hourglass, its heatmap head, and the feature update that feeds the next stage."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        f = config.features
        self.hourglass = Hourglass(config.hourglass_depth, f, config.residuals_per_node)
        self.residuals = _residuals(config.residuals_per_node, f, f)
        self.lin = nn.Sequential(nn.Conv2d(f, f, 1), nn.BatchNorm2d(f), nn.ReLU(inplace=True))
        self.heatmap = nn.Conv2d(f, config.num_joints, 1)
        self.remap_features = nn.Conv2d(f, f, 1)
        self.remap_heatmap = nn.Conv2d(config.num_joints, f, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.hourglass(x), x)

    def head(self, hourglass_out: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Everything after the hourglass: heatmaps, and the features for the next stage."""
        lin = self.lin(self.residuals(hourglass_out))
        heatmap = self.heatmap(lin)
        # The paper's update: next = previous + 1x1(lin) + 1x1(heatmaps); it also runs after the last
        # stack, whose result feeds the depth module.
        return heatmap, x + self.remap_features(lin) + self.remap_heatmap(heatmap)


class DepthRegressor(nn.Module):
    """`depth_levels` x [residuals + 2x2 maxpool], then a linear layer to one depth per joint."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        levels = []
        in_channels = config.features
        for _ in range(config.depth_levels):
            levels += [_residuals(config.residuals_per_node, in_channels, config.depth_features),
                       nn.MaxPool2d(2)]
            in_channels = config.depth_features
        self.levels = nn.Sequential(*levels)
        self.linear = nn.Linear(config.depth_features * config.depth_map_size ** 2, config.num_joints)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.flatten(self.levels(x), 1))


# State-dict keys of the depth regressor (`PoseNet3D.depth`); every other key is the 2D module's (stem
# and stacks). Depth-only training stages and weight blends split the network here.
DEPTH_MODULE = "depth"
DEPTH_PREFIX = DEPTH_MODULE + "."


class PoseNet3D(nn.Module):
    """Stacked hourglass + depth regression (Zhou et al. 2017).

    Input `(B, 3, S, S)` float RGB in [0, 1], S = `config.input_size`.
    Output: a list of `config.stacks` heatmap tensors `(B, J, S/4, S/4)` (training supervises every
    stack; the last is the prediction), and depth `(B, J)`: root-relative depth in the weak-perspective
    scale of the crop, z / (half crop side), roughly in [-1, 1].
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, stride=2, padding=3), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            Residual(64, 128), nn.MaxPool2d(2), Residual(128, 128), Residual(128, config.features),
        )
        self.stacks = nn.ModuleList(Stack(config) for _ in range(config.stacks))
        self.depth = DepthRegressor(config)

    def forward(self, image: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        x = self.stem(image)
        heatmaps = []
        for stack in self.stacks:
            heatmap, x = stack(x)
            heatmaps.append(heatmap)
        return heatmaps, self.depth(x)


def build(config: ModelConfig, seed: int | None = None) -> PoseNet3D:
    """Build the network; with `seed`, its initial weights are the same on every machine."""
    if seed is None:
        return PoseNet3D(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return PoseNet3D(config)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
