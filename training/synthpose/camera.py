"""A pinhole camera placed around a mocap subject, with our camera axes, for rendering and labels.

SynthPose's 3D labels must be in the frame the network predicts in (x right, y down, z forward, mm;
see pose3d.py), and its 2D labels must use the project's pixel convention (integer coordinates are
pixel centres, as in heatmaps.py and stream/crop.py). Both come from this one class, so the
rendered figure and its labels cannot disagree. The world is the BVH's: y-up, right-handed, mm.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from wildpose.errors import ConfigError

WORLD_UP = np.array([0.0, 1.0, 0.0])


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _rotation_about(axis: np.ndarray, degrees: float) -> np.ndarray:
    """3x3 right-handed rotation by `degrees` about the unit `axis` (Rodrigues)."""
    a = np.radians(degrees)
    x, y, z = _unit(np.asarray(axis, np.float64))
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + np.sin(a) * k + (1.0 - np.cos(a)) * (k @ k)


@dataclass(frozen=True, eq=False)  # arrays inside: compare fields explicitly
class Camera:
    """Pinhole camera: `X_cam = rotation @ X_world + translation` (mm), camera axes x right, y down,
    z forward; pixel `u = fx * x / z + cx`, `v = fy * y / z + cy` with pixel centres at integers, so
    the image centre of a `width` x `height` image is ((width - 1) / 2, (height - 1) / 2)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))  # (3, 3) world -> camera
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))  # (3,) mm

    def __post_init__(self) -> None:
        if not (self.fx > 0 and self.fy > 0):
            raise ConfigError(f"camera focal lengths must be positive pixels, got fx={self.fx}, fy={self.fy}; "
                              "fix: pass a focal length in pixels (e.g. 1.2 x the image width)")
        if not (self.width > 0 and self.height > 0):
            raise ConfigError(f"camera image size must be positive, got {self.width}x{self.height}")
        rotation = np.asarray(self.rotation, np.float64)
        translation = np.asarray(self.translation, np.float64)
        if rotation.shape != (3, 3) or translation.shape != (3,):
            raise ConfigError(f"camera extrinsics must be a (3, 3) rotation and a (3,) translation, got "
                              f"{rotation.shape} and {translation.shape}")
        if not (np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-6) and np.linalg.det(rotation) > 0):
            raise ConfigError("camera rotation must be a proper rotation matrix (orthonormal, det +1); "
                              "fix: build it with Camera.look_at or Camera.orbit")
        object.__setattr__(self, "rotation", rotation)
        object.__setattr__(self, "translation", translation)

    @classmethod
    def look_at(cls, eye: np.ndarray, target: np.ndarray, focal_px: float, width: int, height: int,
                roll_deg: float = 0.0) -> Camera:
        """A camera at `eye` (world mm) looking at `target`, image rows downward, rolled by `roll_deg`
        about the viewing axis (positive turns the scene counter-clockwise on screen)."""
        eye, target = np.asarray(eye, np.float64), np.asarray(target, np.float64)
        forward = target - eye
        if np.linalg.norm(forward) < 1e-6:
            raise ConfigError("camera eye and target coincide; fix: place the camera away from the subject")
        forward = _unit(forward)
        right = np.cross(forward, WORLD_UP)
        if np.linalg.norm(right) < 1e-6:
            raise ConfigError("camera looks straight up or down, so its roll is undefined; "
                              "fix: keep the pitch within (-90, 90) degrees")
        right = _unit(right)
        down = np.cross(forward, right)  # right x down = forward: a right-handed camera frame
        rotation = np.stack([right, down, forward])
        if roll_deg:
            rotation = _rotation_about(np.array([0.0, 0.0, 1.0]), -roll_deg) @ rotation
        return cls(fx=focal_px, fy=focal_px, cx=(width - 1) / 2.0, cy=(height - 1) / 2.0, width=width,
                   height=height, rotation=rotation, translation=-rotation @ eye)

    @classmethod
    def orbit(cls, target: np.ndarray, facing: np.ndarray, distance_mm: float, height_mm: float,
              yaw_deg: float, focal_px: float, width: int, height: int, pitch_deg: float = 0.0,
              roll_deg: float = 0.0) -> Camera:
        """A camera `distance_mm` (horizontally) from `target` at height `height_mm` (world y), looking
        at it. `yaw_deg` 0 puts it on the subject's `facing` direction (a frontal view); +90 on the
        subject's left (right-handed y-up world, so left = facing rotated +90 about y). `pitch_deg`
        tilts the view up (+) or down (-) beyond looking at the target."""
        if not distance_mm > 0:
            raise ConfigError(f"camera distance must be positive mm, got {distance_mm}")
        facing = np.asarray(facing, np.float64) * np.array([1.0, 0.0, 1.0])
        if np.linalg.norm(facing) < 1e-6:
            raise ConfigError("subject facing direction is vertical; fix: pass a horizontal facing vector")
        direction = _rotation_about(WORLD_UP, yaw_deg) @ _unit(facing)
        target = np.asarray(target, np.float64)
        eye = np.array([target[0] + distance_mm * direction[0], height_mm, target[2] + distance_mm * direction[2]])
        camera = cls.look_at(eye, target, focal_px, width, height, roll_deg)
        if pitch_deg:
            rotation = _rotation_about(np.array([1.0, 0.0, 0.0]), -pitch_deg) @ camera.rotation
            camera = cls(fx=camera.fx, fy=camera.fy, cx=camera.cx, cy=camera.cy, width=width, height=height,
                         rotation=rotation, translation=-rotation @ eye)
        return camera

    @property
    def intrinsics(self) -> np.ndarray:
        """`(3, 3)` K in pixels."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def position(self) -> np.ndarray:
        """`(3,)` camera centre in world mm."""
        return -self.rotation.T @ self.translation

    def world_to_camera(self, points: np.ndarray) -> np.ndarray:
        """`(..., 3)` world mm -> camera frame mm (x right, y down, z forward)."""
        return np.asarray(points, np.float64) @ self.rotation.T + self.translation

    def camera_to_world(self, points: np.ndarray) -> np.ndarray:
        """`(..., 3)` camera frame mm -> world mm; inverse of `world_to_camera`."""
        return (np.asarray(points, np.float64) - self.translation) @ self.rotation

    def project(self, points_cam: np.ndarray) -> np.ndarray:
        """`(..., 3)` camera-frame mm (z > 0) -> `(..., 2)` pixels."""
        points_cam = np.asarray(points_cam, np.float64)
        z = points_cam[..., 2]
        return np.stack([self.fx * points_cam[..., 0] / z + self.cx, self.fy * points_cam[..., 1] / z + self.cy], -1)

    def back_project(self, pixels: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """`(..., 2)` pixels and `(...)` depth z (mm) -> `(..., 3)` camera-frame mm; inverse of `project`."""
        pixels, depth = np.asarray(pixels, np.float64), np.asarray(depth, np.float64)
        x = (pixels[..., 0] - self.cx) / self.fx * depth
        y = (pixels[..., 1] - self.cy) / self.fy * depth
        return np.stack([x, y, depth], -1)

    def ray_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """Per column `(W,)` and per row `(H,)` ray slopes x/z and y/z of pixel centres (z = 1 rays)."""
        return ((np.arange(self.width) - self.cx) / self.fx, (np.arange(self.height) - self.cy) / self.fy)
