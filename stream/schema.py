"""Message schema version 1: what goes over ZeroMQ, as msgpack maps (design.md).

Every message is a two-frame multipart: a topic (`pose/<stream>`, `stats/<stream>`, `meta`, or the
opt-in `frame/<stream>` and `pose.raw/<stream>`) and a msgpack map that carries `v`, the schema
version. Version 1 grows only by new topics and new keys, never by changing old ones, so a client
that predates them still reads every message it subscribed to. Producers build messages only through
the functions here and the client validates them against the same field lists, so the two cannot
drift apart.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

from wildpose.training import joints

VERSION = 1
POSE_PREFIX = "pose/"
RAW_PREFIX = "pose.raw/"  # opt-in (`--publish-raw`): the same poses before the One Euro filter
STATS_PREFIX = "stats/"
FRAME_PREFIX = "frame/"  # opt-in JPEG thumbnails for viewers (`--publish-frames`)
META_TOPIC = "meta"
MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # the client refuses anything larger

POSE_FIELDS = ("v", "stream", "seq", "t_capture", "t_publish", "size", "people")
PERSON_FIELDS = ("id", "bbox", "score", "joints2d", "joints3d", "conf", "tracked")
STATS_FIELDS = ("v", "stream", "t", "interval_s", "fps", "latency_ms", "drops", "queues", "totals")
META_FIELDS = ("v", "joints", "edges", "root", "units", "axes", "scale", "model", "streams")
FRAME_FIELDS = ("v", "stream", "seq", "t_capture", "size", "jpeg_size", "jpeg")

AXES = "camera: x right, y down, z forward"


def pose_topic(stream: str) -> str:
    return f"{POSE_PREFIX}{stream}"


def raw_topic(stream: str) -> str:
    return f"{RAW_PREFIX}{stream}"


def stats_topic(stream: str) -> str:
    return f"{STATS_PREFIX}{stream}"


def frame_topic(stream: str) -> str:
    return f"{FRAME_PREFIX}{stream}"


def person(track_id: int, bbox, score: float, joints2d, joints3d, conf, tracked: bool,
           root_cam=None, with_camera_joints: bool = False) -> dict[str, Any]:
    """One person: bbox [x0, y0, x1, y1] and joints2d [[x, y] x16] in frame pixels, joints3d
    [[x, y, z] x16] millimetres root-relative in camera axes, conf [x16] in [0, 1], root_cam [x, y, z]
    millimetres: the root (pelvis) in camera space, or nil when it could not be placed. With
    `with_camera_joints`, also joints3d_cam: joints3d + root_cam (nil without root_cam)."""
    values = {"id": int(track_id), "bbox": [float(v) for v in bbox], "score": float(score),
              "joints2d": joints2d.tolist(), "joints3d": joints3d.tolist(), "conf": conf.tolist(),
              "tracked": bool(tracked), "root_cam": None if root_cam is None else [float(v) for v in root_cam]}
    if with_camera_joints:
        values["joints3d_cam"] = None if root_cam is None else (np.asarray(joints3d, np.float64)
                                                                + np.asarray(root_cam, np.float64)).tolist()
    return values


def pose(stream: str, seq: int, t_capture: float, t_publish: float, size: tuple[int, int],
         people: list[dict[str, Any]]) -> dict[str, Any]:
    """One processed frame (sent also when `people` is empty, so every frame is accounted for)."""
    return {"v": VERSION, "stream": stream, "seq": int(seq), "t_capture": float(t_capture),
            "t_publish": float(t_publish), "size": [int(size[0]), int(size[1])], "people": people}


def stats(stream: str, t: float, interval_s: float, fps: dict[str, float], latency_ms: dict,
          drops: dict[str, int], queues: dict[str, int], totals: dict[str, int],
          filter_lag_ms: dict | None = None) -> dict[str, Any]:
    """filter_lag_ms: "2d"/"3d" -> {p50, p95, n} of the One Euro filters' lag over the interval."""
    return {"v": VERSION, "stream": stream, "t": t, "interval_s": interval_s, "fps": fps,
            "latency_ms": latency_ms, "drops": drops, "queues": queues, "totals": totals,
            "filter_lag_ms": filter_lag_ms or {}}


def frame(stream: str, seq: int, t_capture: float, size: tuple[int, int], jpeg_size: tuple[int, int],
          jpeg: bytes) -> dict[str, Any]:
    """A thumbnail of frame `seq` (sent after its pose message): `jpeg` (bytes) is `jpeg_size` [w, h]
    pixels, scaled down from the frame's `size` [w, h], the size joints2d refer to."""
    return {"v": VERSION, "stream": stream, "seq": int(seq), "t_capture": float(t_capture),
            "size": [int(size[0]), int(size[1])], "jpeg_size": [int(jpeg_size[0]), int(jpeg_size[1])],
            "jpeg": bytes(jpeg)}


def meta(model: dict[str, Any], streams: dict[str, dict[str, str]], scale: str,
         frames: dict[str, Any] | None = None) -> dict[str, Any]:
    """The joint set, units, axes and scale of every pose message, and what produces them.

    frames: {"hz", "width"} when thumbnails are published on `frame/<stream>`, else None."""
    return {"v": VERSION, "joints": list(joints.NAMES), "edges": [list(e) for e in joints.EDGES],
            "root": joints.ROOT, "units": {"joints2d": "px", "bbox": "px", "joints3d": "mm"},
            "axes": AXES, "scale": scale, "model": model, "streams": streams, "frames": frames}


def pack(message: dict[str, Any]) -> bytes:
    # Doubles throughout: t_capture (unix seconds) needs more precision than float32 has.
    return msgpack.packb(message, use_bin_type=True)


def unpack(payload: bytes) -> Any:
    """Decode a payload; msgpack bounds every container by the payload's own length."""
    if len(payload) > MAX_MESSAGE_BYTES:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_MESSAGE_BYTES}")
    return msgpack.unpackb(payload, raw=False, strict_map_key=True)
