"""The publish stage: one process that sends poses, stats and meta over a ZeroMQ XPUB socket.

XPUB rather than PUB so the publisher sees subscriptions: each new subscriber that wants `meta`
gets it at once (no one has to wait for a periodic repeat), and `--wait-subscribers N` holds the
pipeline until N subscriptions arrived, so a test or a recorder misses no frame (the "slow joiner"
of the zguide) without any sleep. Sends never block: a subscriber that stops reading loses its own
messages at the high-water mark and slows no one else.

The meta message describes each stream's camera at the frame size it sends. A stream whose source
was down at start has none (`intrinsics` nil) until its first frame, and one that comes back at
another size has the old one; publish then sends meta again, to every meta subscriber, with the
camera for the size the frames now have.

For viewers it can also read each frame back from the frame ring (by seq): JPEG thumbnails on
`frame/<stream>` (`--publish-frames`) and the overlay video (`--overlay`), written on a thread. A
frame whose slot was overwritten before publish got to it is skipped and counted (`frames_lapped`).
"""

from __future__ import annotations

import collections
import logging
import multiprocessing.connection
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zmq

from wildpose.errors import ConfigError, WildPoseError
from wildpose.stream import auth, overlay, process, schema, sockets, video_out
from wildpose.stream.client import Person
from wildpose.stream.config import PublishConfig, SourceConfig, bind_failure
from wildpose.stream.frames import EndOfStream, FrameTicket
from wildpose.stream.shm import RingSpec, SlotRing
from wildpose.stream.stats import DROP_REASONS, Counters, LatencyHistogram, LatencyWindow, LinkDepths

log = logging.getLogger(__name__)

_POLL_S = 0.05
_FPS_WINDOW_S = 1.0  # the overlay's fps: frames published over the last second (batches come in bursts)
# A thumbnail's JPEG leaves room in the message limit for the rest of its map (tens of bytes).
_THUMBNAIL_MAX_BYTES = schema.MAX_MESSAGE_BYTES - 64 * 1024
_STAGE_COUNTERS = {"capture": "captured", "preprocess": "preprocessed", "infer": "inferred",
                   "smooth": "smoothed", "publish": "published"}
# latency name -> (from stage, to stage) in a ticket's `times`
_LATENCIES = {"preprocess": ("capture", "preprocess"), "infer": ("preprocess", "infer"),
              "smooth": ("infer", "smooth"), "publish": ("smooth", "publish"),
              "total": ("capture", "publish")}


@dataclass(frozen=True)
class PublishArgs:
    config: PublishConfig
    streams: tuple[str, ...]
    meta: dict[str, Any]
    frame_rings: dict[str, RingSpec] = field(default_factory=dict)  # only when thumbnails or overlay are on
    every_frame: frozenset[str] = frozenset()  # streams whose overlay must have every frame
    sources: dict[str, SourceConfig] = field(default_factory=dict)  # whose cameras meta describes, by size
    latency_arrays: dict = field(default_factory=dict)  # stream -> LatencyHistogram array (--metrics)


class _StreamStats:
    def __init__(self, counters: Counters) -> None:
        self.counters = counters
        self.latency = LatencyWindow()
        self.filter_lag = LatencyWindow()
        self.last_counts = counters.snapshot()
        self.last_time = time.monotonic()

    def message(self, stream: str, queues: dict[str, int]) -> dict[str, Any]:
        now = time.monotonic()
        counts = self.counters.snapshot()
        elapsed = max(now - self.last_time, 1e-9)
        fps = {stage: round((counts[name] - self.last_counts[name]) / elapsed, 3)
               for stage, name in _STAGE_COUNTERS.items()}
        self.last_counts, self.last_time = counts, now
        return schema.stats(stream, time.time(), round(elapsed, 3), fps, self.latency.report(),
                            {reason: counts[f"drop_{reason}"] for reason in DROP_REASONS}, queues, counts,
                            self.filter_lag.report())


def main(args: PublishArgs, handover, counters_arrays, depths_array, stop_event, control_queue,
         log_level: int, weights_label: str | None) -> None:
    """`handover` brings the pipes from smoothing (see `_Inbox`)."""
    process.init_child(log_level, weights_label)
    context = zmq.Context()
    socket = sockets.publisher(context, args.config.send_hwm)
    authenticator = None
    try:
        if args.config.curve_secret is not None:
            authenticator = auth.secure_publisher(context, socket, args.config.curve_secret, args.config.curve_clients)
            log.info("CURVE on: the stream is encrypted; subscribers %s", "need a key in " + args.config.curve_clients
                     if args.config.curve_clients else "need the server's public key")
        socket.bind(args.config.endpoint)
    except (zmq.ZMQError, WildPoseError) as exc:
        reason = (bind_failure(args.config.endpoint, exc.errno, exc.strerror) if isinstance(exc, zmq.ZMQError)
                  else str(exc))
        control_queue.put(("fatal", "publish", reason))
        if authenticator is not None:
            authenticator.stop()
        socket.close(linger=0)
        context.term()
        return
    if (args.config.endpoint.startswith("tcp://") and args.config.curve_secret is None
            and ("*" in args.config.endpoint or "0.0.0.0" in args.config.endpoint)):
        log.warning("publishing on all interfaces (%s) without authentication: anyone on the network "
                    "can read the poses (see --curve-secret)", args.config.endpoint)
    try:
        views = _FrameViews(args, counters_arrays)
    except WildPoseError as exc:
        control_queue.put(("fatal", "publish", str(exc)))
        if authenticator is not None:
            authenticator.stop()
        socket.close(linger=0)
        context.term()
        return
    try:
        publisher = _Publisher(socket, args, counters_arrays, depths_array, views)
    except WildPoseError as exc:  # e.g. a VMC host that does not resolve
        control_queue.put(("fatal", "publish", str(exc)))
        views.close()
        if authenticator is not None:
            authenticator.stop()
        socket.close(linger=0)
        context.term()
        return
    control_queue.put(("listening", "publish", args.config.endpoint))
    try:
        while publisher.subscriptions < args.config.wait_subscribers and not stop_event.is_set():
            publisher.serve_subscriptions(timeout_ms=100)
        control_queue.put(("ready", "publish", args.config.endpoint))
        publisher.run(_Inbox(handover, control_queue), stop_event)
    finally:
        views.close()
        socket.close()
        if authenticator is not None:
            authenticator.stop()
        context.term()


class _Publisher:
    def __init__(self, socket: zmq.Socket, args: PublishArgs, counters_arrays, depths_array,
                 views: _FrameViews) -> None:
        self.socket = socket
        self.views = views
        self.args = args
        self.meta = {**args.meta, "streams": {stream: dict(described) for stream, described
                                               in args.meta.get("streams", {}).items()}}
        self.meta_payload = schema.pack(self.meta)
        # stream -> the frame size meta's camera is for (or was refused for): sent again on a change
        self.camera_sizes = {stream: tuple(described["intrinsics"]["size"]) if described.get("intrinsics") else None
                             for stream, described in self.meta["streams"].items()}
        self.stats = {s: _StreamStats(Counters(counters_arrays[s])) for s in args.streams}
        self.histograms = {s: LatencyHistogram(array) for s, array in args.latency_arrays.items()}
        self.counters = {s: stream_stats.counters for s, stream_stats in self.stats.items()}
        self.depths = LinkDepths(depths_array)
        self.inbox: _Inbox | None = None
        self.last_seq = {s: -1 for s in args.streams}  # a restart may send again what went out: not twice
        self.subscriptions = 0
        config = args.config
        self.vmc = None
        if config.vmc:
            from wildpose.stream import vmc  # SciPy and python-osc are loaded only for VMC

            self.vmc = vmc.VmcSender(config.vmc, config.vmc_person)
        self.vmc_stream = config.vmc_stream or args.streams[0]
        if self.vmc is not None:
            log.info("VMC: sending %s of stream %s to %s:%d", f"person {config.vmc_person}" if config.vmc_person
                     else "the lowest id in view", self.vmc_stream, self.vmc.host, self.vmc.port)

    def run(self, inbox: _Inbox, stop_event) -> None:
        self.inbox = inbox
        ended: set[str] = set()
        next_stats = time.monotonic() + self.args.config.stats_interval_s
        while ended != set(self.args.streams) and not stop_event.is_set():
            self.serve_subscriptions(timeout_ms=0)
            timeout = max(0.0, min(_POLL_S, next_stats - time.monotonic()))
            item = inbox.get(timeout)
            if isinstance(item, FrameTicket) and item.seq > self.last_seq[item.stream]:
                self.last_seq[item.stream] = item.seq
                self.publish_pose(item)
            elif isinstance(item, EndOfStream) and item.stream not in ended:
                ended.add(item.stream)
                self.counters[item.stream].set("ended", 1)
                log.info("%s: stream ended (%s)", item.stream, item.reason)
            if time.monotonic() >= next_stats:
                self.publish_stats()
                next_stats = time.monotonic() + self.args.config.stats_interval_s
        self.views.finish_videos()  # so the final figures count every overlay frame
        self.publish_stats()  # the final figures, also after the last frame of a file

    def serve_subscriptions(self, timeout_ms: int) -> None:
        """Count new subscriptions and answer each that covers `meta` with the meta message."""
        while self.socket.poll(timeout_ms, zmq.POLLIN):
            event = self.socket.recv()
            timeout_ms = 0
            if event[:1] == b"\x01":
                self.subscriptions += 1
                if schema.META_TOPIC.encode().startswith(event[1:]):
                    self._send(schema.META_TOPIC, self.meta_payload, None)

    def publish_pose(self, ticket: FrameTicket) -> None:
        if ticket.stream in self.args.sources and self.camera_sizes.get(ticket.stream) != tuple(ticket.size):
            self._describe_camera(ticket.stream, tuple(ticket.size))
        people = [schema.person(p.track_id, _clip_box(p.joints2d, ticket.size), p.score, p.joints2d,
                                p.joints3d, p.conf, p.tracked, p.root_cam, self.args.config.camera_joints)
                  for p in ticket.people]
        now = time.time()
        ticket.times["publish"] = time.monotonic()
        payload = schema.pack(schema.pose(ticket.stream, ticket.seq, ticket.t_capture, now, ticket.size, people))
        if self._send(schema.pose_topic(ticket.stream), payload, ticket.stream):
            self.counters[ticket.stream].add("published")
            histogram = self.histograms.get(ticket.stream)  # right after the count: the two stay within one
            if histogram is not None:
                histogram.add(ticket.times["publish"] - ticket.times["capture"])
        if self.vmc is not None and ticket.stream == self.vmc_stream:
            self.vmc.send([(p.track_id, p.joints3d, p.root_cam) for p in ticket.people])
        if self.args.config.raw:
            raw = [schema.person(p.track_id, _clip_box(p.raw[0], ticket.size), p.score, *p.raw[:2], p.conf,
                                 p.tracked, p.raw[2]) for p in ticket.people]
            self._send(schema.raw_topic(ticket.stream),
                       schema.pack(schema.pose(ticket.stream, ticket.seq, ticket.t_capture, now, ticket.size, raw)),
                       None)
        if self.views.enabled:
            thumbnail = self.views.after_pose(ticket, people, now)
            if thumbnail is not None:
                self._send(schema.frame_topic(ticket.stream), thumbnail, None)
        self.counters[ticket.stream].set("released_seq", ticket.seq)
        window = self.stats[ticket.stream].latency
        for name, lag in ticket.filter_lag_s.items():
            self.stats[ticket.stream].filter_lag.add(name, lag)
        for name, (start, end) in _LATENCIES.items():
            if start in ticket.times and end in ticket.times:
                window.add(name, ticket.times[end] - ticket.times[start])

    def _describe_camera(self, stream: str, size: tuple[int, int]) -> None:
        """Meta again, to every meta subscriber, with the stream's camera for frames of `size`."""
        self.camera_sizes[stream] = size
        try:
            described = self.args.sources[stream].intrinsics(*size).describe()
        except ConfigError:  # smoothing logs why; its roots are not placed either
            described = None
        self.meta["streams"][stream]["intrinsics"] = described
        self.meta_payload = schema.pack(self.meta)
        log.info("%s: frames of %dx%d; meta sent again with %s", stream, *size,
                 f"its camera for that size ({described['source']})" if described else "no camera for that size")
        self._send(schema.META_TOPIC, self.meta_payload, None)

    def publish_stats(self) -> None:
        depths = self.depths.report(self.inbox.taken if self.inbox is not None else 0)
        for stream, stream_stats in self.stats.items():
            self._send(schema.stats_topic(stream), schema.pack(stream_stats.message(stream, depths)), None)

    def _send(self, topic: str, payload: bytes, stream: str | None) -> bool:
        try:
            self.socket.send_multipart([topic.encode(), payload], flags=zmq.NOBLOCK)
            return True
        except zmq.Again:
            if stream is not None:
                self.counters[stream].add("drop_publish")
            return False


class _Inbox:
    """What smoothing sends, over pipes (one a smoothing process) that the supervisor hands over
    through `handover`, one list for each set of stages.

    When a stage behind publish dies, the supervisor restarts them all on new queues and new pipes
    (a killed process can leave a queue with a held lock or half a message). The old pipes are read
    to their end first, so everything the dead stages finished still goes out, each stream in order
    (a stream has one smoothing process); then publish tells the supervisor (`drained`, with the set's
    number) and takes the next list.

    Pipes are read in rounds: one wait for all of them, then one item from each pipe that was ready,
    so no busy pipe starves the others, and a wait (which costs in proportion to the number of pipes:
    about 90 us over 64) is paid once a round rather than once an item.
    """

    def __init__(self, handover, control_queue) -> None:
        self.handover = handover
        self.control = control_queue
        self.pipes: list = []  # of the set in use, those not yet read to their end
        self.ready: collections.deque = collections.deque()  # of this round, those not read yet
        self.number = 0  # of the set in use, counting from 1
        self.taken = 0  # items taken from its pipes

    def get(self, timeout: float):
        """The next item, or None after `timeout` seconds."""
        if not self.pipes:
            if not self.handover.poll(timeout):
                return None
            self.pipes, self.number, self.taken = list(self.handover.recv()), self.number + 1, 0
            timeout = 0.0
        if not self.ready:
            self.ready.extend(multiprocessing.connection.wait(self.pipes, timeout))
            if not self.ready:
                return None
        pipe = self.ready.popleft()
        try:
            item = pipe.recv()
        except (EOFError, OSError):  # every writer is gone; a torn last message reads as OSError
            pipe.close()
            self.pipes.remove(pipe)
            if not self.pipes:
                self.control.put(("drained", "publish", self.number))
            return None
        self.taken += 1
        return item


def _clip_box(joints2d, size: tuple[int, int]) -> list[float]:
    """Tight box of the joints, clipped to the frame."""
    width, height = size
    x0, y0 = joints2d.min(axis=0)
    x1, y1 = joints2d.max(axis=0)
    return [min(max(float(x0), 0.0), width - 1.0), min(max(float(y0), 0.0), height - 1.0),
            min(max(float(x1), 0.0), width - 1.0), min(max(float(y1), 0.0), height - 1.0)]


class _FrameViews:
    """Thumbnails and overlay videos, from the frames in the rings (nothing when both are off)."""

    def __init__(self, args: PublishArgs, counters_arrays) -> None:
        config = args.config
        self.enabled = config.uses_frames
        self.every_frame = args.every_frame
        self.period = 1.0 / config.frames_hz if config.frames_hz > 0 else None
        self.width = config.frames_width
        self.counters = {s: Counters(counters_arrays[s]) for s in args.streams}
        self.next_thumbnail = {s: 0.0 for s in args.streams}
        self.recent: dict[str, collections.deque] = {s: collections.deque() for s in args.streams}
        self.rings: dict[str, SlotRing] = {}
        self.writers: dict[str, video_out.OverlayWriter] = {}
        if not self.enabled:
            return
        self.rings = {s: SlotRing.attach(spec) for s, spec in args.frame_rings.items()}
        if config.overlay:
            for stream, path in video_out.stream_paths(config.overlay, args.streams).items():
                counters = self.counters[stream]
                self.writers[stream] = video_out.OverlayWriter(
                    video_out.OverlayVideo(path), stream, on_written=lambda c=counters: c.add("overlay_written"))
                log.info("%s: writing the overlay video to %s", stream, path)

    def after_pose(self, ticket: FrameTicket, people: list[dict[str, Any]], t_publish: float) -> bytes | None:
        """Feed the overlay writer and return a thumbnail message when one is due; then release the
        frame (capture in every-frame mode waits for that)."""
        stream, counters = ticket.stream, self.counters[ticket.stream]
        now = time.monotonic()
        fps = self._fps(stream, now)
        writer = self.writers.get(stream)
        thumbnail_due = self.period is not None and now >= self.next_thumbnail[stream]
        payload = None
        if writer is not None or thumbnail_due:
            frame = self.rings[stream].read(ticket.seq)
            if frame is None:
                counters.add("frames_lapped")
            else:
                if thumbnail_due:
                    self.next_thumbnail[stream] = now + self.period
                    payload = self._thumbnail(ticket, frame, counters)
                if writer is not None:
                    job = video_out.OverlayJob(frame, tuple(_person(p) for p in people), ticket.t_media,
                                               fps, (t_publish - ticket.t_capture) * 1000)
                    if not writer.submit(job, block=stream in self.every_frame):
                        counters.add("overlay_skipped")
        return payload

    def _thumbnail(self, ticket: FrameTicket, frame: np.ndarray, counters: Counters) -> bytes | None:
        """The frame message of a thumbnail, or None (counted, warned once) when none fits the limit."""
        jpeg, jpeg_size = overlay.encode_thumbnail(frame, self.width, _THUMBNAIL_MAX_BYTES)
        if jpeg is None:
            if counters.get("thumbnails_too_big") == 0:
                log.warning("%s: a %dx%d thumbnail is over the %d MiB message limit even as a low-quality JPEG; "
                            "not sent (lower --frames-width)", ticket.stream, *jpeg_size,
                            schema.MAX_MESSAGE_BYTES >> 20)
            counters.add("thumbnails_too_big")
            return None
        counters.add("thumbnails")
        return schema.pack(schema.frame(ticket.stream, ticket.seq, ticket.t_capture, ticket.size, jpeg_size, jpeg))

    def _fps(self, stream: str, now: float) -> float | None:
        recent = self.recent[stream]
        recent.append(now)
        while now - recent[0] > _FPS_WINDOW_S:
            recent.popleft()
        span = now - recent[0]
        return (len(recent) - 1) / span if span >= _FPS_WINDOW_S / 4 else None

    def finish_videos(self) -> None:
        """Write what the overlay writers hold and finish their files (once)."""
        writers, self.writers = self.writers, {}
        for writer in writers.values():
            writer.close()

    def close(self) -> None:
        self.finish_videos()
        for ring in self.rings.values():
            ring.close()


def _person(values: dict[str, Any]) -> Person:
    """A published person as the drawing reads it (the very values that went out)."""
    return Person(id=values["id"], bbox=tuple(values["bbox"]), score=values["score"],
                  joints2d=np.asarray(values["joints2d"], np.float64),
                  joints3d=np.asarray(values["joints3d"], np.float64),
                  conf=np.asarray(values["conf"], np.float64), tracked=values["tracked"])
