"""Recording what pipelines publish into MCAP files, and replaying them over ZeroMQ as a pipeline would.

A recording keeps every message byte for byte: one MCAP channel per ZeroMQ topic (`pose/door`,
`stats/door`, `meta`, `frame/door`), message encoding "msgpack" (the payload as published, schema
version 1), a JSON Schema per kind of topic for tools that want one, and as each message's log time
the moment it was received (unix nanoseconds, advanced by the monotonic clock so pauses and clock
steps cannot reorder it). Files are written unchunked and flushed message by message, so a recorder
that is killed loses at most the message it was writing; replay reads such a file up to its last
whole message and says where it stopped.

`stream/replay.py` publishes recordings again.
"""

from __future__ import annotations

import json
import logging
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import zmq
from mcap import records as mcap_records
from mcap.data_stream import ReadDataStream
from mcap.exceptions import McapError
from mcap.opcode import Opcode
from mcap.stream_reader import breakup_chunk
from mcap.writer import CompressionType, Writer

from wildpose import __version__
from wildpose.errors import ConfigError, WildPoseError
from wildpose.stream import schema, sockets
from wildpose.stream.auth import ClientKeys
from wildpose.stream.config import check_endpoints, check_positive
from wildpose.stream.stopping import StopConditions

log = logging.getLogger(__name__)

SUFFIX = ".mcap"
PROFILE = "wildpose"
MESSAGE_ENCODING = "msgpack"
SCHEMA_ENCODING = "jsonschema"
MIN_FILE_BYTES = 64 * 1024
_MAGIC = b"\x89MCAP0\r\n"
_RECORD_HEAD = struct.Struct("<BQ")  # opcode, body length
_MAX_RECORD_BYTES = 1 << 30  # far above any message (4 MiB) or chunk a tool writes; beyond is damage
_POLL_MS = 100


class RecordingError(WildPoseError):
    """A recording is missing, not MCAP, damaged, or cannot be written."""


# -- the schemas written into each file (JSON Schema of the msgpack maps; binary as "bytes") -----

_NUMBER, _INT, _STR, _BOOL = {"type": "number"}, {"type": "integer"}, {"type": "string"}, {"type": "boolean"}


def _pair(item) -> dict:
    return {"type": "array", "items": item, "minItems": 2, "maxItems": 2}


def _rows(width: int) -> dict:
    return {"type": "array", "minItems": 16, "maxItems": 16,
            "items": {"type": "array", "items": _NUMBER, "minItems": width, "maxItems": width}}


_PERSON = {"type": "object", "required": list(schema.PERSON_FIELDS), "properties": {
    "id": _INT, "bbox": {"type": "array", "items": _NUMBER, "minItems": 4, "maxItems": 4}, "score": _NUMBER,
    "joints2d": _rows(2), "joints3d": _rows(3),
    "conf": {"type": "array", "items": _NUMBER, "minItems": 16, "maxItems": 16}, "tracked": _BOOL,
    "root_cam": {"type": ["array", "null"], "items": _NUMBER, "minItems": 3, "maxItems": 3},
    "joints3d_cam": {"anyOf": [_rows(3), {"type": "null"}]}}}
_SCHEMAS = {
    "pose": {"required": schema.POSE_FIELDS, "properties": {
        "stream": _STR, "seq": _INT, "t_capture": _NUMBER, "t_publish": _NUMBER, "size": _pair(_INT),
        "people": {"type": "array", "items": _PERSON}}},
    "stats": {"required": schema.STATS_FIELDS, "properties": {
        "stream": _STR, "t": _NUMBER, "interval_s": _NUMBER, "fps": {"type": "object"},
        "latency_ms": {"type": "object"}, "drops": {"type": "object"}, "queues": {"type": "object"},
        "totals": {"type": "object"}}},
    "meta": {"required": schema.META_FIELDS, "properties": {
        "joints": {"type": "array", "items": _STR}, "edges": {"type": "array", "items": _pair(_INT)},
        "root": _INT, "scale": _STR, "axes": _STR}},
    "frame": {"required": schema.FRAME_FIELDS, "properties": {
        "stream": _STR, "seq": _INT, "t_capture": _NUMBER, "size": _pair(_INT), "jpeg_size": _pair(_INT),
        "jpeg": {"description": "JPEG bytes (msgpack bin)"}}},
}


def topic_kind(topic: str) -> str | None:
    """"pose", "stats", "frame", "meta", or None for a topic schema version 1 does not know."""
    if topic == schema.META_TOPIC:
        return "meta"
    if topic.startswith(schema.RAW_PREFIX):
        return "pose"
    for prefix in (schema.POSE_PREFIX, schema.STATS_PREFIX, schema.FRAME_PREFIX):
        if topic.startswith(prefix):
            return prefix[:-1]
    return None


def _schema_bytes(kind: str) -> bytes:
    body = _SCHEMAS[kind]
    document = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": f"wildpose {kind} v1",
                "description": "msgpack map, WildPose message schema version 1 (README: Subscribing)",
                "type": "object", "required": list(body["required"]),
                "properties": {"v": {"const": schema.VERSION}, **body["properties"]}}
    return json.dumps(document, sort_keys=True).encode()


# -- recording ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class RecordConfig:
    endpoints: tuple[str, ...]
    output: str  # session.mcap; with max_bytes: session.000.mcap, session.001.mcap, ...
    max_bytes: int | None = None  # start a new file once one reaches this size
    duration_s: float | None = None  # stop after this long
    idle_timeout_s: float | None = None  # stop once nothing arrived for this long (after the first message)
    receive_hwm: int = 100_000  # messages ZeroMQ may queue for the recorder before dropping
    curve: ClientKeys | None = None  # for a publisher with CURVE on

    def __post_init__(self) -> None:
        check_endpoints("record", self.endpoints)
        path = Path(self.output)
        if path.suffix != SUFFIX:
            raise ConfigError(f"record: --output must end in {SUFFIX}, got {self.output!r}")
        if not path.parent.is_dir():
            raise ConfigError(f"record: folder {str(path.parent)!r} does not exist; create it or choose "
                              "another --output")
        check_positive("record", "max_bytes", self.max_bytes, integer=True, optional=True)
        if self.max_bytes is not None and self.max_bytes < MIN_FILE_BYTES:
            raise ConfigError(f"record.max_bytes must be at least {MIN_FILE_BYTES}, got {self.max_bytes}")
        check_positive("record", "duration_s", self.duration_s, optional=True)
        check_positive("record", "idle_timeout_s", self.idle_timeout_s, optional=True)
        check_positive("record", "receive_hwm", self.receive_hwm, integer=True)

    def path(self, part: int | None) -> Path:
        path = Path(self.output)
        return path if part is None else path.with_name(f"{path.stem}.{part:03d}{path.suffix}")


@dataclass
class RecordSummary:
    messages: int = 0
    bytes: int = 0
    malformed: int = 0  # ZeroMQ messages that were not [topic, payload]
    files: list[Path] = field(default_factory=list)
    stopped_by: str = ""


class _McapFile:
    """One MCAP file being written: its channels are registered as their topics first appear."""

    def __init__(self, path: Path, endpoints: tuple[str, ...], part: int | None) -> None:
        self.path = path
        try:
            self.file = open(path, "wb")  # noqa: SIM115 (closed in close())
        except OSError as exc:
            raise RecordingError(f"cannot write the recording {path}: {exc.strerror}") from None
        # Unchunked: each message reaches the file at once, so a killed recorder loses at most one.
        self.writer = Writer(self.file, use_chunking=False, compression=CompressionType.NONE)
        self.writer.start(profile=PROFILE, library=f"wildpose {__version__}")
        self.writer.add_metadata("wildpose", {"schema_version": str(schema.VERSION),
                                              "endpoints": " ".join(endpoints),
                                              "part": "" if part is None else str(part)})
        self.schemas: dict[str, int] = {}
        self.channels: dict[str, int] = {}

    def add(self, topic: str, payload: bytes, log_time_ns: int, sequence: int) -> None:
        channel = self.channels.get(topic)
        if channel is None:
            kind = topic_kind(topic)
            schema_id = 0
            if kind is not None:
                if kind not in self.schemas:
                    self.schemas[kind] = self.writer.register_schema(f"wildpose.{kind}.v1", SCHEMA_ENCODING,
                                                                     _schema_bytes(kind))
                schema_id = self.schemas[kind]
            channel = self.channels[topic] = self.writer.register_channel(topic, MESSAGE_ENCODING, schema_id)
        self.writer.add_message(channel, log_time=log_time_ns, data=payload, publish_time=log_time_ns,
                                sequence=sequence & 0xFFFFFFFF)
        self.file.flush()

    @property
    def size(self) -> int:
        return self.file.tell()

    def close(self) -> None:
        """Write the summary and close; the file is closed even when writing fails (a full disk)."""
        try:
            self.writer.finish()
        finally:
            self.file.close()


def record(config: RecordConfig, should_stop: Callable[[], bool]) -> RecordSummary:
    """Subscribe to everything the endpoints publish and write it to MCAP until a stop condition."""
    summary = RecordSummary()
    context = zmq.Context()
    socket = sockets.subscriber(context, config.receive_hwm, max_message_bytes=None)
    socket.setsockopt(zmq.SUBSCRIBE, b"")  # every topic, also ones added after this recorder was written
    if config.curve is not None:
        config.curve.apply(socket)
    for endpoint in config.endpoints:
        socket.connect(endpoint)
    part = 0 if config.max_bytes else None
    current = _McapFile(config.path(part), config.endpoints, part)
    summary.files.append(current.path)
    log.info("recording %s to %s", " ".join(config.endpoints), current.path)
    stop = StopConditions(should_stop, config.duration_s, config.idle_timeout_s)
    wall0, mono0 = time.time_ns(), time.monotonic_ns()
    last_meta: bytes | None = None
    failure: OSError | None = None
    try:
        while True:
            reason = stop.reason()
            if reason is not None:
                summary.stopped_by = reason
                break
            if not socket.poll(_POLL_MS):
                continue
            while True:
                try:
                    parts = socket.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                log_time = wall0 + (time.monotonic_ns() - mono0)
                stop.heard()
                if len(parts) != 2:
                    summary.malformed += 1
                    continue
                topic = parts[0].decode("utf-8", "replace")
                if config.max_bytes and current.size >= config.max_bytes:
                    current.close()
                    part += 1
                    current = _McapFile(config.path(part), config.endpoints, part)
                    summary.files.append(current.path)
                    log.info("recording continues in %s", current.path)
                    if last_meta is not None and topic != schema.META_TOPIC:
                        # each file carries the meta, so a part replays alone; replay of all parts
                        # sends an unchanged meta once, so no subscriber sees it twice
                        current.add(schema.META_TOPIC, last_meta, log_time, summary.messages)
                if topic == schema.META_TOPIC:
                    last_meta = parts[1]
                current.add(topic, parts[1], log_time, summary.messages)
                summary.messages += 1
                summary.bytes += len(parts[1])
    except OSError as exc:  # writing: a full disk, a file system gone read-only or away
        failure = exc
    finally:
        try:
            current.close()
        except OSError as exc:
            failure = failure or exc
        socket.close(linger=0)
        context.term()
    if failure is not None:
        files = ", ".join(str(p) for p in summary.files)
        raise RecordingError(f"cannot write the recording {current.path}: {failure.strerror or failure}; "
                             f"recording stopped after {summary.messages} messages, which {files} "
                             f"{'holds' if len(summary.files) == 1 else 'hold'} up to the last whole one "
                             "(replay reads it); free some space, or record to another disk") from None
    if summary.malformed:
        log.warning("skipped %d messages that were not [topic, payload]", summary.malformed)
    log.info("recorded %d messages (%d payload bytes) in %s; stopped by %s", summary.messages, summary.bytes,
             ", ".join(str(p) for p in summary.files), summary.stopped_by)
    return summary


# -- reading -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class RecordedMessage:
    topic: str
    payload: bytes
    log_time_ns: int  # when the recorder received it


class RecordingReader:
    """Reads a recording's messages in file order; a damaged tail ends the messages and is described
    in `damage` (None for a whole file)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise RecordingError(f"recording not found: {self.path}")
        self.size = self.path.stat().st_size
        with open(self.path, "rb") as file:
            if file.read(len(_MAGIC)) != _MAGIC:
                raise RecordingError(f"{self.path} is not an MCAP recording (it does not start with the MCAP "
                                     "magic bytes); record one with `wildpose record`")
        self.damage: str | None = None
        self.messages_read = 0
        self.last_time_ns: int | None = None
        self.first_time_ns: int | None = None
        self.good_bytes = 0  # the end of the last whole record

    def messages(self) -> Iterator[RecordedMessage]:
        self.damage, self.messages_read, self.first_time_ns, self.last_time_ns = None, 0, None, None
        with open(self.path, "rb") as file:
            file.seek(len(_MAGIC))
            self.good_bytes = len(_MAGIC)
            topics: dict[int, str] = {}
            while True:
                head = file.read(_RECORD_HEAD.size)
                if not head:
                    self.damage = "it ends without the MCAP footer (the recorder was stopped abruptly)"
                    return
                if len(head) < _RECORD_HEAD.size:
                    self.damage = "it ends in the middle of a record"
                    return
                opcode, length = _RECORD_HEAD.unpack(head)
                if length > min(_MAX_RECORD_BYTES, self.size - self.good_bytes - len(head)):
                    self.damage = ("it ends in the middle of a record" if length <= _MAX_RECORD_BYTES
                                   else f"a record at byte {self.good_bytes} claims {length} bytes")
                    return
                body = file.read(length)
                try:
                    records = _parse(opcode, body)
                except (McapError, struct.error, UnicodeDecodeError, ValueError) as exc:
                    self.damage = f"the record at byte {self.good_bytes} is corrupt ({exc})"
                    return
                self.good_bytes += len(head) + length
                for item in records:
                    if isinstance(item, mcap_records.Channel):
                        topics[item.id] = item.topic
                    elif isinstance(item, mcap_records.Message):
                        topic = topics.get(item.channel_id)
                        if topic is None:
                            self.damage = f"a message at byte {self.good_bytes} names an unknown channel"
                            return
                        self.messages_read += 1
                        self.first_time_ns = self.first_time_ns if self.first_time_ns is not None else item.log_time
                        self.last_time_ns = item.log_time
                        yield RecordedMessage(topic, item.data, item.log_time)
                    elif isinstance(item, mcap_records.Footer):
                        if file.read(len(_MAGIC)) != _MAGIC:
                            self.damage = "its closing magic bytes are missing"
                        return

    def describe_damage(self) -> str:
        reached = ((self.last_time_ns - self.first_time_ns) / 1e9 if self.last_time_ns is not None else 0.0)
        return (f"{self.path} is damaged: {self.damage}; replayed its {self.messages_read} whole messages "
                f"(up to {reached:.3f} s after its first), stopped at byte {self.good_bytes} of {self.size}")


def _parse(opcode: int, body: bytes) -> list:
    stream = ReadDataStream(BytesIO(body))
    if opcode == Opcode.CHANNEL:
        return [mcap_records.Channel.read(stream)]
    if opcode == Opcode.MESSAGE:
        return [mcap_records.Message.read(stream, len(body))]
    if opcode == Opcode.FOOTER:
        return [mcap_records.Footer.read(stream)]
    if opcode == Opcode.CHUNK:  # recordings chunked by other tools
        return breakup_chunk(mcap_records.Chunk.read(stream), validate_crc=True)
    return []  # header, schemas, metadata, indexes, statistics: nothing replay needs


def read_all(path: str | Path) -> tuple[list[RecordedMessage], str | None]:
    """Every whole message of a recording, and its damage (None if whole)."""
    reader = RecordingReader(path)
    return list(reader.messages()), reader.damage
