"""Procedural backgrounds for SynthPose's two domains: a plain studio (`lab`) and clutter (`wild`).

The paper's point is a domain gap: 3D labels exist only for plain lab footage, while in-the-wild
images have busy backgrounds. Everything here is generated from noise and shapes, because the real
photographs we hold (COCO, MPII) are research-only and may not be baked into training data.
"""

from __future__ import annotations

import cv2
import numpy as np

from wildpose.training.synthpose.camera import Camera


def _colour(rng: np.random.Generator, saturation: tuple[float, float] = (0.0, 1.0),
            value: tuple[float, float] = (0.1, 1.0)) -> np.ndarray:
    """A random RGB colour in [0, 1] drawn in HSV."""
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(*saturation) * 255, rng.uniform(*value) * 255]]], np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32) / 255.0


def value_noise(height: int, width: int, rng: np.random.Generator, octaves: int = 4,
                base_cells: int = 4, persistence: float = 0.55) -> np.ndarray:
    """`(H, W)` float32 fractal noise in [0, 1]: random grids upsampled and summed over octaves."""
    out = np.zeros((height, width), np.float32)
    amplitude, total = 1.0, 0.0
    cells = base_cells
    for _ in range(octaves):
        grid = rng.random((cells + 1, cells + 1), dtype=np.float32)
        out += amplitude * cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
        total += amplitude
        amplitude *= persistence
        cells *= 2
    out /= total
    low, high = out.min(), out.max()
    return (out - low) / max(high - low, 1e-6)


def _gradient(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """`(H, W)` float32 linear ramp in [0, 1] in a random direction."""
    angle = rng.uniform(0, 2 * np.pi)
    xs = np.linspace(-0.5, 0.5, width, dtype=np.float32)
    ys = np.linspace(-0.5, 0.5, height, dtype=np.float32)
    ramp = np.cos(angle) * xs[None, :] + np.sin(angle) * ys[:, None]
    return (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)


def _palette(rng: np.random.Generator) -> np.ndarray:
    """`(256, 1, 3)` uint8 lookup table running through two or three random colours."""
    colours = np.stack([_colour(rng) for _ in range(3 if rng.random() < 0.5 else 2)])
    t = np.linspace(0.0, len(colours) - 1, 256)
    lower = np.minimum(t.astype(int), len(colours) - 2)
    frac = (t - lower)[:, None]
    table = colours[lower] * (1 - frac) + colours[lower + 1] * frac
    return np.round(table * 255).astype(np.uint8)[:, None, :]


def _texture_field(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """`(H, W)` float32 in [0, 1]: fractal noise, a ramp, warped stripes or checks, or fine grain."""
    kind = rng.integers(4)
    if kind == 0:
        return value_noise(height, width, rng, octaves=int(rng.integers(2, 6)), base_cells=int(rng.integers(2, 12)))
    if kind == 1:
        return _gradient(height, width, rng)
    if kind == 2:  # stripes or a checkerboard, warped a little by noise
        period = rng.uniform(3, 20)
        angle = rng.uniform(0, np.pi)
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        warp = value_noise(height, width, rng, octaves=2) * np.float32(rng.uniform(0, 6))
        u = np.float32(np.cos(angle)) * xs + np.float32(np.sin(angle)) * ys + warp
        field = (np.sin(np.float32(2 * np.pi / period) * u) > 0).astype(np.float32)
        if rng.random() < 0.4:
            v = np.float32(-np.sin(angle)) * xs + np.float32(np.cos(angle)) * ys
            field = np.abs(field - (np.sin(np.float32(2 * np.pi / period) * v) > 0))
        return field
    return value_noise(height, width, rng, octaves=3, base_cells=int(rng.integers(8, 24)))  # sand, foliage


def _textured(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """`(H, W, 3)` uint8 texture. Drawn at half resolution and scaled up: backgrounds are the
    costliest part of a sample, and half-resolution detail is still finer than the figure's."""
    small_h, small_w = (height + 1) // 2, (width + 1) // 2
    field = np.round(_texture_field(small_h, small_w, rng) * 255).astype(np.uint8)
    texture = cv2.LUT(cv2.merge([field, field, field]), _palette(rng))
    return cv2.resize(texture, (width, height), interpolation=cv2.INTER_LINEAR)


def wild(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """`(H, W, 3)` uint8 RGB clutter: a textured base, textured and flat shapes, lines, and a light
    gradient, sometimes blurred as if out of focus."""
    image = _textured(height, width, rng)
    for _ in range(int(rng.integers(1, 4))):  # large textured regions (walls, ground, foliage)
        mask = np.zeros((height, width), np.uint8)
        points = rng.uniform([-0.2 * width, -0.2 * height], [1.2 * width, 1.2 * height], (int(rng.integers(3, 7)), 2))
        cv2.fillPoly(mask, [cv2.convexHull(points.astype(np.int32))], 1)
        cv2.copyTo(_textured(height, width, rng), mask, image)
    scale = max(height, width)
    for _ in range(int(rng.integers(8, 40))):  # clutter
        colour = tuple(int(c) for c in (_colour(rng) * 255))
        kind = rng.integers(5)
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        size = int(rng.uniform(0.02, 0.25) * scale)
        if kind == 0:
            corner = (centre[0] + int(rng.integers(-size, size + 1)), centre[1] + int(rng.integers(-size, size + 1)))
            cv2.rectangle(image, centre, corner, colour, -1)
        elif kind == 1:
            cv2.circle(image, centre, max(size // 2, 1), colour, -1, cv2.LINE_AA)
        elif kind == 2:
            axes = (max(size // 2, 1), max(int(rng.uniform(0.2, 1.0) * size / 2), 1))
            cv2.ellipse(image, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1, cv2.LINE_AA)
        elif kind == 3:
            points = np.array(centre) + rng.integers(-size, size + 1, (int(rng.integers(3, 7)), 2))
            cv2.fillPoly(image, [points.astype(np.int32)], colour, cv2.LINE_AA)
        else:
            end = (centre[0] + int(rng.integers(-2 * size, 2 * size + 1)),
                   centre[1] + int(rng.integers(-2 * size, 2 * size + 1)))
            cv2.line(image, centre, end, colour, int(rng.integers(1, 6)), cv2.LINE_AA)
    light = cv2.resize((0.6 + 0.8 * _gradient(8, 8, rng)), (width, height), interpolation=cv2.INTER_LINEAR)
    image = cv2.multiply(image, cv2.merge([light, light, light]), dtype=cv2.CV_8U)
    if rng.random() < 0.5:
        image = cv2.GaussianBlur(image, (0, 0), float(rng.uniform(0.5, 3.0)))
    return image


def lab(camera: Camera, floor_y: float, wall_distance_mm: float, rng: np.random.Generator) -> np.ndarray:
    """`(H, W, 3)` uint8 RGB studio seen by `camera`: a flat floor at world height `floor_y` and a
    plain back wall `wall_distance_mm` beyond the camera along its horizontal view, both in muted
    colours with soft light falloff."""
    # Drawn at half resolution and scaled up: the studio is smooth, and this is 4x cheaper.
    h, w = (camera.height + 1) // 2, (camera.width + 1) // 2
    col_slopes = (2.0 * np.arange(w) + 0.5 - camera.cx) / camera.fx  # centres of 2x2 pixel blocks
    row_slopes = (2.0 * np.arange(h) + 0.5 - camera.cy) / camera.fy
    # World direction of each pixel ray: R^T (x, y, 1).
    rt = camera.rotation.T
    dy = (rt[1, 0] * col_slopes)[None, :] + (rt[1, 1] * row_slopes + rt[1, 2])[:, None]
    view = rt[:, 2] * np.array([1.0, 0.0, 1.0])
    view /= np.linalg.norm(view)
    along = (view @ rt[:, 0] * col_slopes)[None, :] + (view @ rt[:, 1] * row_slopes + view @ rt[:, 2])[:, None]
    eye = camera.position
    with np.errstate(divide="ignore", invalid="ignore"):
        t_floor = np.where(dy < -1e-9, (floor_y - eye[1]) / dy, np.inf)
        t_wall = np.where(along > 1e-9, wall_distance_mm / along, np.inf)
    on_floor = t_floor < t_wall
    wall_colour = _colour(rng, (0.0, 0.25), (0.45, 0.95))
    floor_colour = _colour(rng, (0.0, 0.3), (0.25, 0.8))
    # The wall darkens away from a bright spot; the floor darkens with distance.
    wall_height = eye[1] + t_wall * dy - floor_y
    spot = np.exp(-((wall_height - rng.uniform(1000, 2500)) / rng.uniform(1500, 4000)) ** 2)
    wall = wall_colour * (0.75 + 0.25 * np.nan_to_num(spot))[..., None]
    falloff = np.exp(-np.nan_to_num(t_floor, posinf=1e9) / rng.uniform(6000, 20000))
    floor = floor_colour * (0.55 + 0.45 * falloff)[..., None]
    image = np.where(on_floor[..., None], floor, wall)
    if rng.random() < 0.5:  # a skirting board where the floor meets the wall
        edge = on_floor.astype(np.uint8)
        line = cv2.dilate(edge, np.ones((3, 3), np.uint8)) - edge
        image[line > 0] = _colour(rng, (0.0, 0.2), (0.1, 0.9))
    image = np.clip(image * 255, 0, 255).astype(np.uint8)
    return cv2.resize(image, (camera.width, camera.height), interpolation=cv2.INTER_LINEAR)
