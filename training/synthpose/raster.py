"""Per-pixel ray casting of capsules and ellipsoids into a depth buffer, on the CPU with numpy.

SynthPose's figures are made of these two primitives. Casting each pixel's ray inside the primitive's
projected bounding box gives exact perspective silhouettes, a depth per pixel (so parts occlude each
other correctly even where they interpenetrate, which sorting whole parts by depth gets wrong) and a
surface normal for Lambert shading, at a few milliseconds per figure.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from wildpose.training.synthpose.camera import Camera

_NEAR_MM = 50.0  # primitives closer to the camera than this are skipped (never happens at >= 1 m)


class Capsule(NamedTuple):
    """Segment `a`-`b` swept by a sphere of `radius` (camera frame, mm); `material` indexes albedos."""

    a: np.ndarray
    b: np.ndarray
    radius: float
    material: int


class Ellipsoid(NamedTuple):
    """Ellipsoid at `centre` with unit `axes` (rows, `(3, 3)`) and semi-axis `radii` (mm, camera frame).

    With `stretch` > 0 it is swept +-`stretch` mm along its second axis: an elliptic capsule, a
    cylinder of elliptic section with half-ellipsoid caps (a torso with round shoulders and hips)."""

    centre: np.ndarray
    axes: np.ndarray
    radii: np.ndarray
    material: int
    stretch: float = 0.0


Primitive = Capsule | Ellipsoid


class Buffers(NamedTuple):
    """What a rasterisation leaves per pixel: `depth` `(H, W)` float32 mm (inf: nothing),
    `shade` `(H, W)` float32 cosine of the light angle, `index` `(H, W)` int16 of the primitive seen
    (-1: nothing)."""

    depth: np.ndarray
    shade: np.ndarray
    index: np.ndarray


def _bounds(centres: list[np.ndarray], radius: float, camera: Camera) -> tuple[int, int, int, int] | None:
    """Pixel box `(x0, y0, x1, y1)` (exclusive end) covering spheres of `radius` at `centres`."""
    x0 = y0 = np.inf
    x1 = y1 = -np.inf
    for c in centres:
        z = c[2] - radius
        if z < _NEAR_MM:
            return None
        u = camera.fx * c[0] / c[2] + camera.cx
        v = camera.fy * c[1] / c[2] + camera.cy
        # A sphere's image lies within f * r / (z - r) of its centre's image (a conservative bound).
        reach = camera.fx * radius / z + 1.0
        x0, x1 = min(x0, u - reach), max(x1, u + reach)
        y0, y1 = min(y0, v - reach), max(y1, v + reach)
    box = (max(int(np.floor(x0)), 0), max(int(np.floor(y0)), 0),
           min(int(np.ceil(x1)) + 1, camera.width), min(int(np.ceil(y1)) + 1, camera.height))
    return box if box[0] < box[2] and box[1] < box[3] else None


def _linear(v: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """`v . (x, y, 1)` for every pixel ray of the box: `(h, w)` from a row and a column part."""
    return (v[0] * xs)[None, :] + (v[1] * ys + v[2])[:, None]


def _sphere_hit(c: np.ndarray, r: float, dd: np.ndarray, dl: np.ndarray, xs: np.ndarray, ys: np.ndarray,
                light: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Entry depth (inf on a miss) and n.l for rays `t * (x, y, 1)` against a sphere."""
    dc = _linear(c, xs, ys)
    h = dc * dc - dd * (c @ c - r * r)
    hit = h >= 0.0
    t = np.where(hit, (dc - np.sqrt(np.maximum(h, 0.0))) / dd, np.inf)
    return t, (t * dl - c @ light) / r


def _capsule(p: Capsule, xs: np.ndarray, ys: np.ndarray, light: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b, r = p.a, p.b, p.radius
    ba = b - a
    length = float(np.linalg.norm(ba))
    dd = (xs * xs)[None, :] + (ys * ys + 1.0)[:, None]
    dl = _linear(light, xs, ys)
    t_a, ndl_a = _sphere_hit(a, r, dd, dl, xs, ys, light)
    if length < 1e-6:
        return t_a, ndl_a
    u = ba / length
    t_b, ndl_b = _sphere_hit(b, r, dd, dl, xs, ys, light)
    # Infinite cylinder about the axis: |w|^2 - (w.u)^2 = r^2 with w = t d - a.
    du = _linear(u, xs, ys)
    doa = -_linear(a, xs, ys)
    oau = -(a @ u)
    qa = dd - du * du
    qb = doa - du * oau
    qc = a @ a - oau * oau - r * r
    h = qb * qb - qa * qc
    with np.errstate(divide="ignore", invalid="ignore"):
        t_c = (-qb - np.sqrt(np.maximum(h, 0.0))) / qa
    axial = t_c * du + oau
    t_c = np.where((h >= 0.0) & (qa > 1e-12) & (axial >= 0.0) & (axial <= length), t_c, np.inf)
    ndl_c = (t_c * dl - a @ light - axial * (u @ light)) / r
    t = np.minimum(np.minimum(t_a, t_b), t_c)
    ndl = np.where(t == t_c, ndl_c, np.where(t == t_a, ndl_a, ndl_b))
    return t, ndl


def _ellipsoid(p: Ellipsoid, xs: np.ndarray, ys: np.ndarray, light: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # In scaled local coordinates q = m (point - centre) the shape is the unit sphere, or a unit-radius
    # capsule along q_y from -h to h; a pixel ray t * (x, y, 1) becomes q = t * D + o.
    inv = 1.0 / np.asarray(p.radii, np.float64)
    m = inv[:, None] * p.axes
    d = [_linear(m[k], xs, ys) for k in range(3)]
    o = -(m @ p.centre)
    h = p.stretch * inv[1]
    dd = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]

    def sphere(cy: float) -> np.ndarray:  # unit sphere at (0, cy, 0)
        oc = o - np.array([0.0, cy, 0.0])
        b = d[0] * oc[0] + d[1] * oc[1] + d[2] * oc[2]
        disc = b * b - dd * (oc @ oc - 1.0)
        return np.where(disc >= 0.0, (-b - np.sqrt(np.maximum(disc, 0.0))) / dd, np.inf)

    if h <= 0.0:
        t = sphere(0.0)
        centre_y = np.zeros_like(t)
    else:
        t_top, t_bottom = sphere(h), sphere(-h)
        qa = d[0] * d[0] + d[2] * d[2]
        qb = d[0] * o[0] + d[2] * o[2]
        disc = qb * qb - qa * (o[0] * o[0] + o[2] * o[2] - 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            t_cyl = (-qb - np.sqrt(np.maximum(disc, 0.0))) / qa
        axial = t_cyl * d[1] + o[1]
        t_cyl = np.where((disc >= 0.0) & (qa > 1e-12) & (np.abs(axial) <= h), t_cyl, np.inf)
        t = np.minimum(np.minimum(t_top, t_bottom), t_cyl)
        # The normal of the hit points away from the nearest point of the core segment.
        centre_y = np.where(t == t_cyl, axial, np.where(t == t_top, h, -h))
    q = [t * d[0] + o[0], t * d[1] + o[1] - centre_y, t * d[2] + o[2]]
    lq = inv * (p.axes @ light)  # n ~ axes^T (q / radii), so n.l = q . lq / |q / radii|
    norm = np.sqrt((q[0] * inv[0]) ** 2 + (q[1] * inv[1]) ** 2 + (q[2] * inv[2]) ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        ndl = (q[0] * lq[0] + q[1] * lq[1] + q[2] * lq[2]) / norm
    return t, ndl


def rasterise(primitives: list[Primitive], camera: Camera, light: np.ndarray) -> Buffers:
    """Depth-buffer `primitives` (camera frame) as seen by `camera`; `light` is the unit direction
    towards the light in the camera frame. Returns the per-pixel buffers (see `Buffers`)."""
    depth = np.full((camera.height, camera.width), np.inf, np.float32)
    shade = np.zeros((camera.height, camera.width), np.float32)
    index = np.full((camera.height, camera.width), -1, np.int16)
    col_slopes, row_slopes = camera.ray_grid()
    light = np.asarray(light, np.float64)
    for i, p in enumerate(primitives):
        if isinstance(p, Capsule):
            box = _bounds([p.a, p.b], p.radius, camera)
        else:
            reach = p.stretch * p.axes[1]
            ends = [p.centre] if p.stretch <= 0 else [p.centre - reach, p.centre + reach]
            box = _bounds(ends, float(np.max(p.radii)), camera)
        if box is None:
            continue
        x0, y0, x1, y1 = box
        xs, ys = col_slopes[x0:x1], row_slopes[y0:y1]
        t, ndl = (_capsule if isinstance(p, Capsule) else _ellipsoid)(p, xs, ys, light)
        view = depth[y0:y1, x0:x1]
        closer = t < view
        view[closer] = t[closer]
        shade[y0:y1, x0:x1][closer] = ndl[closer]
        index[y0:y1, x0:x1][closer] = i
    return Buffers(depth=depth, shade=shade, index=index)
