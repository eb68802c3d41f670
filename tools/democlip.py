"""Short H.264 clips that the project generates itself: a SynthPose-rendered person, or a stick figure.

`make demo` and the tests need video that anyone may redistribute and that exists on a fresh
checkout. `write_rendered_clip` renders a held-out CMU take with SynthPose (training/synthpose/clip.py:
a shaded figure that even OpenCV's HOG people detector finds); `write_clip` draws a parametric
stick-figure walk cycle in our 16-joint skeleton, which needs no mocap and is quick for tests. Both
encode with PyAV with exact timestamps (pts = frame index in a 1/fps time base).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from wildpose.errors import DatasetError
from wildpose.training import joints

log = logging.getLogger(__name__)

RENDERED_FRAMES = 240  # 8 s at 30 fps
RENDERED_FPS = 30
# `write_rendered_clip()` with its defaults, shipped so the demo plays on a checkout without the mocap
# (CMU's terms allow redistribution with their acknowledgement; see the README)
BUNDLED_CLIP = Path(__file__).resolve().parents[1] / "media" / "demo-synthpose-131_02.mp4"


def walker_joints(t: float, width: int, height: int) -> np.ndarray:
    """`(16, 2)` image pixels of a figure walking left to right at time `t` seconds."""
    scale = height / 2.6  # figure about 0.7 of the frame tall
    phase = 2 * math.pi * 0.9 * t  # 0.9 strides a second
    cx = width * (0.25 + 0.5 * ((0.08 * t) % 1.0))
    hip_y = height * 0.52 + 0.03 * scale * math.cos(2 * phase)
    swing = 0.45 * math.sin(phase)
    pose = np.zeros((joints.NUM_JOINTS, 2))
    j = joints.INDEX

    def limb(start: np.ndarray, angle: float, length: float) -> np.ndarray:
        return start + length * scale * np.array([math.sin(angle), math.cos(angle)])

    pelvis = np.array([cx, hip_y])
    pose[j["pelvis"]] = pelvis
    pose[j["r_hip"]] = pelvis + [-0.12 * scale, 0.0]
    pose[j["l_hip"]] = pelvis + [0.12 * scale, 0.0]
    for side, sign in (("r", 1.0), ("l", -1.0)):
        hip = pose[j[f"{side}_hip"]]
        knee = limb(hip, sign * swing, 0.45)
        pose[j[f"{side}_knee"]] = knee
        pose[j[f"{side}_ankle"]] = limb(knee, sign * swing - 0.35 * max(0.0, sign * math.sin(phase + 1)), 0.42)
    pose[j["thorax"]] = pelvis + [0.0, -0.55 * scale]
    pose[j["upper_neck"]] = pelvis + [0.0, -0.68 * scale]
    pose[j["head_top"]] = pelvis + [0.0, -0.92 * scale]
    pose[j["r_shoulder"]] = pose[j["upper_neck"]] + [-0.2 * scale, 0.04 * scale]
    pose[j["l_shoulder"]] = pose[j["upper_neck"]] + [0.2 * scale, 0.04 * scale]
    for side, sign in (("r", -1.0), ("l", 1.0)):
        shoulder = pose[j[f"{side}_shoulder"]]
        elbow = limb(shoulder, sign * swing * 0.8, 0.3)
        pose[j[f"{side}_elbow"]] = elbow
        pose[j[f"{side}_wrist"]] = limb(elbow, sign * swing * 0.8 - 0.4, 0.27)
    return pose


def draw_frame(t: float, width: int, height: int) -> np.ndarray:
    """`(H, W, 3)` uint8 RGB frame of the walker at time `t`."""
    ramp = np.linspace(200, 120, height, dtype=np.float32)[:, None, None]
    frame = np.broadcast_to(ramp * np.array([0.85, 0.9, 1.0], np.float32), (height, width, 3))
    frame = np.ascontiguousarray(frame.astype(np.uint8))
    pose = walker_joints(t, width, height)
    thickness = max(3, height // 40)
    for a, b in joints.EDGES:
        cv2.line(frame, tuple(int(v) for v in pose[a]), tuple(int(v) for v in pose[b]),
                 (40, 60, 150), thickness, cv2.LINE_AA)
    head = (pose[joints.INDEX["upper_neck"]] + pose[joints.INDEX["head_top"]]) / 2
    cv2.circle(frame, tuple(int(v) for v in head), max(6, height // 22), (220, 170, 140), -1, cv2.LINE_AA)
    return frame


def cached_clip(frames: int, fps: int = 30, width: int = 640, height: int = 360) -> Path:
    """The walker clip of this size for benchmarks, written once into the cache."""
    from wildpose.engine.cache import cache_dir

    clip = cache_dir("bench") / f"walker-{width}x{height}-{frames}f-{fps}fps.mp4"
    if not clip.is_file():
        write_clip(clip, frames=frames, width=width, height=height, fps=fps)
    return clip


def write_clip(path: str | Path, *, frames: int = 48, width: int = 640, height: int = 360,
               fps: int = 24, faststart: bool = False) -> Path:
    """Encode the walker to H.264 (yuv420p) at `path`; returns the path.

    faststart: put the MP4 index first (as streaming servers do), so a truncated file still opens.
    """
    images = (draw_frame(index / fps, width, height) for index in range(frames))
    return encode_clip(path, images, width, height, fps, faststart)


def write_rendered_clip(path: str | Path, *, frames: int = RENDERED_FRAMES, width: int = 640, height: int = 360,
                        fps: int = RENDERED_FPS, faststart: bool = False, mocap: str | Path | None = None) -> Path:
    """Render the SynthPose demo take (training/synthpose/clip.py) and encode it to H.264 at `path`.

    Needs the CMU motion capture (`mocap`, default ../shared/data/cmu_mocap); raises `DatasetError`
    without it. The same arguments give the same frames.
    """
    from wildpose.training.synthpose import clip

    options = {"width": width, "height": height, "fps": fps}
    if mocap is not None:
        options["mocap_dir"] = str(mocap)
    images = (sample.image for sample in clip.render_clip(frames, clip.ClipConfig(**options)))
    return encode_clip(path, images, width, height, fps, faststart)


def demo_clip(folder: str | Path) -> Path:
    """The clip `wildpose demo` plays: the bundled rendered take; without it (a trimmed install), the
    take rendered once into `folder`, or the stick figure when the motion capture is not there either."""
    if BUNDLED_CLIP.is_file():
        return BUNDLED_CLIP
    folder = Path(folder)
    rendered = folder / f"synthpose-{RENDERED_FRAMES}f-{RENDERED_FPS}fps.mp4"
    if rendered.is_file():
        return rendered
    try:
        log.debug("rendering the demo clip (%d frames) to %s", RENDERED_FRAMES, rendered)
        return write_rendered_clip(rendered)
    except DatasetError as exc:
        walker = folder / "walker.mp4"
        log.warning("demo: %s; playing the stick-figure clip instead, in which person detectors find "
                    "no one (use --detector none)", exc)
        return walker if walker.is_file() else write_clip(walker)


def encode_clip(path: str | Path, images: Iterable[np.ndarray], width: int, height: int, fps: int,
                faststart: bool = False) -> Path:
    """`(H, W, 3)` uint8 RGB frames -> H.264 yuv420p at `path`, frame i at pts i in a 1/fps time base.

    Written to a temporary name and renamed, so an interrupted render never leaves a clip behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.stem + ".partial" + path.suffix)
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(partial), mode="w", options=options) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        # One encoder thread: two encodings of the same frames once came out different on a loaded
        # machine, and a single thread takes x264's frame threading out of the question; a short
        # clip encodes in about a second anyway.
        stream.options = {"preset": "veryfast", "crf": "20", "threads": "1"}
        for index, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    partial.replace(path)
    return path
