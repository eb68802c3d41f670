"""Drawing poses for people to look at: the 2D skeleton over its frame and a side panel with the 3D one.

`wildpose run --overlay`, `wildpose view` and the tests share these pure functions, so what the video
shows is exactly what was published: joints2d in the frame's pixels (scaled for thumbnails), joints3d
in millimetres root-relative (camera axes x right, y down, z forward). Colours are RGB, as the frames
in the pipeline's rings are. Each bone has the colour of its side (`BONE_COLOURS`), each joint the
colour of its confidence (`confidence_colour`), each person's box and label the colour of its id.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import cv2
import numpy as np

from wildpose.training import joints

Colour = tuple[int, int, int]

RIGHT: Colour = (255, 140, 0)  # orange
LEFT: Colour = (0, 150, 255)  # blue
CENTRE: Colour = (230, 0, 230)  # magenta
PANEL_BACKGROUND: Colour = (28, 30, 36)
_TEXT: Colour = (255, 255, 255)
_TEXT_BACKGROUND: Colour = (0, 0, 0)
_ID_PALETTE: tuple[Colour, ...] = ((255, 255, 0), (0, 255, 255), (255, 255, 255), (180, 255, 120),
                                   (255, 180, 220), (160, 200, 255))
_SHIFT = 4  # cv2 fixed-point bits: sub-pixel positions, so lines land where the floats say
_PANEL_HALF_EXTENT_MM = 1100.0  # the 3D panel shows +-1.1 m around the pelvis: a whole standing person
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _side(a: int, b: int) -> Colour:
    names = (joints.NAMES[a], joints.NAMES[b])
    if any(n.startswith("r_") for n in names):
        return RIGHT
    if any(n.startswith("l_") for n in names):
        return LEFT
    return CENTRE


# The colour of each bone of `joints.EDGES`, in the same order.
BONE_COLOURS: tuple[Colour, ...] = tuple(_side(a, b) for a, b in joints.EDGES)


class PersonLike(Protocol):
    """What the drawing needs of a person (`client.Person` has it)."""

    id: int
    bbox: Sequence[float]  # x0, y0, x1, y1 frame pixels
    joints2d: np.ndarray  # (16, 2) frame pixels
    joints3d: np.ndarray  # (16, 3) mm, root-relative, camera axes
    conf: np.ndarray  # (16,) in [0, 1]


def confidence_colour(conf: float) -> Colour:
    """Red at 0, yellow at 0.5, green at 1 (values outside [0, 1] are clipped)."""
    c = min(max(float(conf), 0.0), 1.0)
    if c < 0.5:
        return (255, round(510 * c), 0)
    return (round(510 * (1.0 - c)), 255, 0)


def id_colour(person_id: int) -> Colour:
    return _ID_PALETTE[person_id % len(_ID_PALETTE)]


def line_width(width: int, height: int) -> int:
    """Bone thickness in pixels for a frame of this size: visible on 4K, not a smear on thumbnails."""
    return max(2, round(min(width, height) / 180))


def joint_radius(width: int, height: int) -> int:
    return line_width(width, height) + 2


def _fixed(point) -> tuple[int, int]:
    return round(float(point[0]) * (1 << _SHIFT)), round(float(point[1]) * (1 << _SHIFT))


def _finite(point) -> bool:
    return bool(np.all(np.isfinite(point))) and all(abs(float(v)) < 1e6 for v in point)


def _label(image: np.ndarray, text: str, origin: tuple[int, int], scale: float, colour: Colour = _TEXT) -> None:
    """Text on a dark box, clipped to the image; origin is the box's top-left corner."""
    thickness = max(1, round(scale * 2))
    (w, h), baseline = cv2.getTextSize(text, _FONT, scale, thickness)
    x = min(max(origin[0], 0), max(image.shape[1] - w - 4, 0))
    y = min(max(origin[1], 0), max(image.shape[0] - h - baseline - 4, 0))
    cv2.rectangle(image, (x, y), (x + w + 4, y + h + baseline + 4), _TEXT_BACKGROUND, -1)
    cv2.putText(image, text, (x + 2, y + h + 2), _FONT, scale, colour, thickness, cv2.LINE_AA)


def _text_scale(width: int, height: int) -> float:
    return max(0.35, min(width, height) / 900)


def draw_skeleton_2d(image: np.ndarray, points: np.ndarray, conf: np.ndarray, thickness: int,
                     radius: int) -> None:
    """Bones (side colours) then joints (confidence colours) of one person, in place.

    points: `(16, 2)` pixels of `image`. Joints or bones at non-finite positions are skipped."""
    for (a, b), colour in zip(joints.EDGES, BONE_COLOURS, strict=True):
        if _finite(points[a]) and _finite(points[b]):
            cv2.line(image, _fixed(points[a]), _fixed(points[b]), colour, thickness, cv2.LINE_AA, _SHIFT)
    for point, c in zip(points, conf, strict=True):
        if _finite(point):
            cv2.circle(image, _fixed(point), radius << _SHIFT, confidence_colour(c), -1, cv2.LINE_AA, _SHIFT)


def draw_people_2d(image: np.ndarray, people: Sequence[PersonLike], scale: float = 1.0) -> None:
    """Box, skeleton and id label of every person, in place. `scale` maps frame pixels to `image`
    pixels (a thumbnail of a larger frame)."""
    height, width = image.shape[:2]
    thickness, radius = line_width(width, height), joint_radius(width, height)
    text_scale = _text_scale(width, height)
    for person in people:
        colour = id_colour(person.id)
        x0, y0, x1, y1 = (float(v) * scale for v in person.bbox)
        if _finite((x0, y0)) and _finite((x1, y1)):
            cv2.rectangle(image, _fixed((x0, y0)), _fixed((x1, y1)), colour, max(1, thickness // 2),
                          cv2.LINE_AA, _SHIFT)
        draw_skeleton_2d(image, np.asarray(person.joints2d, np.float64) * scale, person.conf, thickness, radius)
    for person in people:  # labels last, so no skeleton covers them
        x0, y0 = (float(v) * scale for v in person.bbox[:2])
        if _finite((x0, y0)):
            _label(image, f"id {person.id}", (round(x0), round(y0) - round(30 * text_scale)), text_scale,
                   id_colour(person.id))


def draw_header(image: np.ndarray, stream: str, fps: float | None, latency_ms: float | None) -> None:
    """`stream  fps  latency` in the top-left corner, in place."""
    height, width = image.shape[:2]
    parts = [stream]
    parts.append(f"{fps:.1f} fps" if fps is not None and math.isfinite(fps) else "-- fps")
    parts.append(f"latency {latency_ms:.0f} ms" if latency_ms is not None and math.isfinite(latency_ms)
                 else "latency --")
    _label(image, "  ".join(parts), (4, 4), _text_scale(width, height))


def header_box(width: int, height: int, text: str) -> tuple[int, int, int, int]:
    """The (x0, y0, x1, y1) the header of `text` covers (for tests that look elsewhere)."""
    scale = _text_scale(width, height)
    (w, h), baseline = cv2.getTextSize(text, _FONT, scale, max(1, round(scale * 2)))
    return 4, 4, 4 + w + 4, 4 + h + baseline + 4


def rotation(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """`(3, 3)`: turn the camera-axes pose by `azimuth` about the vertical (y) axis, then tilt it by
    `elevation` about x, so depth (z) shows on screen."""
    a, e = math.radians(azimuth_deg), math.radians(elevation_deg)
    about_y = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    about_x = np.array([[1, 0, 0], [0, math.cos(e), -math.sin(e)], [0, math.sin(e), math.cos(e)]])
    return about_x @ about_y


def project_3d(joints3d: np.ndarray, centre: tuple[float, float], pixels_per_mm: float,
               azimuth_deg: float = 35.0, elevation_deg: float = -15.0) -> np.ndarray:
    """Orthographic view of `(J, 3)` mm (camera axes, y down) -> `(J, 2)` panel pixels around `centre`.

    Fixed axes: the same millimetre is the same pixel in every frame, so motion is motion and not
    re-scaling. Screen y follows camera y (down)."""
    rotated = np.asarray(joints3d, np.float64) @ rotation(azimuth_deg, elevation_deg).T
    return np.stack([centre[0] + rotated[:, 0] * pixels_per_mm, centre[1] + rotated[:, 1] * pixels_per_mm], axis=1)


def panel_width(height: int) -> int:
    """Width of the 3D panel beside a frame of this height (even, for H.264's 4:2:0)."""
    return min(max(height, 240), 640) // 2 * 2


def render_panel_3d(people: Sequence[PersonLike], width: int, height: int) -> np.ndarray:
    """`(height, width, 3)` uint8 RGB: each person's root-relative 3D skeleton in its own cell, with the
    axes (x red, y green, z blue, 300 mm each) and a 1 m scale bar."""
    panel = np.empty((height, width, 3), np.uint8)
    panel[...] = PANEL_BACKGROUND
    count = max(1, len(people))
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    cell_w, cell_h = width / columns, height / rows
    side = min(cell_w, cell_h)
    pixels_per_mm = side / (2 * _PANEL_HALF_EXTENT_MM)
    thickness, radius = line_width(round(side), round(side)), max(2, line_width(round(side), round(side)))
    text_scale = _text_scale(round(side), round(side))
    for index in range(count):
        centre = ((index % columns + 0.5) * cell_w, (index // columns + 0.5) * cell_h)
        axes = project_3d(np.array([[0, 0, 0], [300, 0, 0], [0, 300, 0], [0, 0, 300]]), centre, pixels_per_mm)
        for end, colour in zip(axes[1:], ((200, 60, 60), (60, 200, 60), (70, 110, 230)), strict=True):
            cv2.line(panel, _fixed(axes[0]), _fixed(end), colour, 1, cv2.LINE_AA, _SHIFT)
        if index < len(people):
            person = people[index]
            draw_skeleton_2d(panel, project_3d(person.joints3d, centre, pixels_per_mm), person.conf,
                             thickness, radius)
            _label(panel, f"id {person.id}", (round(centre[0] - side / 2) + 4, round(centre[1] - side / 2) + 4),
                   text_scale, id_colour(person.id))
    bar = 1000 * pixels_per_mm
    y = height - 12
    cv2.line(panel, (8, y), (8 + round(bar), y), (200, 200, 200), 1, cv2.LINE_AA)
    cv2.putText(panel, "1 m (3D, root-relative)", (8, y - 6), _FONT, max(0.35, text_scale * 0.8),
                (200, 200, 200), 1, cv2.LINE_AA)
    if not people:
        _label(panel, "no one", (8, 8), text_scale)
    return panel


def compose(frame: np.ndarray, people: Sequence[PersonLike], stream: str, fps: float | None,
            latency_ms: float | None, scale: float = 1.0) -> np.ndarray:
    """The overlay frame: `frame` (RGB, not modified) with people, header and the 3D panel to its right.

    Returns `(H', W + panel_width(H), 3)` uint8 with H' and the total width even (H.264 4:2:0 needs
    even sides); the frame sits at the top-left, unscaled, so frame pixel (x, y) is output pixel (x, y)."""
    height, width = frame.shape[:2]
    panel_w = panel_width(height)
    out_h = height + height % 2
    out_w = width + width % 2 + panel_w
    out = np.zeros((out_h, out_w, 3), np.uint8)
    view = out[:height, :width]
    view[...] = frame
    draw_people_2d(view, people, scale)
    draw_header(view, stream, fps, latency_ms)
    out[:height, out_w - panel_w:] = render_panel_3d(people, panel_w, height)
    return out


_THUMBNAIL_QUALITIES = (80, 60, 40, 20)  # tried in turn until the JPEG fits `max_bytes`


def encode_thumbnail(frame: np.ndarray, max_width: int,
                     max_bytes: int | None = None) -> tuple[bytes | None, tuple[int, int]]:
    """JPEG of an RGB frame scaled down (aspect kept) to at most `max_width` wide; returns (bytes, (w, h)).

    A wide, detailed frame can make a JPEG over the message limit, and a subscriber that is sent a
    message over its limit is cut off by ZeroMQ; so the quality drops until the JPEG fits `max_bytes`,
    and the bytes are None when even the lowest quality does not."""
    height, width = frame.shape[:2]
    if width > max_width:
        size = (max_width, max(1, round(height * max_width / width)))
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
    for quality in _THUMBNAIL_QUALITIES:
        ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise ValueError(f"JPEG encoding failed for a {width}x{height} frame")
        if max_bytes is None or data.nbytes <= max_bytes:
            return data.tobytes(), (frame.shape[1], frame.shape[0])
    return None, (frame.shape[1], frame.shape[0])


def decode_thumbnail(jpeg: bytes) -> np.ndarray | None:
    """RGB `(H, W, 3)` uint8 of a JPEG, or None if it does not decode."""
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
