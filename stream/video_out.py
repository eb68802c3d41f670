"""Writing overlay videos: H.264 through PyAV, on a thread of its own behind a bounded queue.

The publish stage must not wait on an encoder, so drawing and encoding run on a writer thread (OpenCV
and FFmpeg release the GIL while they work). In every-frame mode a full queue makes publish wait,
so every frame is written; in realtime mode a frame that finds the queue full is skipped and
counted. Timestamps are the frames' own media times (milliseconds), so a realtime overlay that
skipped frames still plays at the source's pace.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from wildpose.errors import WildPoseError
from wildpose.stream import overlay

log = logging.getLogger(__name__)

_TIME_BASE = Fraction(1, 1000)
_QUEUE_FRAMES = 8
_CRF = "20"  # visually clean lines and text; the tests read bone colours back from the decoded video


class VideoWriteError(WildPoseError):
    """An overlay video cannot be created or written."""


def _container_options(path: Path) -> dict[str, str]:
    """MP4 and MOV are written fragmented, a fragment a second: a plain MP4's index is written only
    when it is closed, so a run that is killed, or whose disk fills up, would leave a file no player
    can open. Matroska plays up to where it was cut as it is."""
    if path.suffix.lower() in (".mp4", ".mov"):
        return {"movflags": "frag_keyframe+empty_moov+default_base_moof", "frag_duration": "1000000"}
    return {}


def stream_path(path: str | Path, stream: str, several: bool) -> Path:
    """`out.mp4` as is when there is one stream, `out.<stream>.mp4` when there are several."""
    path = Path(path)
    return path.with_name(f"{path.stem}.{stream}{path.suffix}") if several else path


def stream_paths(path: str | Path, streams: Sequence[str]) -> dict[str, Path]:
    """One file per stream (see `stream_path`)."""
    return {s: stream_path(path, s, len(streams) > 1) for s in streams}


class OverlayVideo:
    """An H.264 video file whose size is fixed by its first frame (later frames are resized to it)."""

    def __init__(self, path: str | Path, preset: str = "superfast") -> None:
        self.path = Path(path)
        self.preset = preset
        try:
            self.path.open("wb").close()  # PyAV opens the file only at the first frame: fail now instead
            self._container = av.open(str(self.path), "w", options=_container_options(self.path))
        except (av.error.FFmpegError, OSError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise VideoWriteError(f"cannot write the overlay video {self.path}: {reason}; check that the "
                                  "folder exists and is writable") from None
        self._stream = None
        self._last_pts: int | None = None
        self.frames = 0

    def write(self, image: np.ndarray, seconds: float) -> None:
        """Add an RGB uint8 frame shown at `seconds` (media time; kept strictly increasing)."""
        if self._stream is None:
            height, width = image.shape[:2]
            stream = self._container.add_stream("libx264", rate=30)
            stream.width, stream.height = width - width % 2, height - height % 2
            stream.pix_fmt = "yuv420p"
            stream.codec_context.time_base = _TIME_BASE
            # zerolatency: no lookahead or B-frames, so closing the file at a stop is instant
            stream.options = {"preset": self.preset, "tune": "zerolatency", "crf": _CRF}
            self._stream = stream
        stream = self._stream
        if image.shape[1] != stream.width or image.shape[0] != stream.height:
            image = cv2.resize(image, (stream.width, stream.height), interpolation=cv2.INTER_AREA)
        pts = round(seconds / _TIME_BASE)
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        self._last_pts = pts
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts, frame.time_base = pts, _TIME_BASE
        for packet in stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        if self._stream is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
        self._container.close()


@dataclass(frozen=True)
class OverlayJob:
    """One frame to draw and write: copies, so the ring slot it came from is free again."""

    frame: np.ndarray  # (H, W, 3) uint8 RGB
    people: tuple  # of overlay.PersonLike
    seconds: float  # media time
    fps: float | None
    latency_ms: float | None
    scale: float = 1.0  # frame pixels per pose pixel (thumbnails)


class OverlayWriter:
    """Composes and writes `OverlayJob`s for one stream on a thread, behind a bounded queue."""

    def __init__(self, video: OverlayVideo, stream: str, on_written: Callable[[], None] | None = None,
                 queue_frames: int = _QUEUE_FRAMES) -> None:
        self.video = video
        self.stream = stream
        self.failed: str | None = None
        self._on_written = on_written
        self._queue: queue.Queue = queue.Queue(maxsize=queue_frames)
        self._thread = threading.Thread(target=self._run, name=f"overlay-{stream}", daemon=True)
        self._thread.start()

    def submit(self, job: OverlayJob, block: bool) -> bool:
        """Queue a frame; with `block` wait for room, else return False when the queue is full."""
        if self.failed:
            return False
        try:
            self._queue.put(job, block=block)
            return True
        except queue.Full:
            return False

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                break
            if self.failed:
                continue
            try:
                image = overlay.compose(job.frame, job.people, self.stream, job.fps, job.latency_ms, job.scale)
                self.video.write(image, job.seconds)
                if self._on_written:
                    self._on_written()
            except (av.error.FFmpegError, OSError, ValueError) as exc:
                self.failed = str(exc)
                log.error("%s: writing the overlay video %s failed (%s); no more overlay frames",
                          self.stream, self.video.path, exc)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then finish the file."""
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("%s: the overlay writer did not finish in %.0f s; %s may be incomplete",
                        self.stream, timeout, self.video.path)
            return
        try:
            self.video.close()
        except (av.error.FFmpegError, OSError) as exc:
            log.error("%s: finishing the overlay video %s failed: %s", self.stream, self.video.path, exc)
            return
        log.info("%s: wrote %d overlay frames to %s", self.stream, self.video.frames, self.video.path)
