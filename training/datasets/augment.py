"""The reference's data augmentation, drawn from a seed per sample instead of a global RNG.

The reference drew its random numbers from NumPy's global state, so every DataLoader worker forked
the same state and produced the same "random" samples. Here each sample's augmentation comes from
its own generator seeded by (run seed, stage, epoch, position in the epoch, dataset index): the same
on every run, every worker count and every rank, and different for every draw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from wildpose.errors import ConfigError


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation of training crops. Defaults are the reference's (paper-facts.md, "Augmentation")."""

    enabled: bool = True
    scale_sigma: float = 0.25  # crop side x 2^clip(N(0,1) * scale_sigma, +-scale_clip)
    scale_clip: float = 0.5
    rotation_sigma: float = 30.0  # degrees: clip(N(0,1) * rotation_sigma, +-rotation_clip) ...
    rotation_clip: float = 60.0
    rotation_p: float = 0.4  # ... applied with this probability, else 0
    flip_p: float = 0.5  # horizontal flip, left/right joints swapped
    colour_min: float = 0.6  # per-channel gain U(colour_min, colour_max), then clipped to [0, 1]
    colour_max: float = 1.4

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ConfigError(f"augment.enabled must be true or false, got {self.enabled!r}")
        for name in ("scale_sigma", "scale_clip", "rotation_sigma", "rotation_clip", "colour_min",
                     "colour_max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"augment.{name} must be a number >= 0, got {value!r}")
        for name in ("rotation_p", "flip_p"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ConfigError(f"augment.{name} is a probability: expected a number in [0, 1], "
                                  f"got {value!r}")
        if self.colour_min > self.colour_max:
            raise ConfigError(f"augment.colour_min ({self.colour_min}) must not exceed colour_max "
                              f"({self.colour_max})")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AugmentConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"augment: unknown keys {unknown}; known keys are {sorted(known)}")
        return cls(**values)


@dataclass(frozen=True)
class Augmentation:
    """One sample's draw: crop side factor, rotation (degrees, counter-clockwise), flip, RGB gains."""

    scale: float = 1.0
    rotation: float = 0.0
    flip: bool = False
    gains: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def as_array(self) -> np.ndarray:
        """`(6,)` float32: scale, rotation, flip, three gains (carried in samples for inspection)."""
        return np.array([self.scale, self.rotation, float(self.flip), *self.gains], np.float32)


IDENTITY = Augmentation()


def generator(stream: Sequence[int], index: int) -> np.random.Generator:
    """The generator of one draw: `stream` is (seed, stage, epoch, position), `index` the sample's."""
    return np.random.default_rng([int(v) for v in stream] + [int(index)])


def draw(rng: np.random.Generator, config: AugmentConfig) -> Augmentation:
    """One augmentation, always consuming the same numbers from `rng` so draws stay aligned."""
    if not config.enabled:
        return IDENTITY
    normal_scale, normal_rotation = rng.standard_normal(2)
    rotate, flip = rng.random(2)
    gains = rng.uniform(config.colour_min, config.colour_max, 3)
    scale = 2.0 ** float(np.clip(normal_scale * config.scale_sigma, -config.scale_clip, config.scale_clip))
    rotation = float(np.clip(normal_rotation * config.rotation_sigma, -config.rotation_clip,
                             config.rotation_clip)) if rotate < config.rotation_p else 0.0
    return Augmentation(scale=scale, rotation=rotation, flip=bool(flip < config.flip_p),
                        gains=tuple(float(g) for g in gains))


def rotation_matrix(degrees: float) -> np.ndarray:
    """`(2, 2)` rotation of image axes (x right, y down) that turns content counter-clockwise on screen,
    the same convention as `cv2.getRotationMatrix2D`."""
    angle = math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    return np.array([[cos, sin], [-sin, cos]])


def crop_matrix(center: np.ndarray, side: float, output_size: int, rotation: float = 0.0,
                flip: bool = False) -> np.ndarray:
    """`(3, 3)` affine from image pixels to crop pixels (pixel centres at integers, both sides).

    The square of side `side` around `center` (image px) fills the crop of `output_size` px: its
    edges land on the crop's outer pixel edges (-0.5 and output_size - 0.5). Rotation turns the
    content about the crop centre; a flip mirrors the crop about its vertical midline.
    """
    half = (output_size - 1) / 2.0
    linear = (output_size / side) * rotation_matrix(rotation)
    if flip:
        linear = np.diag([-1.0, 1.0]) @ linear
    matrix = np.eye(3)
    matrix[:2, :2] = linear
    matrix[:2, 2] = np.array([half, half]) - linear @ np.asarray(center, np.float64)
    return matrix


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points `(..., 2)` through a `(3, 3)` or `(2, 3)` affine."""
    return points @ matrix[:2, :2].T + matrix[:2, 2]
