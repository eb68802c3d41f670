"""The capture stage: one process per source, decoding frames into the source's shared-memory ring.

Frames go into the ring and a small ticket goes down a pipe to preprocess, one `send` per ticket: a
write of a few hundred bytes to a pipe is atomic, so a capture killed at any instant leaves no torn
message and no held lock behind, and its restarted successor writes to the same pipe. Live sources
(cameras, RTSP, HTTP) and files in realtime mode never wait: preprocess keeps the latest ticket and
counts the ones it skips as `stale` drops. Files in every-frame mode wait for preprocess instead, so
every frame is processed. A live source that fails is reopened with exponential backoff, forever, and
every loss is logged; a file that fails ends its stream with the reason.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

import av

from wildpose.errors import SourceError
from wildpose.stream import process, sources
from wildpose.stream.config import SourceConfig
from wildpose.stream.frames import EndOfStream, FrameTicket
from wildpose.stream.shm import RingSpec, SlotRing
from wildpose.stream.stats import Counters

log = logging.getLogger(__name__)

EXIT_END_OF_FILE = 0
EXIT_SOURCE_FAILED = 3
_BACKOFF_START_S = 0.5
_RING_FULL_POLL_S = 0.002
_PACE_RESYNC_S = 1.0  # a file this far behind its timestamps restarts its pacing clock
_SEGMENTED_FORMATS = ("hls", "dash")  # FFmpeg's demuxers of streams that arrive a segment at a time


@dataclass(frozen=True)
class _Outcome:
    """How one pass over an opened source ended."""

    stopped: bool = False  # the run is stopping
    end_time: float = 0.0  # media time just past the last frame: the offset for a file's next loop
    damage: str | None = None  # a file that ended early or had undecodable packets


@dataclass(frozen=True)
class CaptureArgs:
    source: SourceConfig
    ring: RingSpec
    resume_after: int  # the last seq handed on before a restart (-1 at the start)
    hold_for_publish: bool = False  # every-frame: publish reads frames too (overlay, thumbnails)
    ended: bool = False  # the stream's end was already published (a restart after it): just say it again
    threads: int = 0  # the decoder's and the colour conversion's: the host's cores over the streams (0: a core each)


def main(args: CaptureArgs, out_pipe, counters_array, stop_event, start_gate, control_queue, log_level: int,
         weights_label: str | None) -> None:
    process.init_child(log_level, weights_label)
    counters = Counters(counters_array)
    ring = SlotRing.attach(args.ring)
    try:
        code = _Capture(args, ring, out_pipe, counters, stop_event, start_gate, control_queue).run()
    finally:
        ring.close()
    raise SystemExit(code)


class _Capture:
    def __init__(self, args: CaptureArgs, ring: SlotRing, out_pipe, counters: Counters, stop_event,
                 start_gate, control_queue) -> None:
        self.source = args.source
        self.ring = ring
        self.out = out_pipe
        self.counters = counters
        self.stop = stop_event
        self.start_gate = start_gate
        self.announced = False
        self.control = control_queue
        # index of the last decoded frame of the source; a restarted live capture numbers on from the
        # last frame handed on (a file is decoded again and skips up to it)
        self.seq = args.resume_after if args.source.is_live else -1
        self.resume_after = args.resume_after
        self.hold_for_publish = args.hold_for_publish
        self.already_ended = args.ended
        self.threads = args.threads
        self.loop_offset = 0.0  # added to media time after each loop of a file
        self.backoff = _BACKOFF_START_S
        self.opened = 0.0  # time.monotonic() when the source was last opened

    def run(self) -> int:
        source = self.source
        if self.already_ended:
            self.out.send(EndOfStream(source.stream_id, "end of file"))
            return EXIT_END_OF_FILE
        while not self.stop.is_set():
            try:
                container = sources.open_source(source)
            except SourceError as exc:
                self._announce()  # tried: a dead camera must not hold the other streams back
                if not source.is_live:
                    return self._fail(str(exc))
                self._wait_to_reconnect(str(exc))
                continue
            try:
                outcome = self._read(container)
            except (av.error.FFmpegError, OSError) as exc:
                reason = getattr(exc, "strerror", None) or str(exc)
                if isinstance(exc, av.error.ExitError):  # PyAV's timeout interrupted the read
                    reason = f"no data for {source.read_timeout_s:g} s (read timeout)"
                if not source.is_live:
                    return self._fail(f"{source.display}: read error after frame {self.seq}: {reason}")
                self._wait_to_reconnect(f"lost {source.display}: {reason}")
                continue
            finally:
                container.close()
            if outcome.stopped:
                break
            if source.is_live:
                self._wait_to_reconnect(f"{source.display} ended the stream")
                continue
            if outcome.damage:
                return self._fail(f"{source.display}: {outcome.damage}")
            if source.loop:
                self.loop_offset += outcome.end_time
                continue
            self.out.send(EndOfStream(source.stream_id, "end of file"))
            log.info("%s: end of file after %d frames", source.stream_id, self.seq + 1)
            return EXIT_END_OF_FILE
        return EXIT_END_OF_FILE

    def _read(self, container) -> _Outcome:
        """Decode until the end, a stop, or an error."""
        stream = container.streams.video[0]
        decode_errors = 0

        def on_decode_error(exc: Exception) -> None:
            nonlocal decode_errors
            decode_errors += 1
            self.counters.add("drop_decode_error")
            log.warning("%s: undecodable packet skipped (%s)", self.source.stream_id, exc)

        if not self._wait_for_start():
            return _Outcome(stopped=True)
        self.opened = time.monotonic()
        pace_origin: tuple[float, float] | None = None  # (monotonic, media time) of pacing start
        decoded = 0
        end_time = 0.0
        frame_step = float(1 / stream.average_rate) if stream.average_rate else 0.0
        # A URL to a recording (its length known: an MP4, a finished HLS playlist) plays at its pace as
        # a file does, and so does a live HLS or DASH stream: its segments arrive whole, a second or more
        # of frames at once, and taken as they came all but the last of each burst were dropped as stale
        # (players too play them by their timestamps, a few segments behind the live edge). Other live
        # streams (RTSP, MJPEG) come at their own pace: pacing their first burst would only add latency.
        paced = not self.source.every_frame and (
            self.source.kind == "file" or self.source.kind == "http" and (
                container.duration is not None or container.format.name in _SEGMENTED_FORMATS))
        to_rgb = sources.RgbConverter(self.source.max_side, self.threads or (os.cpu_count() or 1))
        for frame in sources.decoded_frames(container, on_decode_error, self.threads):
            if self.stop.is_set():
                return _Outcome(stopped=True)
            decoded += 1
            self.seq += 1
            if frame.time is not None:  # the frame's own timestamp
                media_time = float(frame.time)
            elif self.source.kind == "file" and frame_step:
                # a raw stream (a Raspberry Pi's .h264) has none: players show it at its declared rate
                media_time = (decoded - 1) * frame_step
            else:  # a live source without timestamps: the arrival time, never an assumed rate
                media_time = time.monotonic() - self.opened
            end_time = media_time + frame_step
            if self.seq <= self.resume_after:
                continue  # a restarted file capture skips what was handed on before the crash
            if paced:
                pace_origin = self._pace(pace_origin, media_time)
            elif self.source.every_frame and not self._wait_for_free_slot():
                return _Outcome(stopped=True)
            image = to_rgb(frame)
            if image.nbytes > self.ring.spec.slot_bytes:  # a live source came back at a larger size
                image = sources.shrink_to(image, self.ring.spec.slot_bytes)
            self.ring.write(self.seq, image)
            self.counters.add("captured")
            self.backoff = _BACKOFF_START_S
            ticket = FrameTicket(stream=self.source.stream_id, seq=self.seq, t_capture=time.time(),
                                 t_media=self.loop_offset + media_time,
                                 size=(image.shape[1], image.shape[0]), times={"capture": time.monotonic()})
            self.out.send(ticket)
            self.counters.set("last_seq", self.seq)
        declared = stream.frames
        if self.source.kind == "file" and (declared and decoded < declared - 1 or decode_errors and not declared):
            return _Outcome(end_time=end_time, damage=f"truncated or corrupt: decoded {decoded} of "
                            f"{declared or 'unknown'} frames ({decode_errors} undecodable packets)")
        return _Outcome(end_time=end_time)

    def _announce(self) -> None:
        if not self.announced:
            self.control.put(("ready", f"capture-{self.source.stream_id}", self.source.display))
            self.announced = True

    def _wait_for_start(self) -> bool:
        """Say the source is open, then wait for the supervisor's start gate (open at once after a
        restart); False when the run stops first."""
        self._announce()
        while not self.start_gate.wait(0.1):
            if self.stop.is_set():
                return False
        return True

    def _pace(self, origin: tuple[float, float] | None, media_time: float) -> tuple[float, float]:
        """Sleep until the frame's presentation time, relative to the first paced frame."""
        now = time.monotonic()
        if origin is None:
            return now, media_time
        due = origin[0] + (media_time - origin[1])
        if due - now < -_PACE_RESYNC_S:
            return now, media_time
        if due > now:
            self.stop.wait(due - now)
        return origin

    def _wait_for_free_slot(self) -> bool:
        """Every-frame mode: wait until writing the next frame cannot overwrite one preprocess has
        not read yet (it publishes the last seq it consumed), nor, when publish reads frames for the
        overlay or thumbnails, one publish has not reached yet."""
        limit = self.ring.spec.slots - 2
        while self.seq - self._oldest_held() > limit:
            if self.stop.wait(_RING_FULL_POLL_S):
                return False
        return True

    def _oldest_held(self) -> int:
        consumed = self.counters.get("consumed_seq")
        return min(consumed, self.counters.get("released_seq")) if self.hold_for_publish else consumed

    def _wait_to_reconnect(self, reason: str) -> None:
        log.warning("%s: %s; reconnecting in %.1f s", self.source.stream_id, reason, self.backoff)
        self.counters.add("reconnects")
        self.stop.wait(self.backoff)
        self.backoff = min(self.backoff * 2, self.source.reconnect_max_s)

    def _fail(self, reason: str) -> int:
        log.error("%s: %s", self.source.stream_id, reason)
        self.control.put(("source_failed", self.source.stream_id, reason))
        self.out.send(EndOfStream(self.source.stream_id, reason, error=True))
        return EXIT_SOURCE_FAILED
