"""Crowd scenes: 2-4 figures walking across each other in front of a fixed camera, with their identities.

Tracking quality (identity switches, MOTA) needs video in which people cross and hide each other, and
the truth of who is who; hand-labelled footage has neither on this project's machines. Each figure
walks CMU take 02_01 (a steady walk, `lab`/`train`) along its own lane: lanes lie at different depths
and alternate direction, so every pair of neighbours passes in the image with the nearer one hiding
the farther one. Figures differ in body shape, clothes and pace (the take replayed 0.8-1.0 x); pairs
of figures meet mid-path at evenly spaced moments of the clip. Everything follows from
`CrowdConfig`, so a scene renders the same on every machine.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wildpose.errors import ConfigError, DatasetError
from wildpose.training import joints
from wildpose.training.synthpose import backgrounds, body, cmu, domains
from wildpose.training.synthpose.camera import Camera
from wildpose.training.synthpose.render import Appearance, Effects, Figure, render_people, sample_appearance

TAKE = "02_01"  # walk, 2.9 s, 3.3 m
LANE_SPACING_MM = 900.0  # depth between neighbouring lanes: close enough that bodies overlap in the image
NEAREST_LANE_MM = 5000.0  # camera to the nearest lane
CAMERA_HEIGHT_MM = 1400.0
_WALL_BEHIND_MM = 3000.0  # back wall beyond the farthest lane
_SCENE_LIGHT = np.array([0.35, 0.85, -0.40]) / np.linalg.norm([0.35, 0.85, -0.40])


@dataclass(frozen=True)
class CrowdConfig:
    """A scene of `people` walkers, `frames` long at `fps`, rendered at `width` x `height`; `seed`
    picks shapes, clothes and paces."""

    people: int = 2
    frames: int = 80
    width: int = 640
    height: int = 360
    fps: int = 30
    seed: int = 0
    mocap_dir: str = field(default=str(domains.DEFAULT_MOCAP_DIR))

    def __post_init__(self) -> None:
        if not 2 <= self.people <= 4:
            raise ConfigError(f"crowd scenes have 2..4 people, got {self.people}")
        if not (32 <= self.width <= 4096 and 32 <= self.height <= 4096) or not 1 <= self.fps <= cmu.CMU_FPS:
            raise ConfigError(f"crowd: size 32..4096 px and fps 1..{cmu.CMU_FPS:g} expected, got "
                              f"{self.width}x{self.height} at {self.fps} fps")
        if self.frames < 1:
            raise ConfigError(f"crowd: frames must be at least 1, got {self.frames}")


@dataclass(frozen=True, eq=False)
class PersonTruth:
    """One figure in one frame: `id` (1-based, fixed for the scene), tight joint box xyxy in pixels,
    `joints2d` `(16, 2)` pixels, `seen` how many joints are in the image and not hidden."""

    id: int
    box: np.ndarray
    joints2d: np.ndarray
    seen: int


@dataclass(frozen=True, eq=False)
class CrowdFrame:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    people: tuple[PersonTruth, ...]


def _walk(motion: cmu.CmuMotion, shape: body.BodyShape, direction: float, lane_z: float
          ) -> tuple[np.ndarray, np.ndarray]:
    """The take retargeted to `shape`, turned so it walks along +x (`direction` 1) or -x (-1) and moved
    so its path is centred on x = 0 at depth `lane_z`."""
    poses, extras = body.retarget(motion.joints, motion.extras, shape, motion.floor_y)
    pelvis = poses[:, joints.INDEX["pelvis"]]
    travel = pelvis[-1] - pelvis[0]
    heading = math.atan2(travel[0], travel[2])  # angle of the walk in the ground plane, from +z
    turn = direction * math.pi / 2 - heading  # rotate about y onto +x (pi/2 from +z) or -x
    c, s = math.cos(turn), math.sin(turn)
    rotation = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    middle = (pelvis[0] + pelvis[-1]) / 2.0
    offset = np.array([0.0, 0.0, lane_z]) - rotation @ (middle * np.array([1.0, 0.0, 1.0]))
    return poses @ rotation.T + offset, extras @ rotation.T + offset


def _camera(config: CrowdConfig, lanes: np.ndarray, half_path_mm: float) -> Camera:
    """Level-ish camera on the -z side looking at the middle lane, framing every path with a margin."""
    target = np.array([0.0, 900.0, float(lanes.mean())])
    eye = np.array([0.0, CAMERA_HEIGHT_MM, float(lanes.min()) - NEAREST_LANE_MM])
    nearest = NEAREST_LANE_MM
    focal = 0.92 * (config.width / 2) / ((half_path_mm + 350.0) / nearest)  # a shoulder's margin at each end
    return Camera.look_at(eye, target, focal, config.width, config.height)


def render_crowd(config: CrowdConfig | None = None) -> Iterator[CrowdFrame]:
    """The scene's frames with each figure's truth; the same on every call."""
    config = config or CrowdConfig()
    path = Path(config.mocap_dir) / f"{TAKE}.bvh"
    if not path.is_file():
        raise DatasetError(f"crowd: motion capture file {path} not found; set mocap_dir to the CMU BVH folder "
                           "(../shared/data/cmu_mocap)")
    rng = np.random.default_rng([config.seed, config.people])
    lanes = np.arange(config.people) * LANE_SPACING_MM
    figures, paths, floor_y = [], [], 0.0
    for number in range(config.people):
        pace = float(rng.uniform(0.8, 1.0))
        motion = cmu.load_motion(path, fps=config.fps / pace)
        floor_y = motion.floor_y
        shape = body.sample_shape(rng)
        dressed = sample_appearance(rng)
        appearance = Appearance(albedo=dressed.albedo, light=_SCENE_LIGHT, ambient=0.4, diffuse=0.7,
                                tint=dressed.tint)
        poses, extras = _walk(motion, shape, 1.0 if number % 2 == 0 else -1.0, float(lanes[number]))
        paths.append((poses, extras))
        figures.append((shape, appearance))
    longest = max(len(poses) for poses, _ in paths)
    if config.frames > longest:
        raise ConfigError(f"crowd: the walks last at most {longest} frames at {config.fps} fps; ask for at most that")
    half_path = max(float(np.abs(poses[:, joints.INDEX["pelvis"], 0]).max()) for poses, _ in paths)
    camera = _camera(config, lanes, half_path)
    background = backgrounds.lab(camera, floor_y, float(lanes.max()) + NEAREST_LANE_MM + _WALL_BEHIND_MM,
                                 np.random.default_rng(config.seed))
    effects = Effects(optics_sigma=0.5)
    # Figures 1 and 2 meet mid-path at one moment, 3 and 4 at a later one, so same-direction walkers
    # are apart along their lanes; before and after its take a figure stands in its first or last pose.
    pairs = (config.people + 1) // 2
    crossings = [round(config.frames * (number // 2 + 1) / (pairs + 1)) for number in range(config.people)]
    for index in range(config.frames):
        scene = []
        for number, ((poses, extras), (shape, appearance)) in enumerate(zip(paths, figures, strict=True)):
            k = int(np.clip(index - crossings[number] + len(poses) // 2, 0, len(poses) - 1))
            scene.append(Figure(poses[k], extras[k], shape, appearance))
        samples = render_people(scene, camera, background, effects, np.random.default_rng(index), floor_y=floor_y,
                                shadow=0.35)
        truths = []
        for number, sample in enumerate(samples):
            inside = np.clip(sample.joints2d, 0, [config.width - 1, config.height - 1])
            box = np.concatenate([inside.min(axis=0), inside.max(axis=0)])
            truths.append(PersonTruth(id=number + 1, box=box, joints2d=sample.joints2d,
                                      seen=int(np.sum(sample.visible & ~sample.occluded))))
        yield CrowdFrame(image=samples[0].image, people=tuple(truths))
