"""The small descriptors that travel between pipeline stages (pixels stay in shared memory).

A `FrameTicket` is created by capture for every frame it keeps and is completed stage by stage:
preprocess adds the people's regions, infer their raw network outputs, smooth their final poses.
Each stage stamps `times` with `time.monotonic()` (one clock for all processes of a machine), from
which publish derives per-stage latency.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class PersonRegion:
    """One person in one frame, from region of interest to (after smoothing) final pose."""

    track_id: int
    box: np.ndarray  # (4,) x0, y0, x1, y1 frame pixels: the region the crop was cut from
    score: float  # detection score, or tracking confidence, in [0, 1]
    tracked: bool  # region from the previous pose (True) or a fresh detection (False)
    affine: np.ndarray  # (2, 3) frame -> crop
    joints2d_crop: np.ndarray | None = None  # (J, 2) crop pixels, from infer
    conf: np.ndarray | None = None  # (J,)
    depth: np.ndarray | None = None  # (J,) weak-perspective depth
    joints2d: np.ndarray | None = None  # (J, 2) frame pixels, from smooth
    joints3d: np.ndarray | None = None  # (J, 3) mm, root-relative, camera axes
    root_cam: np.ndarray | None = None  # (3,) mm, the root in camera space; None: no solution
    raw: tuple | None = None  # (joints2d, joints3d, root_cam) before the One Euro filters


@dataclass
class FrameTicket:
    stream: str
    seq: int  # frame number from the source (gaps are frames the pipeline dropped, counted by reason)
    t_capture: float  # unix seconds when the frame was decoded
    t_media: float  # the frame's presentation time in seconds (pts x time_base, plus loop offsets)
    size: tuple[int, int]  # (width, height) as stored in shared memory
    times: dict[str, float] = field(default_factory=dict)  # stage -> time.monotonic() when it finished
    people: list[PersonRegion] = field(default_factory=list)
    crop_seq: int = -1  # where preprocess put this frame's crops in the stream's crop ring
    filter_lag_s: dict[str, float] = field(default_factory=dict)  # "2d"/"3d" -> the One Euro filters' lag


@dataclass(frozen=True)
class EndOfStream:
    """Sent down the pipeline after a source's last frame."""

    stream: str
    reason: str  # "end of file", or why the source failed for good
    error: bool = False
