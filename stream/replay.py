"""Replaying recordings over ZeroMQ exactly as a pipeline published them, for consumers without a camera.

Replay publishes on an XPUB socket like the pipeline's: each new subscriber gets the recording's
`meta` at once, `--wait-subscribers N` holds it until N subscriptions arrived, and messages leave at
their recorded intervals (by their receive times) or, with `paced=False`, as fast as the subscribers
take them, never dropping one. A damaged recording is replayed up to its last whole message; then
`replay` raises `RecordingError` saying where it stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import zmq

from wildpose.errors import ConfigError, PipelineError
from wildpose.stream import auth, schema, sockets
from wildpose.stream.config import bind_failure, check_endpoints, check_positive
from wildpose.stream.recording import RecordingError, RecordingReader

log = logging.getLogger(__name__)

_POLL_MS = 100
_META_SCAN_MESSAGES = 1000  # how far into a recording replay looks for the meta to greet subscribers with


@dataclass(frozen=True)
class ReplayConfig:
    paths: tuple[str, ...]  # one recording, or the parts of a rotated one in order
    endpoint: str = "tcp://127.0.0.1:5555"
    paced: bool = True  # at the recorded intervals; False: as fast as the subscribers take them
    wait_subscribers: int = 0
    send_hwm: int = 1000
    loop: bool = False
    curve_secret: str | None = None  # CURVE as the pipeline's publisher: its key pair file ...
    curve_clients: str | None = None  # ... and the folder of admitted subscribers' public keys

    def __post_init__(self) -> None:
        if not self.paths:
            raise ConfigError("replay: give a recording (session.mcap), or the parts of one in order")
        check_endpoints("replay", (self.endpoint,))
        check_positive("replay", "wait_subscribers", self.wait_subscribers, integer=True, allow_zero=True)
        check_positive("replay", "send_hwm", self.send_hwm, integer=True)
        auth.check_server_keys("replay", self.curve_secret, self.curve_clients)


@dataclass
class ReplaySummary:
    messages: int = 0
    dropped: int = 0  # paced mode: refused by ZeroMQ at a subscriber's high-water mark
    seconds: float = 0.0
    damage: list[str] = field(default_factory=list)
    stopped_by: str = "end of recording"


class _Replayer:
    def __init__(self, config: ReplayConfig, should_stop: Callable[[], bool]) -> None:
        self.config = config
        self.should_stop = should_stop
        self.meta: bytes | None = None
        self.subscriptions = 0
        self.context = zmq.Context()
        self.socket = sockets.publisher(self.context, config.send_hwm, no_drop=not config.paced)
        self.authenticator = None
        if config.curve_secret is not None:
            self.authenticator = auth.secure_publisher(self.context, self.socket, config.curve_secret,
                                                       config.curve_clients)
        try:
            self.socket.bind(config.endpoint)
        except zmq.ZMQError as exc:
            self.close()
            raise PipelineError(bind_failure(config.endpoint, exc.errno, exc.strerror)) from None

    def serve_subscriptions(self, timeout_ms: int) -> None:
        """Count new subscriptions and greet each that covers `meta` with the meta."""
        while self.socket.poll(timeout_ms, zmq.POLLIN):
            event = self.socket.recv()
            timeout_ms = 0
            if event[:1] == b"\x01":
                self.subscriptions += 1
                if self.meta is not None and schema.META_TOPIC.encode().startswith(event[1:]):
                    self._send(schema.META_TOPIC, self.meta)

    def wait_until(self, due: float) -> None:
        while (remaining := due - time.monotonic()) > 0 and not self.should_stop():
            if remaining > 0.002:
                self.serve_subscriptions(timeout_ms=max(1, int((remaining - 0.001) * 1000)))
            else:
                time.sleep(remaining)  # pacing the last millisecond: poll() counts whole milliseconds

    def _send(self, topic: str, payload: bytes) -> bool:
        frames = [topic.encode(), payload]
        while True:
            try:
                self.socket.send_multipart(frames, flags=zmq.NOBLOCK)
                return True
            except zmq.Again:
                if self.config.paced:
                    return False
            if self.should_stop():  # as fast as possible: wait for room, but not past a stop
                return False
            self.socket.poll(_POLL_MS, zmq.POLLOUT)

    def run(self, summary: ReplaySummary) -> None:
        config = self.config
        self.meta = _first_meta(config.paths[0])
        while self.subscriptions < config.wait_subscribers:
            if self.should_stop():
                summary.stopped_by = "signal"
                return
            self.serve_subscriptions(timeout_ms=_POLL_MS)
        started = time.monotonic()
        while True:
            origin: tuple[float, int] | None = None  # (monotonic, log time) of the pass's first message
            for path in config.paths:
                reader = RecordingReader(path)
                for message in reader.messages():
                    if self.should_stop():
                        summary.stopped_by = "signal"
                        summary.seconds = time.monotonic() - started
                        return
                    if config.paced:
                        if origin is None:
                            origin = (time.monotonic(), message.log_time_ns)
                        self.wait_until(origin[0] + (message.log_time_ns - origin[1]) / 1e9)
                    self.serve_subscriptions(timeout_ms=0)
                    if message.topic == schema.META_TOPIC:
                        if message.payload == self.meta:
                            summary.messages += 1  # every subscriber got it on subscribing
                            continue
                        self.meta = message.payload
                    if self._send(message.topic, message.payload):
                        summary.messages += 1
                    else:
                        summary.dropped += 1
                if reader.damage and reader.describe_damage() not in summary.damage:
                    summary.damage.append(reader.describe_damage())
            if not config.loop:
                break
        summary.seconds = time.monotonic() - started

    def close(self) -> None:
        self.socket.close()
        if self.authenticator is not None:
            self.authenticator.stop()
        self.context.term()


def _first_meta(path: str) -> bytes | None:
    reader = RecordingReader(path)
    for index, message in enumerate(reader.messages()):
        if message.topic == schema.META_TOPIC:
            return message.payload
        if index >= _META_SCAN_MESSAGES:
            break
    return None


def replay(config: ReplayConfig, should_stop: Callable[[], bool]) -> ReplaySummary:
    """Publish the recordings' messages; raises `RecordingError` after replaying a damaged one."""
    for path in config.paths:
        RecordingReader(path)  # a missing file fails before anything is bound
    replayer = _Replayer(config, should_stop)
    summary = ReplaySummary()
    log.info("replaying %s on %s (%s)", " ".join(str(p) for p in config.paths), config.endpoint,
             "paced as recorded" if config.paced else "as fast as possible")
    if config.wait_subscribers:
        log.info("waiting for %d subscriber(s) on %s", config.wait_subscribers, config.endpoint)
    try:
        replayer.run(summary)
    finally:
        replayer.close()
    log.info("replayed %d messages in %.2f s%s; stopped by %s", summary.messages, summary.seconds,
             f", {summary.dropped} dropped at subscribers' high-water mark" if summary.dropped else "",
             summary.stopped_by)
    if summary.damage:
        raise RecordingError("; ".join(summary.damage))
    return summary
