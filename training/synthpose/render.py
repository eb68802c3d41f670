"""Render posed synthetic people into an image with exact 2D/3D labels, on the CPU.

This is SynthPose's image maker: a figure of shaded capsules and ellipsoids (body.py, raster.py),
randomly dressed and lit, composited over a procedural background, then degraded by motion blur,
sensor noise and JPEG like real footage. Labels come from the same camera that renders the pixels.
"""

from __future__ import annotations

import functools
import statistics
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from wildpose.errors import ConfigError
from wildpose.training import joints
from wildpose.training.synthpose import body, raster
from wildpose.training.synthpose.camera import Camera

DEFAULT_CROP_PADDING = 1.25  # stream/crop.py: the reference crops MPII at 1.25 x the person's box

# Skin tones from light to dark (RGB 0..1); a figure's tone is a random point between them.
_SKIN_LIGHT = np.array([0.93, 0.78, 0.68])
_SKIN_DARK = np.array([0.33, 0.22, 0.16])
_HAIR = np.array([[0.05, 0.04, 0.03], [0.25, 0.15, 0.08], [0.45, 0.3, 0.15], [0.8, 0.65, 0.4],
                  [0.6, 0.6, 0.6], [0.5, 0.2, 0.08]])
_FEATURES = np.array([0.09, 0.06, 0.05])  # eyes and brows: dark brown
_TROUSERS = np.array([[0.15, 0.22, 0.38], [0.08, 0.08, 0.09], [0.35, 0.35, 0.36], [0.62, 0.55, 0.4],
                      [0.25, 0.3, 0.2]])


@dataclass(frozen=True, eq=False)
class Appearance:
    """Clothing and light: `albedo` `(6, 3)` RGB in [0, 1] per body.SKIN..FEATURES material, `light` unit
    direction towards the light in the WORLD frame, `ambient`/`diffuse` weights, `tint` RGB gain."""

    albedo: np.ndarray
    light: np.ndarray
    ambient: float
    diffuse: float
    tint: np.ndarray

    def __post_init__(self) -> None:
        if np.asarray(self.albedo).shape != (body.NUM_MATERIALS, 3):
            raise ConfigError(f"albedo must be ({body.NUM_MATERIALS}, 3), got {np.asarray(self.albedo).shape}")
        if not 0.0 <= self.ambient <= 1.0 or not 0.0 <= self.diffuse <= 1.5:
            raise ConfigError(f"light weights out of range: ambient {self.ambient} (0..1), "
                              f"diffuse {self.diffuse} (0..1.5)")


def sample_appearance(rng: np.random.Generator) -> Appearance:
    """Random clothes (shirt any colour, trousers mostly denim/black/grey/khaki), skin, hair, light."""
    albedo = np.empty((body.NUM_MATERIALS, 3))
    albedo[body.SKIN] = _SKIN_LIGHT + (_SKIN_DARK - _SKIN_LIGHT) * rng.uniform() + rng.normal(0, 0.02, 3)
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(0, 230), rng.uniform(30, 245)]]], np.uint8)
    albedo[body.SHIRT] = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0] / 255.0
    if rng.random() < 0.7:
        albedo[body.TROUSERS] = _TROUSERS[rng.integers(len(_TROUSERS))] * rng.uniform(0.8, 1.2)
    else:
        albedo[body.TROUSERS] = rng.uniform(0.05, 0.9, 3)
    albedo[body.SHOES] = rng.uniform(0.05, 0.25) if rng.random() < 0.7 else rng.uniform(0.05, 0.95, 3)
    albedo[body.HAIR] = _HAIR[rng.integers(len(_HAIR))] * rng.uniform(0.8, 1.2)
    albedo[body.FEATURES] = _FEATURES
    azimuth, elevation = rng.uniform(0, 2 * np.pi), rng.uniform(np.radians(20), np.radians(75))
    light = np.array([np.cos(elevation) * np.sin(azimuth), np.sin(elevation), np.cos(elevation) * np.cos(azimuth)])
    return Appearance(albedo=np.clip(albedo, 0.0, 1.0), light=light, ambient=float(rng.uniform(0.25, 0.5)),
                      diffuse=float(rng.uniform(0.5, 0.85)), tint=rng.uniform(0.9, 1.1, 3))


@dataclass(frozen=True)
class Effects:
    """Image degradations: linear motion blur of `blur_px` pixels at `blur_angle_deg` (0: none),
    a Gaussian optics blur `optics_sigma` px, Gaussian sensor noise `noise_sigma` (in 0..255 levels)
    and JPEG re-encoding at `jpeg_quality` (0: none)."""

    blur_px: float = 0.0
    blur_angle_deg: float = 0.0
    optics_sigma: float = 0.5
    noise_sigma: float = 0.0
    jpeg_quality: int = 0

    def __post_init__(self) -> None:
        if self.blur_px < 0 or self.optics_sigma < 0 or self.noise_sigma < 0:
            raise ConfigError("blur_px, optics_sigma and noise_sigma must be >= 0")
        if not (self.jpeg_quality == 0 or 1 <= self.jpeg_quality <= 100):
            raise ConfigError(f"jpeg_quality must be 0 (off) or 1..100, got {self.jpeg_quality}")


class Crop(NamedTuple):
    """A square crop: `image` `(S, S, 3)` uint8 RGB, `joints2d` `(16, 2)` crop pixels (centres at
    integers), `affine` `(2, 3)` full image -> crop map."""

    image: np.ndarray
    joints2d: np.ndarray
    affine: np.ndarray


def crop_affine(box: np.ndarray, size: int, padding: float = DEFAULT_CROP_PADDING) -> np.ndarray:
    """`(2, 3)` map from image pixels into a `size` crop of the square `padding` x the longer side of
    `box` (xyxy), sharing its centre: the square's edges land on crop pixel edges -0.5 and size-0.5,
    as in stream/crop.py and heatmaps.py."""
    x0, y0, x1, y1 = np.asarray(box, np.float64)
    side = max(x1 - x0, y1 - y0, 1.0) * padding
    left, top = (x0 + x1 - side) / 2.0, (y0 + y1 - side) / 2.0
    scale = size / side
    return np.array([[scale, 0.0, -0.5 - left * scale], [0.0, scale, -0.5 - top * scale]])


@dataclass(frozen=True, eq=False)
class RenderedSample:
    """One synthetic image with its labels.

    `image` `(H, W, 3)` uint8 RGB; `joints2d` `(16, 2)` image pixels (centres at integers);
    `joints3d_cam` `(16, 3)` mm in the camera frame (x right, y down, z forward), or None where the
    split withholds 3D labels; `visible` `(16,)` joint inside the image; `occluded` `(16,)` joint's
    pixel shows another body part (self-occlusion); `box` `(4,)` tight xyxy box of the 16 joints;
    `intrinsics` `(3, 3)` K; `mask` `(H, W)` figure pixels; `source`/`frame` the mocap file and frame.
    """

    image: np.ndarray
    joints2d: np.ndarray
    joints3d_cam: np.ndarray | None
    visible: np.ndarray
    occluded: np.ndarray
    box: np.ndarray
    intrinsics: np.ndarray
    mask: np.ndarray
    source: str = ""
    frame: int = -1

    @property
    def has_3d(self) -> bool:
        return self.joints3d_cam is not None

    def without_3d(self) -> RenderedSample:
        """The same sample with its 3D label withheld (a 2D-only training sample)."""
        return RenderedSample(self.image, self.joints2d, None, self.visible, self.occluded, self.box,
                              self.intrinsics, self.mask, self.source, self.frame)

    def crop(self, size: int = 256, padding: float = DEFAULT_CROP_PADDING) -> Crop:
        """Square crop around the joints' box with `padding`, resized to `size`; outside the image is
        black, as in the stream's crops."""
        if size <= 0 or padding <= 0:
            raise ConfigError(f"crop size and padding must be positive, got {size} and {padding}")
        affine = crop_affine(self.box, size, padding)
        image = cv2.warpAffine(self.image, affine, (size, size), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        return Crop(image=image, joints2d=self.joints2d @ affine[:, :2].T + affine[:, 2], affine=affine)


def _shadow(camera: Camera, pose_world: np.ndarray, floor_y: float, strength: float) -> np.ndarray:
    """`(H, W, 1)` float32 darkening factor of a soft contact shadow on the floor under the figure."""
    h, w = camera.height, camera.width
    small = 4  # draw at quarter resolution: the shadow is blurry anyway
    mask = np.zeros((h // small + 1, w // small + 1), np.float32)
    for name, radius in (("r_ankle", 160.0), ("l_ankle", 160.0), ("pelvis", 300.0)):
        p = pose_world[joints.INDEX[name]]
        height = p[1] - floor_y
        if height > 600.0 and name != "pelvis":
            continue
        centre = np.array([p[0], floor_y, p[2]])
        ring = centre + radius * np.array([[1, 0, 0], [-1, 0, 0], [0, 0, 1], [0, 0, -1]], np.float64)
        cam = camera.world_to_camera(np.vstack([centre, ring]))
        if np.any(cam[:, 2] < 100.0):
            continue
        px = camera.project(cam) / small
        axes = np.ptp(px[1:], axis=0) / 2.0
        weight = float(np.clip(1.0 - height / (1800.0 if name == "pelvis" else 600.0), 0.0, 1.0))
        cv2.ellipse(mask, ((float(px[0, 0]), float(px[0, 1])), (max(2 * float(axes[0]), 1.0),
                                                                 max(2 * float(axes[1]), 1.0)), 0.0), weight, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), 2.0)
    mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR)
    return (1.0 - strength * np.clip(mask, 0.0, 1.0))[..., None]


_NOISE_LEVELS = 1 << 16


@functools.cache
def _normal_table() -> np.ndarray:
    """Standard normal quantiles at the midpoints of 65536 equal bins: Gaussian noise by table
    lookup of uniform 16-bit integers, 4x cheaper than drawing normals (tails stop at 4.3 sigma)."""
    dist = statistics.NormalDist()
    return np.array([dist.inv_cdf((i + 0.5) / _NOISE_LEVELS) for i in range(_NOISE_LEVELS)], np.float32)


def _degrade(image: np.ndarray, effects: Effects, rng: np.random.Generator) -> np.ndarray:
    """float32 RGB 0..255 -> uint8 after optics blur, motion blur, noise and JPEG."""
    if effects.optics_sigma > 0:
        image = cv2.GaussianBlur(image, (0, 0), effects.optics_sigma)
    if effects.blur_px >= 1.0:
        length = int(np.ceil(effects.blur_px)) | 1
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0
        rotation = cv2.getRotationMatrix2D(((length - 1) / 2.0, (length - 1) / 2.0), effects.blur_angle_deg, 1.0)
        kernel = cv2.warpAffine(kernel, rotation, (length, length))
        image = cv2.filter2D(image, -1, kernel / max(float(kernel.sum()), 1e-6))
    if effects.noise_sigma > 0:
        uniform = rng.integers(0, _NOISE_LEVELS, image.shape, dtype=np.uint16)
        image = image + np.take(_normal_table(), uniform) * np.float32(effects.noise_sigma)
    out = np.clip(image + 0.5, 0, 255).astype(np.uint8)
    if effects.jpeg_quality:
        # OpenCV's codec assumes BGR when it converts to YCbCr, so hand it BGR.
        ok, data = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(effects.jpeg_quality)])
        if ok:
            out = np.ascontiguousarray(cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1])
    return out


@dataclass(frozen=True, eq=False)
class Figure:
    """One person to render: `(16, 3)` joints and `(4, 3)` extras in world mm, already retargeted to
    `shape`, dressed by `appearance`."""

    pose_world: np.ndarray
    extras_world: np.ndarray
    shape: body.BodyShape
    appearance: Appearance


def render(pose_world: np.ndarray, extras_world: np.ndarray, shape: body.BodyShape, appearance: Appearance,
           camera: Camera, background: np.ndarray, effects: Effects = Effects(), rng: np.random.Generator | None = None,
           floor_y: float | None = None, shadow: float = 0.0, draw_figure: bool = True) -> RenderedSample:
    """Render a figure of `shape` posed at `(16, 3)` joints / `(4, 3)` extras (world mm, already
    retargeted to `shape`) over `background` `(H, W, 3)` uint8 RGB, seen by `camera`.

    `shadow` (0..1) darkens the floor at `floor_y` under the feet (for scenes with a floor).
    `draw_figure=False` renders the same scene without the person (for checks). `rng` drives the
    noise only; the same inputs and rng state give byte-identical images.
    """
    return render_people([Figure(pose_world, extras_world, shape, appearance)], camera, background, effects, rng,
                         floor_y, shadow, draw_figure)[0]


def render_people(figures: list[Figure], camera: Camera, background: np.ndarray, effects: Effects = Effects(),
                  rng: np.random.Generator | None = None, floor_y: float | None = None, shadow: float = 0.0,
                  draw_figures: bool = True) -> list[RenderedSample]:
    """Render several figures into one image, nearer ones hiding farther ones; one sample per figure,
    all sharing the image. The first figure's light lights the scene. A joint is `occluded` when its
    pixel shows another of its own parts or another figure; `mask` is the figure's visible pixels."""
    if background.shape != (camera.height, camera.width, 3) or background.dtype != np.uint8:
        raise ConfigError(f"background must be ({camera.height}, {camera.width}, 3) uint8 to match the camera, "
                          f"got {background.shape} {background.dtype}")
    if not figures:
        raise ConfigError("render_people needs at least one figure")
    rng = rng if rng is not None else np.random.default_rng(0)
    poses_cam = [camera.world_to_camera(f.pose_world) for f in figures]
    named, owner = [], []
    for number, (figure, pose_cam) in enumerate(zip(figures, poses_cam, strict=True)):
        parts = body.primitives(pose_cam, camera.world_to_camera(figure.extras_world), figure.shape)
        named += parts
        owner += [number] * len(parts)
    owner = np.array(owner)
    light_cam = camera.rotation @ figures[0].appearance.light
    image = background.astype(np.float32)
    if shadow > 0 and floor_y is not None:
        for figure in figures:
            image *= _shadow(camera, figure.pose_world, floor_y, shadow)
    buffers = raster.rasterise([p for _, p in named], camera, light_cam)
    mask = buffers.index >= 0
    if draw_figures:
        materials = np.array([p.material for _, p in named])
        seen = buffers.index[mask]
        # Lambert with a little wrap-around so the unlit side is not flat black.
        lambert = np.clip((buffers.shade[mask] + 0.2) / 1.2, 0.0, 1.0)
        if len(figures) == 1:
            appearance = figures[0].appearance
            light = appearance.ambient + appearance.diffuse * lambert
            colour = appearance.albedo[materials[seen]] * light[:, None] * appearance.tint
        else:
            ambient = np.array([f.appearance.ambient for f in figures])[owner[seen]]
            diffuse = np.array([f.appearance.diffuse for f in figures])[owner[seen]]
            albedo = np.stack([f.appearance.albedo for f in figures])[owner[seen], materials[seen]]
            tint = np.stack([f.appearance.tint for f in figures])[owner[seen]]
            colour = albedo * (ambient + diffuse * lambert)[:, None] * tint
        image[mask] = np.clip(colour * 255.0, 0, 255)
    image = _degrade(image, effects, rng)

    h, w = camera.height, camera.width
    names = [name for name, _ in named]
    samples = []
    for number, pose_cam in enumerate(poses_cam):
        joints2d = camera.project(pose_cam)
        visible = np.all((joints2d >= -0.5) & (joints2d < np.array([w, h]) - 0.5), axis=1)
        occluded = np.zeros(joints.NUM_JOINTS, bool)
        for j, name in enumerate(joints.NAMES):
            if not visible[j]:
                continue
            u, v = np.clip(np.round(joints2d[j]).astype(int), 0, [w - 1, h - 1])
            part = buffers.index[v, u]
            occluded[j] = part >= 0 and (owner[part] != number or names[part] not in body.JOINT_PARTS[name])
        box = np.concatenate([joints2d.min(axis=0), joints2d.max(axis=0)])
        own = mask & (owner[np.maximum(buffers.index, 0)] == number) if len(figures) > 1 else mask
        samples.append(RenderedSample(image=image, joints2d=joints2d, joints3d_cam=pose_cam, visible=visible,
                                      occluded=occluded, box=box, intrinsics=camera.intrinsics,
                                      mask=own if draw_figures else np.zeros_like(mask)))
    return samples
