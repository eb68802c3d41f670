"""Sizes of the paper's network and its named presets, importable without PyTorch.

Engines that never touch PyTorch (ONNX Runtime) still read and check model configs from model
files, so the config lives apart from the network code.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from wildpose.errors import ConfigError
from wildpose.training import joints

HEATMAP_STRIDE = 4  # the stem's 7x7/2 conv and its maxpool: 256 px input -> 64 px heatmaps
# paper-facts.md, "Losses": the target heatmaps' Gaussian, sigma ~1.75 px on a 64x64 heatmap (scaled
# with the heatmap side: datasets/targets.py). Here so training configs load without PyTorch.
REFERENCE_SIGMA = 1.75


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the network. The defaults are the paper's model (about 14.4 M parameters)."""

    stacks: int = 2
    features: int = 256
    depth_features: int = 256  # width of the depth module's residuals (paper: same as features)
    input_size: int = 256  # square RGB crop in [0, 1], no mean subtraction
    hourglass_depth: int = 4  # 64 -> 32 -> 16 -> 8 -> 4 at a 256 input
    residuals_per_node: int = 2
    depth_levels: int = 4  # [2 residuals + 2x2 maxpool] repeats before the linear layer
    num_joints: int = joints.NUM_JOINTS

    def __post_init__(self) -> None:
        for name in ("stacks", "features", "depth_features", "input_size", "hourglass_depth",
                     "residuals_per_node", "depth_levels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"model config: {name} must be a positive integer, got {value!r}")
        if self.features % 2 or self.depth_features % 2:
            raise ConfigError("model config: features and depth_features must be even "
                              f"(bottlenecks halve them), got {self.features} and {self.depth_features}")
        if self.num_joints != joints.NUM_JOINTS:
            raise ConfigError(f"model config: num_joints must be {joints.NUM_JOINTS} (the joint set in "
                              f"training/joints.py), got {self.num_joints}")
        divisor = HEATMAP_STRIDE * 2 ** max(self.hourglass_depth, self.depth_levels)
        if self.input_size % divisor:
            raise ConfigError(f"model config: input_size must be a multiple of {divisor} so every "
                              f"pooling level divides evenly, got {self.input_size}")

    @property
    def heatmap_size(self) -> int:
        return self.input_size // HEATMAP_STRIDE

    @property
    def depth_map_size(self) -> int:
        """Side of the depth module's last feature map (4 for the paper: 4x4x256 = 4096 inputs)."""
        return self.heatmap_size // 2 ** self.depth_levels

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"model config: unknown keys {unknown}; known keys are {sorted(known)}")
        return cls(**values)


PRESETS: dict[str, ModelConfig] = {
    # The paper's model: 2 stacks x 256 features at 256x256 (32 GFLOP a frame).
    "paper": ModelConfig(),
    # CPU realtime: the same architecture with one stack of 128 features at a 192x192 input; the depth
    # module keeps its four levels (48 -> 3) and regresses from 3x3x128 = 1152 features.
    "realtime": ModelConfig(stacks=1, features=128, depth_features=128, input_size=192),
    # For tests and quick runs only.
    "tiny": ModelConfig(stacks=1, features=32, depth_features=32, input_size=64),
}


def preset(name: str) -> ModelConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown model preset {name!r}; choose one of {sorted(PRESETS)}") from None
