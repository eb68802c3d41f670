"""The client library: subscribe to WildPose pose streams and get typed, validated messages.

    from wildpose.stream.client import PoseSubscriber, PoseMessage

    with PoseSubscriber("tcp://127.0.0.1:5555", streams=["cam0"]) as subscriber:
        for message in subscriber:
            if isinstance(message, PoseMessage):
                for person in message.people:
                    print(message.seq, person.id, person.joints3d[6])  # pelvis, mm

Messages are checked against schema version 1 (`stream/schema.py`); anything malformed, too large or
of another version is refused (counted in `invalid`, or raised with `strict=True`), never half-read.
Gaps in a stream's frame numbers are counted in `missed`. Frame thumbnails (`FrameMessage`, JPEG) come
only to a subscriber that asks for the "frame" topic, and only from a pipeline run with
`--publish-frames`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zmq

from wildpose.errors import ConfigError, WildPoseError
from wildpose.stream import schema, sockets
from wildpose.training import joints

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5555"
TOPICS = ("pose", "stats", "meta")  # what a subscriber gets unless it asks otherwise
ALL_TOPICS = (*TOPICS, "frame", "raw")


class SchemaError(WildPoseError):
    """A message does not follow the WildPose message schema."""


@dataclass(frozen=True)
class Person:
    id: int
    bbox: tuple[float, float, float, float]  # x0, y0, x1, y1 frame pixels
    score: float
    joints2d: np.ndarray  # (16, 2) frame pixels
    joints3d: np.ndarray  # (16, 3) mm, root-relative (pelvis = 0), camera axes x right, y down, z forward
    conf: np.ndarray  # (16,) in [0, 1]
    tracked: bool
    root_cam: np.ndarray | None = None  # (3,) mm, the pelvis in camera space (None: not placed, or an older publisher)
    joints3d_cam: np.ndarray | None = None  # (16, 3) mm in camera space, when the publisher sends it (--joints3d-cam)


@dataclass(frozen=True)
class PoseMessage:
    stream: str
    seq: int
    t_capture: float  # unix seconds
    t_publish: float
    size: tuple[int, int]  # width, height
    people: tuple[Person, ...]
    raw: bool = False  # from pose.raw/<stream>: before smoothing

    @property
    def latency_s(self) -> float:
        """Capture to publish, by the publisher's clock."""
        return self.t_publish - self.t_capture


@dataclass(frozen=True)
class StatsMessage:
    stream: str
    t: float
    interval_s: float
    fps: dict[str, float]  # per stage
    latency_ms: dict[str, dict[str, float]]  # stage -> p50, p95, n
    drops: dict[str, int]  # reason -> count since start
    queues: dict[str, int]
    totals: dict[str, int]
    filter_lag_ms: dict[str, dict[str, float]] = field(default_factory=dict)  # "2d"/"3d" -> p50, p95, n


@dataclass(frozen=True)
class MetaMessage:
    joints: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]
    root: int
    units: dict[str, str]
    axes: str
    scale: str
    model: dict[str, Any]
    streams: dict[str, dict[str, str]]
    frames: dict[str, Any] | None = None  # {"hz", "width"} when thumbnails are published (newer publishers)


@dataclass(frozen=True)
class FrameMessage:
    """A JPEG thumbnail of frame `seq`; its pose message (same stream and seq) was sent just before."""

    stream: str
    seq: int
    t_capture: float  # unix seconds
    size: tuple[int, int]  # width, height of the frame the pose's joints2d refer to
    jpeg_size: tuple[int, int]  # width, height of the JPEG
    jpeg: bytes

    @property
    def scale(self) -> float:
        """JPEG pixels per frame pixel: multiply joints2d by it to draw on the thumbnail."""
        return self.jpeg_size[0] / self.size[0]


Message = PoseMessage | StatsMessage | MetaMessage | FrameMessage


def _require(values: Any, fields: tuple[str, ...], what: str) -> dict[str, Any]:
    if not isinstance(values, dict):
        raise SchemaError(f"{what} must be a map, got {type(values).__name__}")
    missing = [f for f in fields if f not in values]
    if missing:
        raise SchemaError(f"{what} lacks fields {missing}")
    return values


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SchemaError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _array(value: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise SchemaError(f"{name} must be numbers of shape {shape}") from None
    if array.shape != shape or not np.all(np.isfinite(array)):
        raise SchemaError(f"{name} must be finite numbers of shape {shape}, got shape {array.shape}")
    return array


def _person(values: Any) -> Person:
    values = _require(values, schema.PERSON_FIELDS, "person")
    count = joints.NUM_JOINTS
    if not isinstance(values["id"], int) or isinstance(values["id"], bool):
        raise SchemaError(f"person id must be an integer, got {values['id']!r}")
    return Person(id=values["id"], bbox=tuple(_array(values["bbox"], (4,), "bbox").tolist()),
                  score=_number(values["score"], "score"),
                  joints2d=_array(values["joints2d"], (count, 2), "joints2d"),
                  joints3d=_array(values["joints3d"], (count, 3), "joints3d"),
                  conf=_array(values["conf"], (count,), "conf"), tracked=bool(values["tracked"]),
                  root_cam=None if values.get("root_cam") is None else _array(values["root_cam"], (3,), "root_cam"),
                  joints3d_cam=None if values.get("joints3d_cam") is None
                  else _array(values["joints3d_cam"], (count, 3), "joints3d_cam"))


def _frame(values: dict[str, Any]) -> FrameMessage:
    size, jpeg_size = _array(values["size"], (2,), "size"), _array(values["jpeg_size"], (2,), "jpeg_size")
    if not isinstance(values["seq"], int) or not isinstance(values["stream"], str):
        raise SchemaError("frame message: seq must be an integer and stream a string")
    if min(size) < 1 or min(jpeg_size) < 1:
        raise SchemaError(f"frame message: sizes must be positive, got {size.tolist()} and {jpeg_size.tolist()}")
    jpeg = values["jpeg"]
    if not isinstance(jpeg, bytes) or not jpeg.startswith(b"\xff\xd8"):
        raise SchemaError("frame message: jpeg must be JPEG bytes")
    return FrameMessage(stream=values["stream"], seq=values["seq"], t_capture=_number(values["t_capture"], "t_capture"),
                        size=(int(size[0]), int(size[1])), jpeg_size=(int(jpeg_size[0]), int(jpeg_size[1])),
                        jpeg=jpeg)


def _typed(values: dict[str, Any], what: str, **types: type | tuple[type, ...]) -> None:
    for name, kind in types.items():
        if not isinstance(values[name], kind) or isinstance(values[name], bool) and kind is not bool:
            raise SchemaError(f"{what}: {name} must be {getattr(kind, '__name__', kind)}, got "
                              f"{type(values[name]).__name__}")


def _stats(values: dict[str, Any]) -> StatsMessage:
    _typed(values, "stats message", stream=str, fps=dict, latency_ms=dict, drops=dict, queues=dict, totals=dict)
    lag = values.get("filter_lag_ms", {})
    if not isinstance(lag, dict):
        raise SchemaError(f"stats message: filter_lag_ms must be a map, got {type(lag).__name__}")
    return StatsMessage(stream=values["stream"], t=_number(values["t"], "t"),
                        interval_s=_number(values["interval_s"], "interval_s"),
                        **{k: values[k] for k in ("fps", "latency_ms", "drops", "queues", "totals")},
                        filter_lag_ms=lag)


def _meta(values: dict[str, Any]) -> MetaMessage:
    _typed(values, "meta message", joints=list, edges=list, root=int, units=dict, axes=str, scale=str, model=dict,
           streams=dict)
    names = values["joints"]
    if not names or not all(isinstance(n, str) for n in names):
        raise SchemaError("meta message: joints must be a list of joint names")
    edges = values["edges"]
    if not all(isinstance(e, list) and len(e) == 2 and all(isinstance(i, int) and not isinstance(i, bool)
                                                          and 0 <= i < len(names) for i in e) for e in edges):
        raise SchemaError("meta message: edges must be pairs of joint indices")
    if not 0 <= values["root"] < len(names):
        raise SchemaError(f"meta message: root {values['root']} is not a joint index")
    frames = values.get("frames")
    if frames is not None and not isinstance(frames, dict):
        raise SchemaError("meta message: frames must be a map or nil")
    return MetaMessage(joints=tuple(names), edges=tuple((e[0], e[1]) for e in edges), root=values["root"],
                       units=values["units"], axes=values["axes"], scale=values["scale"], model=values["model"],
                       streams=values["streams"], frames=frames)


def decode(topic: bytes, payload: bytes) -> Message:
    """Validate and type one message; raises `SchemaError` on anything unexpected."""
    if len(payload) > schema.MAX_MESSAGE_BYTES:
        raise SchemaError(f"message of {len(payload)} bytes exceeds the {schema.MAX_MESSAGE_BYTES} limit")
    try:
        name = topic.decode()
        values = schema.unpack(payload)
    except Exception as exc:  # msgpack raises many types on hostile input
        raise SchemaError(f"undecodable message on {topic[:64]!r}: {type(exc).__name__}") from None
    if not isinstance(values, dict):
        raise SchemaError(f"message on {name!r} is not a map")
    if values.get("v") != schema.VERSION:
        raise SchemaError(f"message schema version {values.get('v')!r} is not supported (this client reads "
                          f"version {schema.VERSION}); upgrade wildpose")
    if name.startswith((schema.POSE_PREFIX, schema.RAW_PREFIX)):
        values = _require(values, schema.POSE_FIELDS, "pose message")
        if not isinstance(values["people"], list):
            raise SchemaError("pose message: people must be a list")
        size = _array(values["size"], (2,), "size")
        if not isinstance(values["seq"], int) or not isinstance(values["stream"], str):
            raise SchemaError("pose message: seq must be an integer and stream a string")
        return PoseMessage(stream=values["stream"], seq=values["seq"],
                           t_capture=_number(values["t_capture"], "t_capture"),
                           t_publish=_number(values["t_publish"], "t_publish"),
                           size=(int(size[0]), int(size[1])),
                           people=tuple(_person(p) for p in values["people"]), raw=name.startswith(schema.RAW_PREFIX))
    if name.startswith(schema.FRAME_PREFIX):
        return _frame(_require(values, schema.FRAME_FIELDS, "frame message"))
    if name.startswith(schema.STATS_PREFIX):
        return _stats(_require(values, schema.STATS_FIELDS, "stats message"))
    if name == schema.META_TOPIC:
        return _meta(_require(values, schema.META_FIELDS, "meta message"))
    raise SchemaError(f"unknown topic {name[:64]!r}")


class PoseSubscriber:
    """A ZeroMQ SUB socket on one or more WildPose publishers (fan-in), yielding typed messages.

    streams: only these stream ids (None: all). topics: any of "pose", "stats", "meta", "frame"
    (default: all but "frame").
    strict: raise `SchemaError` on a malformed message instead of skipping it.
    curve_server_key, curve_secret: for a publisher with CURVE on, the file of its public key and this
    client's key pair file (NAME.key_secret, from `wildpose keys`).
    """

    def __init__(self, endpoints: str | Iterable[str] = DEFAULT_ENDPOINT, *,
                 streams: Iterable[str] | None = None, topics: Iterable[str] = TOPICS,
                 strict: bool = False, receive_hwm: int = 10000,
                 context: zmq.Context | None = None, curve_server_key: str | None = None,
                 curve_secret: str | None = None) -> None:
        topics = tuple(topics)
        unknown = sorted(set(topics) - set(ALL_TOPICS))
        if unknown:
            raise ValueError(f"unknown topics {unknown}; choose from {list(ALL_TOPICS)}")
        self.streams = None if streams is None else frozenset(streams)
        self.strict = strict
        self.missed: dict[str, int] = {}
        self.invalid = 0
        self._last_seq: dict[str, int] = {}
        self._context = context or zmq.Context.instance()
        self._socket = sockets.subscriber(self._context, receive_hwm)
        if (curve_server_key is None) != (curve_secret is None):
            self._socket.close(linger=0)
            raise ConfigError("CURVE needs both the server's public key and this client's secret key file")
        if curve_server_key is not None:
            from wildpose.stream import auth

            try:
                auth.secure_subscriber(self._socket, curve_server_key, curve_secret)
            except ConfigError:
                self._socket.close(linger=0)
                raise
        for prefix in self._prefixes(topics):
            self._socket.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        for endpoint in [endpoints] if isinstance(endpoints, str) else endpoints:
            self._socket.connect(endpoint)

    def _prefixes(self, topics: tuple[str, ...]) -> list[str]:
        prefixes = []
        for topic in topics:
            if topic == "meta":
                prefixes.append(schema.META_TOPIC)
                continue
            base = {"pose": schema.POSE_PREFIX, "stats": schema.STATS_PREFIX, "frame": schema.FRAME_PREFIX,
                    "raw": schema.RAW_PREFIX}[topic]
            prefixes += [base + s for s in self.streams] if self.streams is not None else [base]
        return prefixes

    def recv(self, timeout: float | None = None) -> Message | None:
        """The next valid message, or None if none arrives within `timeout` seconds (None: wait)."""
        deadline_ms = None if timeout is None else int(timeout * 1000)
        while True:
            if not self._socket.poll(deadline_ms):
                return None
            parts = self._socket.recv_multipart()
            if len(parts) != 2:
                self._reject(SchemaError(f"expected [topic, payload], got {len(parts)} frames"))
                continue
            try:
                message = decode(*parts)
            except SchemaError as exc:
                self._reject(exc)
                continue
            stream = getattr(message, "stream", None)
            if self.streams is not None and stream is not None and stream not in self.streams:
                continue  # a prefix match of another stream ("cam1" vs "cam10")
            if isinstance(message, PoseMessage):
                self._count_gap(message)
            return message

    def __iter__(self) -> Iterator[Message]:
        while True:
            message = self.recv()
            if message is not None:
                yield message

    def _count_gap(self, message: PoseMessage) -> None:
        last = self._last_seq.get(message.stream)
        if last is not None and message.seq > last + 1:
            self.missed[message.stream] = self.missed.get(message.stream, 0) + message.seq - last - 1
        self._last_seq[message.stream] = message.seq

    def _reject(self, error: SchemaError) -> None:
        if self.strict:
            raise error
        if self.invalid == 0:
            log.warning("ignoring a malformed message: %s", error)
        self.invalid += 1

    def close(self) -> None:
        self._socket.close(linger=0)

    def __enter__(self) -> PoseSubscriber:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
