"""A SynthPose video: one figure performing a whole motion-capture take in front of a fixed camera.

`wildpose demo` needs a clip that anyone may redistribute, that exists on a fresh checkout with the
shared mocap, and in which the pipeline's detectors find the person, down to the weakest of them,
OpenCV's HOG people detector. A held-out `wild` test take (131_02: start, walk, stop) is rendered in
a plain studio with a side-on camera that frames the whole path, the person about 60% of the frame
tall: HOG's 64x128 window holds a person of ~96 px with margins, so a taller person no longer fits
it at the detector's 480 px working size. Everything is fixed (shape, clothes, light, camera), so
the frames are deterministic.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wildpose.errors import ConfigError
from wildpose.training.synthpose import backgrounds, body, cmu, domains
from wildpose.training.synthpose.camera import Camera
from wildpose.training.synthpose.render import Appearance, Effects, RenderedSample, render


@dataclass(frozen=True)
class ClipConfig:
    """What the clip shows. `take` is a BVH stem of the `wild`/`test` split, `start_s` where in it the
    clip begins; `yaw_deg` the camera's azimuth from the subject's first facing (90 = side-on);
    `person_fraction` the tallest pose's height over the frame height."""

    take: str = "131_02"
    start_s: float = 2.0  # 131_02 stands still for its first two seconds
    width: int = 640
    height: int = 360
    fps: int = 30
    yaw_deg: float = 70.0
    camera_height_mm: float = 1300.0
    distance_mm: float = 6000.0
    person_fraction: float = 0.6
    mocap_dir: str = str(domains.DEFAULT_MOCAP_DIR)

    def __post_init__(self) -> None:
        if self.take not in domains.split_files("wild", "test"):
            raise ConfigError(f"clip take must be a held-out wild test take {domains.split_files('wild', 'test')}, "
                              f"got {self.take!r}")
        if not (32 <= self.width <= 4096 and 32 <= self.height <= 4096) or not 1 <= self.fps <= cmu.CMU_FPS:
            raise ConfigError(f"clip: size 32..4096 px and fps 1..{cmu.CMU_FPS:g} expected, got "
                              f"{self.width}x{self.height} at {self.fps} fps")
        if not 0.1 <= self.person_fraction <= 0.9 or self.start_s < 0 or self.distance_mm <= 500:
            raise ConfigError("clip: person_fraction must be 0.1..0.9, start_s >= 0 and distance_mm > 500, got "
                              f"{self.person_fraction}, {self.start_s}, {self.distance_mm}")


# Contrasting clothes under a fixed light (RGB in [0, 1] per body material).
_APPEARANCE = Appearance(
    albedo=np.array([[0.80, 0.62, 0.50],   # skin
                     [0.75, 0.18, 0.12],   # shirt: red
                     [0.12, 0.16, 0.30],   # trousers: dark denim
                     [0.10, 0.10, 0.10],   # shoes
                     [0.15, 0.10, 0.06],    # hair
                     [0.09, 0.06, 0.05]]),  # eyes and brows
    light=np.array([0.45, 0.80, 0.40]) / np.linalg.norm([0.45, 0.80, 0.40]),
    ambient=0.4, diffuse=0.75, tint=np.ones(3))
_WALL_DISTANCE_MM = 5000.0  # behind the subject, from the camera's horizontal view
_BACKGROUND_SEED = 5


def _camera(poses: np.ndarray, config: ClipConfig) -> Camera:
    """A fixed camera that frames every pose of the take, the tallest `person_fraction` of the height."""
    flat = poses.reshape(-1, 3)
    target = (flat.min(axis=0) + flat.max(axis=0)) / 2.0
    probe = Camera.orbit(target, body.facing(poses[0]), config.distance_mm, config.camera_height_mm,
                         config.yaw_deg, 1.0, config.width, config.height)
    slopes = probe.world_to_camera(flat)
    slopes = (slopes[:, :2] / slopes[:, 2:3]).reshape(len(poses), -1, 2)
    tallest = float(np.ptp(slopes[:, :, 1], axis=1).max())
    extent = np.ptp(slopes.reshape(-1, 2), axis=0)
    focal = min(config.person_fraction * config.height / tallest, 0.9 * config.width / extent[0],
                0.9 * config.height / extent[1])
    # Centre the whole path in the frame: turn the view onto the middle of its box.
    middle = (slopes.reshape(-1, 2).min(axis=0) + slopes.reshape(-1, 2).max(axis=0)) / 2.0
    depth = float(np.median(probe.world_to_camera(flat)[:, 2]))
    centre = target + probe.rotation.T @ np.array([*(middle * depth), 0.0])
    return Camera.look_at(probe.position, centre, focal, config.width, config.height)


def render_clip(frames: int, config: ClipConfig | None = None) -> Iterator[RenderedSample]:
    """`frames` consecutive frames of the take at `config.fps`, each an image `(H, W, 3)` uint8 RGB
    with its labels; the same on every call."""
    config = config or ClipConfig()
    path = Path(config.mocap_dir) / f"{config.take}.bvh"
    if not path.is_file():
        from wildpose.errors import DatasetError

        raise DatasetError(f"clip: motion capture file {path} not found; set mocap_dir to the CMU BVH folder "
                           "(../shared/data/cmu_mocap)")
    motion = cmu.load_motion(path, fps=config.fps)
    start = int(round(config.start_s * config.fps))
    if frames < 1 or start + frames > motion.num_frames:
        raise ConfigError(f"clip: {config.take} has {motion.num_frames} frames at {config.fps} fps; "
                          f"{frames} frames from {config.start_s} s do not fit, ask for at most "
                          f"{max(motion.num_frames - start, 0)}")
    shape = body.mean_shape()
    poses, extras = body.retarget(motion.joints[start:start + frames], motion.extras[start:start + frames],
                                  shape, motion.floor_y)
    camera = _camera(poses, config)
    background = backgrounds.lab(camera, motion.floor_y, _WALL_DISTANCE_MM + config.distance_mm,
                                 np.random.default_rng(_BACKGROUND_SEED))
    effects = Effects(optics_sigma=0.5)  # lens softness only: noise would only cost H.264 bits
    for index in range(frames):
        yield render(poses[index], extras[index], shape, _APPEARANCE, camera, background, effects,
                     np.random.default_rng(index), floor_y=motion.floor_y, shadow=0.35)
