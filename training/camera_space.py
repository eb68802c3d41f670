"""Where a person is: camera intrinsics, and the root translation that places a metric skeleton in
front of the camera.

The network gives a root-relative skeleton; its metric size comes from the skeleton-sum prior
(pose3d.py). With the camera's intrinsics, the translation T that makes that skeleton project onto
the 2D joints is the solution of a linear least-squares problem (as in VNect and similar realtime
systems): for each joint j with undistorted normalised image coordinates (u_j, v_j) and
root-relative position (X_j, Y_j, Z_j),

    Tx - u_j Tz = u_j Z_j - X_j        Ty - v_j Tz = v_j Z_j - Y_j,

each row weighted by the joint's confidence. T is the root (pelvis) in camera coordinates, in the
skeleton's units; a skeleton scaled by the prior puts the person at the distance where a person of
that size would look that big, so the depth inherits the prior's error for people of other sizes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from wildpose.errors import ConfigError

DEFAULT_FOV_DEG = 60.0  # horizontal field of view assumed when none is given (a typical webcam: 55-70)
_MIN_WEIGHT = 1e-3


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole camera: focal lengths and principal point in pixels of frames `width` x `height`,
    OpenCV distortion coefficients (k1, k2, p1, p2[, k3, ...]) or empty, and where they came from."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    distortion: tuple[float, ...] = ()
    source: str = ""

    def __post_init__(self) -> None:
        if not (self.width > 0 and self.height > 0):
            raise ConfigError(f"camera: frame size must be positive, got {self.width}x{self.height}")
        longest = max(self.width, self.height)
        for name in ("fx", "fy"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.05 * longest <= value <= 50 * longest):
                raise ConfigError(f"camera: focal length {name}={value:g} px is not plausible for {self.width}x"
                                  f"{self.height} frames (expected {0.05 * longest:g}..{50 * longest:g} px)")
        if not all(math.isfinite(v) for v in (self.cx, self.cy, *self.distortion)):
            raise ConfigError("camera: principal point and distortion must be finite numbers")

    @property
    def matrix(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def normalised(self, pixels: np.ndarray) -> np.ndarray:
        """`(..., 2)` pixels -> undistorted normalised coordinates ((x - cx) / fx, (y - cy) / fy)."""
        points = np.asarray(pixels, np.float64)
        flat = points.reshape(-1, 1, 2)
        if self.distortion:
            undistorted = cv2.undistortPoints(flat, self.matrix, np.array(self.distortion, np.float64))
        else:
            undistorted = (flat - [self.cx, self.cy]) / [self.fx, self.fy]
        return undistorted.reshape(points.shape)

    def describe(self) -> dict:
        """For the meta message: what a consumer needs to project camera-space points itself."""
        return {"fx": self.fx, "fy": self.fy, "cx": self.cx, "cy": self.cy, "size": [self.width, self.height],
                "distortion": list(self.distortion), "source": self.source}


def from_focal(width: int, height: int, focal_px: float) -> Intrinsics:
    return Intrinsics(focal_px, focal_px, (width - 1) / 2, (height - 1) / 2, width, height,
                      source=f"focal length {focal_px:g} px (--focal)")


def from_fov(width: int, height: int, fov_deg: float, default: bool = False) -> Intrinsics:
    """Square pixels, centred principal point, `fov_deg` across the frame's width."""
    if not 1.0 <= fov_deg <= 179.0:
        raise ConfigError(f"camera: field of view must be 1..179 degrees, got {fov_deg:g}")
    focal = (width / 2) / math.tan(math.radians(fov_deg) / 2)
    source = (f"assumed: {fov_deg:g} degrees horizontal field of view (give --focal, --fov or --calibration)"
              if default else f"{fov_deg:g} degrees horizontal field of view (--fov)")
    return Intrinsics(focal, focal, (width - 1) / 2, (height - 1) / 2, width, height, source=source)


def from_calibration(path: str | Path, width: int, height: int) -> Intrinsics:
    """An OpenCV calibration file (FileStorage YAML/XML/JSON with `camera_matrix` and optionally
    `distortion_coefficients`, as written after `cv2.calibrateCamera`), or a plain JSON object with
    the same keys. A file made for another frame size is scaled to `width` x `height` when its
    `image_width`/`image_height` are given."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"camera calibration file {path} not found")
    matrix, distortion, size = _read_calibration(path)
    if matrix.shape != (3, 3) or not np.all(np.isfinite(matrix)) or matrix[2, 2] != 1 or matrix[0, 1] != 0:
        raise ConfigError(f"{path}: camera_matrix must be a 3x3 pinhole matrix [[fx,0,cx],[0,fy,cy],[0,0,1]]")
    fx, fy, cx, cy = matrix[0, 0], matrix[1, 1], matrix[0, 2], matrix[1, 2]
    if size is not None and (size[0] != width or size[1] != height):
        sx, sy = width / size[0], height / size[1]
        fx, cx, fy, cy = fx * sx, cx * sx, fy * sy, cy * sy
    return Intrinsics(float(fx), float(fy), float(cx), float(cy), width, height,
                      tuple(float(v) for v in distortion), source=f"calibration {path.name}")


def _read_calibration(path: Path) -> tuple[np.ndarray, np.ndarray, tuple[int, int] | None]:
    text = path.read_text(errors="replace")
    if path.suffix.lower() == ".json" and not text.lstrip().startswith("%YAML"):
        try:
            values = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if isinstance(values, dict) and "camera_matrix" in values and not isinstance(values["camera_matrix"], dict):
            try:
                matrix = np.array(values["camera_matrix"], np.float64).reshape(3, 3)
                distortion = np.array(values.get("distortion_coefficients", []), np.float64).ravel()
            except (TypeError, ValueError):
                raise ConfigError(f"{path}: camera_matrix must be 3x3 numbers") from None
            size = (int(values["image_width"]), int(values["image_height"])) if "image_width" in values else None
            return matrix, distortion, size
    try:
        storage = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
    except (cv2.error, SystemError):  # OpenCV's parser raises either on malformed text
        raise ConfigError(f"{path}: not an OpenCV calibration file (YAML, XML or JSON FileStorage)") from None
    try:
        if not storage.isOpened():
            raise ConfigError(f"{path}: not an OpenCV calibration file (YAML, XML or JSON FileStorage)")
        node = storage.getNode("camera_matrix")
        matrix = node.mat() if not node.empty() and node.isMap() else None
        if matrix is None:
            raise ConfigError(f"{path}: no camera_matrix in it; write one with cv2.FileStorage after "
                              "cv2.calibrateCamera")
        node = storage.getNode("distortion_coefficients")
        distortion = node.mat().ravel() if not node.empty() and node.mat() is not None else np.zeros(0)
        w, h = storage.getNode("image_width"), storage.getNode("image_height")
        size = (int(w.real()), int(h.real())) if not w.empty() and not h.empty() else None
        return np.asarray(matrix, np.float64), np.asarray(distortion, np.float64), size
    finally:
        storage.release()


def solve_root(joints2d: np.ndarray, joints3d: np.ndarray, intrinsics: Intrinsics,
               weights: np.ndarray | None = None) -> np.ndarray | None:
    """The root's camera-space position `(3,)` (units of `joints3d`) that makes the root-relative
    `(J, 3)` skeleton project onto the `(J, 2)` pixel joints, or None when it has no solution in front
    of the camera (too few confident joints, or a degenerate pose)."""
    uv = intrinsics.normalised(joints2d)
    w = np.ones(len(uv)) if weights is None else np.clip(np.asarray(weights, np.float64), 0.0, None)
    keep = w > _MIN_WEIGHT
    if keep.sum() < 3:
        return None
    # Weighted least squares of X - u Z = u z - x and Y - v Z = v z - y over the joints, in closed
    # form (it runs for every person of every frame): X and Y are weighted means given Z, which
    # leaves a one-unknown problem in Z. The same solution as a 3-unknown lstsq, a tenth of the cost.
    w, u, v = w[keep], uv[keep, 0], uv[keep, 1]
    x, y, z = np.asarray(joints3d, np.float64)[keep].T
    a, b = u * z - x, v * z - y
    total = w.sum()
    du, dv = u - (w @ u) / total, v - (w @ v) / total
    spread = w @ (du * du + dv * dv)
    if spread <= 1e-12 * total:  # every joint on one ray: the distance is undetermined
        return None
    depth = -(w @ (du * a + dv * b)) / spread
    solution = np.array([(w @ (u * depth + a)) / total, (w @ (v * depth + b)) / total, depth])
    if not np.all(np.isfinite(solution)) or depth <= 0:
        return None
    return solution
