"""SynthPose's two domains after the paper, and the deterministic sample generator.

The paper trains on 3D-labelled lab footage (Human3.6M) plus 2D-only in-the-wild images (MPII) and
tests 3D in the wild. SynthPose mirrors that with a domain gap we control: `lab` has plain studio
backgrounds, few motions and frontal-ish views, all with 3D labels; `wild` has clutter, other
motions and any viewpoint, with only 2D labels for training and a held-out 3D-labelled test split.

Splits hold out whole BVH files, never frames of one take (neighbouring frames at 120 fps are near
duplicates):

- lab/train: 02_01 walk, 02_03 run/jog, 01_01 playground jumps and turns.
  Everyday locomotion, like Human3.6M's actions.
- lab/test: 09_01 run. An unseen subject (09) doing a lab motion, like Human3.6M's S9/S11.
- wild/train: 05_02 dance, 06_15 basketball, 02_05 punch/strike, 01_06 climb/sit/dangle.
  Poses the lab never shows, with 2D labels only.
- wild/test: 131_01, 131_02 start/walk/stop, 131_03 hop, 02_04 jump/balance. An unseen subject
  (131, from the other BVH release; its takes are stylised: an arm overhead, wide stances, a crouch)
  and one-legged balance and jumps that no training file has.

No file appears twice (tests check it). Sample `i` of (domain, split, seed) depends on nothing else,
so data loader workers can each draw their own indices without repeating samples.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np

from wildpose.errors import ConfigError
from wildpose.training.synthpose import backgrounds, body, cmu, repose
from wildpose.training.synthpose.camera import Camera
from wildpose.training.synthpose.render import DEFAULT_CROP_PADDING, Effects, RenderedSample, render, sample_appearance

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MOCAP_DIR = PROJECT_ROOT.parent / "shared" / "data" / "cmu_mocap"

Range = tuple[float, float]


def _check_range(name: str, value: Range, low: float = -np.inf, high: float = np.inf) -> None:
    if len(value) != 2 or not (low <= value[0] <= value[1] <= high):
        raise ConfigError(f"{name} must be a (low, high) pair with {low} <= low <= high <= {high}, got {value}")


@dataclass(frozen=True)
class DomainSpec:
    """How one domain's scenes are drawn. Angles in degrees, lengths in mm; `yaw_deg` is the camera's
    azimuth relative to the subject's facing (0 = frontal); `person_fraction` the longer side of the
    joints' box over the image's shorter side (at most 0.8 so the 1.25x padded crop fits);
    `blur_prob`/`blur_px` linear motion blur, `noise_sigma` in 0..255
    levels, `jpeg_prob`/`jpeg_quality` re-encoding; `shadow` the contact-shadow strength."""

    name: str
    background: str  # "lab" or "wild"
    splits: dict  # split name -> tuple of BVH file stems
    labels_3d: dict  # split name -> whether samples keep their 3D label
    yaw_deg: Range
    camera_height_mm: Range
    distance_mm: Range
    roll_deg: Range
    person_fraction: Range
    optics_sigma: Range
    blur_prob: float
    blur_px: Range
    noise_sigma: Range
    jpeg_prob: float
    jpeg_quality: Range
    shadow: Range

    def __post_init__(self) -> None:
        if self.background not in ("lab", "wild"):
            raise ConfigError(f"background must be 'lab' or 'wild', got {self.background!r}")
        if set(self.splits) != set(self.labels_3d):
            raise ConfigError(f"domain {self.name}: splits {sorted(self.splits)} and labels_3d "
                              f"{sorted(self.labels_3d)} must name the same splits")
        seen: dict[str, str] = {}
        for split, files in self.splits.items():
            if not files:
                raise ConfigError(f"domain {self.name}: split {split!r} has no files")
            for stem in files:
                if stem in seen:
                    raise ConfigError(f"domain {self.name}: {stem} is in both {seen[stem]!r} and {split!r}; "
                                      "fix: hold out whole files")
                seen[stem] = split
        _check_range("yaw_deg", self.yaw_deg, -180.0, 180.0)
        _check_range("camera_height_mm", self.camera_height_mm, 0.0)
        _check_range("distance_mm", self.distance_mm, 500.0)
        _check_range("roll_deg", self.roll_deg, -45.0, 45.0)
        _check_range("person_fraction", self.person_fraction, 0.05, 1.0 / DEFAULT_CROP_PADDING)
        _check_range("optics_sigma", self.optics_sigma, 0.0)
        _check_range("blur_px", self.blur_px, 0.0)
        _check_range("noise_sigma", self.noise_sigma, 0.0)
        _check_range("jpeg_quality", self.jpeg_quality, 1.0, 100.0)
        _check_range("shadow", self.shadow, 0.0, 1.0)
        for name in ("blur_prob", "jpeg_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be a probability in [0, 1], got {getattr(self, name)}")


DOMAINS: Final[dict[str, DomainSpec]] = {
    "lab": DomainSpec(
        name="lab", background="lab",
        splits={"train": ("02_01", "02_03", "01_01"), "test": ("09_01",)},
        labels_3d={"train": True, "test": True},
        # Human3.6M-like: tripod cameras at chest-to-head height a few metres away, frontal half.
        yaw_deg=(-60.0, 60.0), camera_height_mm=(1200.0, 1800.0), distance_mm=(3500.0, 6000.0),
        roll_deg=(0.0, 0.0), person_fraction=(0.55, 0.78),
        optics_sigma=(0.3, 0.7), blur_prob=0.1, blur_px=(1.0, 4.0), noise_sigma=(0.0, 3.0),
        jpeg_prob=0.0, jpeg_quality=(90.0, 95.0), shadow=(0.25, 0.5)),
    "wild": DomainSpec(
        name="wild", background="wild",
        splits={"train": ("05_02", "06_15", "02_05", "01_06"),
                "test": ("131_01", "131_02", "131_03", "02_04")},
        labels_3d={"train": False, "test": True},
        # Anything goes: all around the person, from the ground to a first floor, handheld roll.
        yaw_deg=(-180.0, 180.0), camera_height_mm=(300.0, 3500.0), distance_mm=(2000.0, 10000.0),
        roll_deg=(-10.0, 10.0), person_fraction=(0.4, 0.78),
        optics_sigma=(0.3, 1.2), blur_prob=0.4, blur_px=(1.0, 9.0), noise_sigma=(0.0, 8.0),
        jpeg_prob=0.5, jpeg_quality=(35.0, 95.0), shadow=(0.0, 0.0)),
}


@dataclass(frozen=True)
class SynthConfig:
    """Generator settings shared by both domains. `fps` resamples the 120 fps mocap before frames
    are drawn (consecutive 120 fps frames are near-identical); `degrade` turns blur/noise/JPEG off
    for clean checks; `repose_limbs` the probability that each limb of a `train` sample is re-posed
    (repose.py: poses the few training takes lack; test samples always keep the mocap's pose) and
    `fold_elbows` the probability that each elbow of a `train` sample is folded (repose.py); `faces`
    draws eyes, brows, nose and a neckline on every figure (body.py), which tell its front from its
    back, and changes no other pixel or draw of a sample."""

    mocap_dir: str = str(DEFAULT_MOCAP_DIR)
    width: int = 320
    height: int = 320
    fps: float = 30.0
    degrade: bool = True
    repose_limbs: float = 0.0
    fold_elbows: float = 0.0
    faces: bool = False
    domains: dict = field(default_factory=lambda: dict(DOMAINS))

    def __post_init__(self) -> None:
        if not (32 <= self.width <= 4096 and 32 <= self.height <= 4096):
            raise ConfigError(f"image size must be 32..4096 px per side, got {self.width}x{self.height}")
        if not 1.0 <= self.fps <= cmu.CMU_FPS:
            raise ConfigError(f"fps must be 1..{cmu.CMU_FPS:g} (the mocap is {cmu.CMU_FPS:g} fps), got {self.fps}")
        for name in ("repose_limbs", "fold_elbows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be a probability in [0, 1], got {value!r}")
        if not isinstance(self.faces, bool):
            raise ConfigError(f"faces must be true or false, got {self.faces!r}")
        for name, spec in self.domains.items():
            if not isinstance(spec, DomainSpec) or spec.name != name:
                raise ConfigError(f"domains must map each name to its DomainSpec, got {name!r} -> {spec!r}")


def split_files(domain: str, split: str, config: SynthConfig | None = None) -> tuple[str, ...]:
    """The BVH file stems of `domain`/`split`."""
    return _spec(domain, split, config or SynthConfig()).splits[split]


def _spec(domain: str, split: str, config: SynthConfig) -> DomainSpec:
    if domain not in config.domains:
        raise ConfigError(f"unknown domain {domain!r}; valid domains are {sorted(config.domains)}")
    spec = config.domains[domain]
    if split not in spec.splits:
        raise ConfigError(f"unknown split {split!r} of domain {domain!r}; valid splits are {sorted(spec.splits)}")
    return spec


@functools.lru_cache(maxsize=32)
def _load(path: str, fps: float) -> cmu.CmuMotion:
    return cmu.load_motion(path, fps=fps)


def _motions(spec: DomainSpec, split: str, config: SynthConfig) -> list[cmu.CmuMotion]:
    return [_load(str(Path(config.mocap_dir) / f"{stem}.bvh"), config.fps) for stem in spec.splits[split]]


def load_motions(domain: str, split: str, config: SynthConfig | None = None) -> list[cmu.CmuMotion]:
    """The motions of `domain`/`split`, parsed once per process and kept: call it before forking
    data loader workers and they inherit the parsed files instead of each parsing them again."""
    config = config or SynthConfig()
    return _motions(_spec(domain, split, config), split, config)


def _frame_camera(pose: np.ndarray, spec: DomainSpec, config: SynthConfig, rng: np.random.Generator) -> Camera:
    """A camera around the posed figure whose joints' box's longer side is `person_fraction` of the
    image's shorter side, placed off-centre at random where its padded square crop still fits."""
    w, h = config.width, config.height
    lo, hi = pose.min(axis=0), pose.max(axis=0)
    target = (lo + hi) / 2.0
    facing = body.facing(pose)
    yaw = rng.uniform(*spec.yaw_deg)
    height = rng.uniform(*spec.camera_height_mm)
    distance = rng.uniform(*spec.distance_mm)
    roll = rng.uniform(*spec.roll_deg)
    fraction = rng.uniform(*spec.person_fraction)
    probe = Camera.orbit(target, facing, distance, height, yaw, 1.0, w, h, roll_deg=roll)
    cam = probe.world_to_camera(pose)
    slopes = cam[:, :2] / cam[:, 2:3]
    extent = np.maximum(np.ptp(slopes, axis=0), 1e-3)
    focal = fraction * min(w, h) / float(extent.max())
    # Shift the view so the person lands at a random place where the padded crop still fits.
    side = DEFAULT_CROP_PADDING * float(extent.max()) * focal
    room = np.maximum((np.array([w, h]) - side) / 2.0 - 2.0, 0.0)
    shift = rng.uniform(-1.0, 1.0, 2) * room
    middle = (slopes.min(axis=0) + slopes.max(axis=0)) / 2.0  # box centre's offset from the view axis
    depth = float(np.median(cam[:, 2]))
    offset_cam = np.array([*(middle - shift / focal) * depth, 0.0])
    new_target = target + probe.rotation.T @ offset_cam
    eye = probe.position
    return Camera.look_at(eye, new_target, focal, w, h, roll)


def _effects(spec: DomainSpec, config: SynthConfig, rng: np.random.Generator) -> Effects:
    draws = rng.uniform(size=8)  # always drawn, so turning degradation off changes nothing else
    if not config.degrade:
        return Effects(optics_sigma=0.0)
    blur = spec.blur_px[0] + draws[1] * (spec.blur_px[1] - spec.blur_px[0]) if draws[0] < spec.blur_prob else 0.0
    jpeg = int(spec.jpeg_quality[0] + draws[5] * (spec.jpeg_quality[1] - spec.jpeg_quality[0])) \
        if draws[4] < spec.jpeg_prob else 0
    return Effects(blur_px=float(blur), blur_angle_deg=float(draws[2] * 180.0),
                   optics_sigma=float(spec.optics_sigma[0] + draws[6] * (spec.optics_sigma[1] - spec.optics_sigma[0])),
                   noise_sigma=float(spec.noise_sigma[0] + draws[3] * (spec.noise_sigma[1] - spec.noise_sigma[0])),
                   jpeg_quality=jpeg)


@dataclass(frozen=True, eq=False)
class Labels:
    """A sample's labels without its pixels (see `labels`): `joints2d` `(16, 2)` image px,
    `joints3d_cam` `(16, 3)` camera-frame mm or None (withheld), `visible` `(16,)`, `box` `(4,)` xyxy
    of the joints, `source`/`frame` the mocap file and frame."""

    joints2d: np.ndarray
    joints3d_cam: np.ndarray | None
    visible: np.ndarray
    box: np.ndarray
    source: str
    frame: int
    intrinsics: np.ndarray | None = None  # (3, 3) the camera matrix


@dataclass(frozen=True, eq=False)
class _Scene:
    spec: DomainSpec
    rng: np.random.Generator  # positioned after the camera draw: appearance etc. come next
    motion: cmu.CmuMotion
    frame: int
    shape: body.BodyShape
    pose: np.ndarray
    extras: np.ndarray
    camera: Camera


def _scene(domain: str, split: str, seed: int, index: int, config: SynthConfig) -> _Scene:
    """The person, pose and camera of sample `index`: the draws every sample starts with."""
    spec = _spec(domain, split, config)
    if seed < 0 or index < 0:
        raise ConfigError(f"seed and index must be >= 0, got seed {seed}, index {index}")
    # One stream per (seed, domain, split, index): names hashed stably (not Python's salted hash()).
    rng = np.random.default_rng([seed, zlib.crc32(domain.encode()), zlib.crc32(split.encode()), index])
    motions = _motions(spec, split, config)
    # Files weighted by the square root of their length: long takes give more, short ones still count.
    weights = np.sqrt([m.num_frames for m in motions])
    motion = motions[rng.choice(len(motions), p=weights / weights.sum())]
    frame = int(rng.integers(motion.num_frames))
    shape = body.sample_shape(rng)
    if config.faces:
        shape = dataclasses.replace(shape, face=True)
    pose, extras = body.retarget(motion.joints[frame], motion.extras[frame], shape, motion.floor_y)
    if split == "train" and config.repose_limbs > 0.0:
        # Its own stream, so every other draw of the sample (camera, looks) is the same with or without.
        repose_rng = np.random.default_rng([seed, zlib.crc32(domain.encode()), zlib.crc32(split.encode()), index,
                                            zlib.crc32(b"repose")])
        pose, extras = repose.repose_limbs(pose, extras, config.repose_limbs, repose_rng)
    if split == "train" and config.fold_elbows > 0.0:
        fold_rng = np.random.default_rng([seed, zlib.crc32(domain.encode()), zlib.crc32(split.encode()), index,
                                          zlib.crc32(b"fold")])
        pose, extras = repose.fold_elbows(pose, extras, config.fold_elbows, fold_rng)
    camera = _frame_camera(pose, spec, config, rng)
    return _Scene(spec, rng, motion, frame, shape, pose, extras, camera)


def labels(domain: str, split: str, seed: int, index: int, config: SynthConfig | None = None) -> Labels:
    """The labels of `sample(domain, split, seed, index, config)` without rendering it (about a
    millisecond instead of ten): evaluation reads a test set's ground truth this way."""
    config = config or SynthConfig()
    scene = _scene(domain, split, seed, index, config)
    pose_cam = scene.camera.world_to_camera(scene.pose)
    joints2d = scene.camera.project(pose_cam)
    visible = np.all((joints2d >= -0.5) & (joints2d < np.array([config.width, config.height]) - 0.5), axis=1)
    box = np.concatenate([joints2d.min(axis=0), joints2d.max(axis=0)])
    return Labels(joints2d=joints2d, joints3d_cam=pose_cam if scene.spec.labels_3d[split] else None,
                  visible=visible, box=box, source=scene.motion.name, frame=scene.frame,
                  intrinsics=scene.camera.intrinsics)


def sample(domain: str, split: str, seed: int, index: int, config: SynthConfig | None = None,
           draw_figure: bool = True) -> RenderedSample:
    """Sample `index` of `domain`/`split` under `seed`: a function of these alone (byte-identical on
    every call). Wild training samples come without their 3D label."""
    config = config or SynthConfig()
    scene = _scene(domain, split, seed, index, config)
    spec, rng, motion, pose, camera = scene.spec, scene.rng, scene.motion, scene.pose, scene.camera
    appearance = sample_appearance(rng)
    if spec.background == "lab":
        background = backgrounds.lab(camera, motion.floor_y, rng.uniform(4000.0, 9000.0) + np.linalg.norm(
            camera.position[[0, 2]] - pose[:, [0, 2]].mean(axis=0)), rng)
    else:
        background = backgrounds.wild(config.height, config.width, rng)
    effects = _effects(spec, config, rng)
    shadow = rng.uniform(*spec.shadow)
    result = render(pose, scene.extras, scene.shape, appearance, camera, background, effects, rng,
                    floor_y=motion.floor_y, shadow=shadow, draw_figure=draw_figure)
    result = RenderedSample(result.image, result.joints2d, result.joints3d_cam, result.visible, result.occluded,
                            result.box, result.intrinsics, result.mask, source=motion.name, frame=scene.frame)
    return result if spec.labels_3d[split] else result.without_3d()


def generate(domain: str, split: str, count: int, seed: int, config: SynthConfig | None = None
             ) -> Iterator[RenderedSample]:
    """`count` samples of `domain`/`split` ("lab"/"wild", "train"/"test"), deterministic under `seed`:
    sample i is `sample(domain, split, seed, i)`, so a shorter run is a prefix of a longer one."""
    config = config or SynthConfig()
    _spec(domain, split, config)
    if count < 0 or seed < 0:
        raise ConfigError(f"count and seed must be >= 0, got count {count}, seed {seed}")
    log.info("generating %d %s/%s samples (seed %d) from %s", count, domain, split, seed,
             ", ".join(split_files(domain, split, config)))
    return (sample(domain, split, seed, index, config) for index in range(count))
