"""Opening video sources with PyAV (FFmpeg): files, RTSP, HTTP(S) and V4L2 cameras.

Every blocking call has a timeout, so a dead link cannot hang a capture process, and every failure
becomes a `SourceError` whose message names the source (credentials removed) and what to check.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

from wildpose.errors import SourceError
from wildpose.stream.config import SourceConfig

# FFmpeg demuxers that render text as video (`tty`: a .txt or .ans file becomes 640x400 frames)
_TEXT_DEMUXERS = frozenset({"tty"})


def open_source(source: SourceConfig) -> av.container.InputContainer:
    """Open `source` and return its container; raises `SourceError` with the fix on failure."""
    kind = source.kind
    timeout = (source.open_timeout_s, source.read_timeout_s)
    options: dict[str, str] = {}
    target, fmt = source.url, None
    if kind == "rtsp":
        # TCP by default (UDP loses packets across NATs and busy links); no demuxer buffering, and a
        # socket timeout (microseconds) on top of PyAV's own.
        options = {"rtsp_transport": source.rtsp_transport, "fflags": "nobuffer", "flags": "low_delay",
                   "max_delay": "500000", "timeout": str(int(source.read_timeout_s * 1e6))}
    elif kind == "http":
        # no `fflags nobuffer` here: with it, FFmpeg's MP4 demuxer over HTTP decodes nothing. A live
        # HLS playlist is joined one segment back from its newest, not three as players (and FFmpeg)
        # do: segments often last 6 s, so that is 12 s less latency. One is the margin that keeps
        # playback smooth: joined at the newest, the next is often late by a playlist reload and
        # its frames come in a burst. (Other demuxers ignore the option.)
        options = {"rw_timeout": str(int(source.read_timeout_s * 1e6)), "live_start_index": "-2"}
    elif kind == "camera":
        target, fmt = source.device, "v4l2"
        if not os.path.exists(target):
            raise SourceError(f"camera {target} does not exist; list cameras with `ls /dev/video*` "
                              "(or `v4l2-ctl --list-devices`) and pass --source /dev/videoN")
    elif not os.path.exists(source.url):
        raise SourceError(f"source file not found: {source.url}; check the path")
    elif os.path.isdir(source.url):
        raise SourceError(f"source {source.url} is a directory, not a video file")
    started = time.monotonic()
    try:
        container = av.open(target, format=fmt, options=options, timeout=timeout)
    except av.error.FFmpegError as exc:
        if time.monotonic() - started >= source.open_timeout_s:
            # PyAV's timeout cut the handshake short; FFmpeg then reports whatever the half-read reply
            # looked like (RTSP: "Invalid data found when processing input"), which misleads
            raise SourceError(f"cannot open {source.display}: no answer within {source.open_timeout_s:g} s "
                              f"(open timeout); {_hint(source)}, or raise --open-timeout") from None
        raise SourceError(f"cannot open {source.display}: {_reason(exc)}; {_hint(source)}") from None
    except OSError as exc:
        raise SourceError(f"cannot open {source.display}: {exc.strerror or exc}; {_hint(source)}") from None
    if container.format.name in _TEXT_DEMUXERS:
        container.close()
        raise SourceError(f"{source.display} is a text file, not a video (FFmpeg would draw its characters "
                          "as frames); pass a video file or stream")
    if not container.streams.video:
        container.close()
        raise SourceError(f"{source.display} has no video stream; pass a video file or stream")
    return container


def _reason(exc: av.error.FFmpegError) -> str:
    return exc.strerror or str(exc)


def _hint(source: SourceConfig) -> str:
    return {
        "file": "is it a complete, playable video file?",
        "rtsp": f"check the URL and that the server is up (transport {source.rtsp_transport})",
        "http": "check the URL and that the server is up",
        "camera": "check that the camera is connected and not in use by another program",
    }[source.kind]


def decoded_frames(container: av.container.InputContainer, on_decode_error,
                   threads: int = 0) -> Iterator[av.VideoFrame]:
    """Frames of the first video stream; corrupt packets are reported to `on_decode_error` and skipped
    (a single bad packet must not end a live stream). `threads`: the decoder's slice threads (0: one a
    core, FFmpeg's choice); with many streams one each is cheaper, as every stream already has a core's
    share of work and each extra thread costs synchronisation on every frame."""
    stream = container.streams.video[0]
    stream.thread_type = "SLICE"  # frame threading would add frames of latency
    stream.codec_context.thread_count = threads
    for packet in container.demux(stream):
        try:
            yield from packet.decode()
        except av.error.InvalidDataError as exc:
            on_decode_error(exc)


class RgbConverter:
    """Decoded frames of one stream to `(H, W, 3)` uint8 RGB, scaled down (aspect kept) if the longer
    side exceeds `max_side`, and turned upright as the file says it is shown: a phone's portrait clip is
    stored landscape with a rotation in its track header, which FFmpeg's players apply and its
    decoders do not.

    One swscale context serves every frame, on `threads` threads. `frame.to_ndarray(format=...)` builds
    a new context a frame with a thread a core: on this project's 2-core CPU, with 16 threads asked for
    as a 16-core machine gets them, a 640x480 frame cost 2.5 ms of CPU to decode and convert against
    0.9 ms with one context on one thread (PyAV 18.1); see README, Benchmarks.
    """

    def __init__(self, max_side: int, threads: int = 1) -> None:
        self.max_side = max_side
        self.threads = threads
        self._reformatter = VideoReformatter()

    def __call__(self, frame: av.VideoFrame) -> np.ndarray:
        longest = max(frame.width, frame.height)
        width, height = frame.width, frame.height
        if longest > self.max_side:
            scale = self.max_side / longest
            width, height = max(2, round(frame.width * scale)), max(2, round(frame.height * scale))
        image = self._reformatter.reformat(frame, width=width, height=height, format="rgb24",
                                           threads=self.threads).to_ndarray()
        # the display matrix's angle, counter-clockwise; -90 (an upright phone) is a quarter turn clockwise
        quarter_turns = round(getattr(frame, "rotation", 0) / 90) % 4
        return np.ascontiguousarray(np.rot90(image, quarter_turns)) if quarter_turns else image


def to_rgb(frame: av.VideoFrame, max_side: int) -> np.ndarray:
    """One frame as `RgbConverter` gives it; for a few frames (a stream's converter is kept)."""
    return RgbConverter(max_side)(frame)


def shrink_to(image: np.ndarray, max_bytes: int) -> np.ndarray:
    """`image` scaled down (aspect kept) so that it takes at most `max_bytes`."""
    height, width = image.shape[:2]
    scale = math.sqrt(max_bytes / image.nbytes)
    size = (max(2, math.floor(width * scale)), max(2, math.floor(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def probe(source: SourceConfig) -> tuple[int, int]:
    """Open the source and decode its first frame; returns (width, height) as the pipeline will see
    them. Raises `SourceError` when the source cannot deliver a frame."""
    container = open_source(source)
    errors: list[Exception] = []
    try:
        for frame in decoded_frames(container, errors.append):
            image = to_rgb(frame, source.max_side)
            return image.shape[1], image.shape[0]
    except av.error.FFmpegError as exc:
        raise SourceError(f"cannot read {source.display}: {_reason(exc)}; {_hint(source)}") from None
    finally:
        container.close()
    detail = f" ({len(errors)} undecodable packets)" if errors else ""
    raise SourceError(f"{source.display} contains no decodable video frame{detail}; {_hint(source)}")
