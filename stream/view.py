"""`wildpose view`: the overlay video of a running pipeline, drawn from its thumbnails by a subscriber.

The project's machines have no display, so the viewer writes a file instead of opening a window: each
`frame/<stream>` thumbnail is drawn with the pose of the same frame (publish sends the pose just
before it) and the 3D panel, and encoded with the overlay's H.264 writer at the thumbnails' own
times. It needs a pipeline run with `--publish-frames`; for the full-resolution video of every frame
use `wildpose run --overlay` instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from wildpose.errors import ConfigError, WildPoseError
from wildpose.stream import overlay, video_out
from wildpose.stream.auth import ClientKeys
from wildpose.stream.client import FrameMessage, MetaMessage, PoseMessage, PoseSubscriber, StatsMessage
from wildpose.stream.config import OVERLAY_SUFFIXES, check_endpoints, check_positive
from wildpose.stream.stopping import StopConditions

log = logging.getLogger(__name__)

_POLL_S = 0.1


class ViewError(WildPoseError):
    """Nothing arrived to draw."""


@dataclass(frozen=True)
class ViewConfig:
    endpoints: tuple[str, ...]
    output: str  # view.mp4; several streams: view.<stream>.mp4 each
    streams: tuple[str, ...] | None = None
    count: int | None = None  # stop after writing this many frames (all streams)
    duration_s: float | None = None
    idle_timeout_s: float | None = None  # stop once nothing arrived for this long (after the first frame)
    curve: ClientKeys | None = None  # for a publisher with CURVE on

    def __post_init__(self) -> None:
        check_endpoints("view", self.endpoints)
        path = Path(self.output)
        if path.suffix.lower() not in OVERLAY_SUFFIXES:
            raise ConfigError(f"view: --output must end in one of {list(OVERLAY_SUFFIXES)}, got {self.output!r}")
        if not path.parent.is_dir():
            raise ConfigError(f"view: folder {str(path.parent)!r} does not exist; create it or choose another --output")
        check_positive("view", "count", self.count, integer=True, optional=True)
        check_positive("view", "duration_s", self.duration_s, optional=True)
        check_positive("view", "idle_timeout_s", self.idle_timeout_s, optional=True)


@dataclass
class _StreamState:
    video: video_out.OverlayVideo | None = None
    pose: PoseMessage | None = None
    fps: float | None = None
    first_time: float | None = None


@dataclass
class ViewSummary:
    frames: dict[str, int] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)
    unmatched: int = 0  # thumbnails whose pose did not arrive (drawn without people)
    stopped_by: str = ""


def view(config: ViewConfig, should_stop: Callable[[], bool]) -> ViewSummary:
    summary = ViewSummary()
    states: dict[str, _StreamState] = {}
    known_streams: tuple[str, ...] | None = config.streams
    stop = StopConditions(should_stop, config.duration_s, config.idle_timeout_s)
    written = 0
    curve = {} if config.curve is None else {"curve_server_key": config.curve.server_key,
                                             "curve_secret": config.curve.secret}
    with PoseSubscriber(list(config.endpoints), streams=config.streams,
                        topics=("pose", "frame", "stats", "meta"), **curve) as subscriber:
        try:
            while True:
                reason = stop.reason()
                if reason is None and config.count is not None and written >= config.count:
                    reason = f"{config.count} frames"
                if reason is not None:
                    summary.stopped_by = reason
                    break
                message = subscriber.recv(timeout=_POLL_S)
                if isinstance(message, MetaMessage):
                    if known_streams is None:
                        known_streams = tuple(sorted(message.streams))
                    if message.frames is None:
                        log.warning("the pipeline publishes no thumbnails; start it with --publish-frames")
                elif isinstance(message, PoseMessage):
                    states.setdefault(message.stream, _StreamState()).pose = message
                elif isinstance(message, StatsMessage):
                    states.setdefault(message.stream, _StreamState()).fps = message.fps.get("publish")
                elif isinstance(message, FrameMessage):
                    state = states.setdefault(message.stream, _StreamState())
                    if _draw(config, message, state, known_streams, summary):
                        written += 1
                        stop.heard()
        finally:
            for stream, state in states.items():
                if state.video is not None:
                    state.video.close()
                    log.info("%s: wrote %d frames to %s", stream, state.video.frames, state.video.path)
    if not written:
        raise ViewError(f"no thumbnail arrived from {' '.join(config.endpoints)} (stopped by {summary.stopped_by}); "
                        "is the pipeline running, with --publish-frames?")
    return summary


def _draw(config: ViewConfig, message: FrameMessage, state: _StreamState, known_streams, summary) -> bool:
    image = overlay.decode_thumbnail(message.jpeg)
    if image is None:
        log.warning("%s: thumbnail %d does not decode; skipped", message.stream, message.seq)
        return False
    pose = state.pose if state.pose is not None and state.pose.seq == message.seq else None
    if pose is None:
        summary.unmatched += 1
    if state.video is None:
        # one stream (as meta or --stream says): the file named; else one file per stream
        path = video_out.stream_path(config.output, message.stream, tuple(known_streams or ()) != (message.stream,))
        state.video = video_out.OverlayVideo(path)
        summary.paths[message.stream] = path
        log.info("%s: writing %s", message.stream, path)
    if state.first_time is None:
        state.first_time = message.t_capture
    latency = (pose.t_publish - pose.t_capture) * 1000 if pose is not None else None
    composed = overlay.compose(image, pose.people if pose else (), message.stream, state.fps, latency,
                               scale=message.scale)
    state.video.write(composed, message.t_capture - state.first_time)
    summary.frames[message.stream] = summary.frames.get(message.stream, 0) + 1
    return True
