"""The smooth stage: network outputs become final poses, filtered over time, and tracking feedback.

For each person it maps the 2D joints from crop back to frame pixels, assembles the metric 3D pose
(root-relative, skeleton-sum prior), places its root in camera space with the stream's intrinsics
(for the frame's size: a camera that comes back at another resolution, or was down at start, is
placed with its camera at the size it sends), runs that person's One Euro filters on the frame's media
timestamp, and tells preprocess where the person is for the next frame (or that the track is lost).
Filters live and die with their track: a new id starts fresh filters, and a track's filters are
dropped as soon as it is gone.

Many streams are shared out over several smoothing processes (`shard_streams`), each stream to one, so
its frames stay in order and its filters in one place: at a thousand frames a second one process is
the pipeline's limit (a GPU machine, 48 streams: 1,250 frames/s with one process at 81 % of a core).
"""

from __future__ import annotations

import logging
import math
import queue
import time
from dataclasses import dataclass

import numpy as np

from wildpose.errors import ConfigError
from wildpose.stream import crop, feedback, process
from wildpose.stream.config import SmoothingConfig, SourceConfig
from wildpose.stream.frames import EndOfStream, FrameTicket, PersonRegion
from wildpose.stream.one_euro import OneEuroFilter
from wildpose.stream.stats import Counters, LinkDepths
from wildpose.stream.tracking import pose_box
from wildpose.training import camera_space, pose3d

log = logging.getLogger(__name__)

_POLL_S = 0.1
_STREAMS_PER_PROCESS = 16  # 480 frames/s at 30 fps: a third of a core of the H200 machine (0.65 ms a frame)


def shard_streams(streams: tuple[str, ...], processes: int, cpus: int) -> list[tuple[str, ...]]:
    """The streams of each smoothing process, dealt round-robin. `processes` 0: one process per 16
    streams, at most a quarter of `cpus` (and never more processes than streams)."""
    if processes == 0:
        processes = min(math.ceil(len(streams) / _STREAMS_PER_PROCESS), cpus // 4)
    processes = max(1, min(processes, len(streams)))
    return [streams[index::processes] for index in range(processes)]


@dataclass(frozen=True)
class SmoothArgs:
    streams: tuple[str, ...]  # this process's share of the run's streams
    input_size: int
    smoothing: SmoothingConfig
    skeleton_sum_mm: float
    sources: dict[str, SourceConfig]  # stream -> its source, whose camera places the roots
    shard: int = 0  # which smoothing process this is, from 0: its slot in the link depths


class PoseFilters:
    """The One Euro filters of one tracked person: 2D (pixels), 3D (millimetres) and the root's
    camera-space position (millimetres; its own filter, never shared across people)."""

    def __init__(self, config: SmoothingConfig) -> None:
        self.joints2d = OneEuroFilter(config.min_cutoff_2d, config.beta_2d, config.d_cutoff)
        self.joints3d = OneEuroFilter(config.min_cutoff_3d, config.beta_3d, config.d_cutoff)
        self.root = OneEuroFilter(config.min_cutoff_3d, config.beta_3d, config.d_cutoff)


class StreamSmoother:
    """Postprocessing and filtering for one stream."""

    def __init__(self, args: SmoothArgs, source: SourceConfig | None = None) -> None:
        self.args = args
        self.source = source  # None: no camera, no root placed
        self.intrinsics: camera_space.Intrinsics | None = None  # of the last frame size seen
        self.camera_refused: tuple[int, int] | None = None  # a frame size the camera is not valid for
        self.filters: dict[int, PoseFilters] = {}

    def process(self, ticket: FrameTicket) -> None:
        """Fill `joints2d` / `joints3d` / `root_cam` of every person of the ticket, in place."""
        intrinsics = self._intrinsics(ticket.size) if ticket.people else None
        for person in ticket.people:
            finish(person, self.args.input_size, self.args.skeleton_sum_mm)
            if intrinsics is not None:
                # from the unfiltered joints: the 2D and 3D filters lag differently
                person.root_cam = camera_space.solve_root(person.joints2d, person.joints3d, intrinsics, person.conf)
            person.raw = (person.joints2d, person.joints3d, person.root_cam)
            if self.args.smoothing.enabled:
                filters = self.filters.get(person.track_id)
                if filters is None:
                    filters = self.filters[person.track_id] = PoseFilters(self.args.smoothing)
                person.joints2d = filters.joints2d(person.joints2d, ticket.t_media).astype(np.float32)
                person.joints3d = filters.joints3d(person.joints3d, ticket.t_media).astype(np.float32)
                if person.root_cam is not None:
                    person.root_cam = filters.root(person.root_cam, ticket.t_media)
        lags = [(f.joints2d.lag_s, f.joints3d.lag_s) for f in (self.filters.get(p.track_id) for p in ticket.people)
                if f is not None and f.joints2d.lag_s is not None]
        if lags:
            ticket.filter_lag_s = {"2d": sum(a for a, _ in lags) / len(lags), "3d": sum(b for _, b in lags) / len(lags)}
        present = {person.track_id for person in ticket.people}
        for gone in set(self.filters) - present:
            del self.filters[gone]

    def _intrinsics(self, size: tuple[int, int]) -> camera_space.Intrinsics | None:
        """The camera for frames of `size`; None (roots not placed) when there is none for it."""
        if self.source is None:
            return None
        if self.intrinsics is None or (self.intrinsics.width, self.intrinsics.height) != tuple(size):
            if self.camera_refused == tuple(size):
                return None
            try:
                self.intrinsics = self.source.intrinsics(*size)
            except ConfigError as exc:  # e.g. a --focal made for the size the source had at start
                log.warning("%s: frames of %dx%d: %s; their roots are not placed in camera space (root_cam nil)",
                            self.source.stream_id, *size, exc)
                self.camera_refused = tuple(size)
                return None
        return self.intrinsics


def finish(person: PersonRegion, input_size: int, skeleton_sum_mm: float) -> None:
    """Network outputs of one person -> frame-pixel 2D joints and a metric root-relative 3D pose."""
    person.joints2d = crop.crop_to_frame(person.joints2d_crop, person.affine).astype(np.float32)
    person.joints3d = pose3d.assemble(person.joints2d_crop[None], person.depth[None], input_size,
                                      skeleton_sum_mm)[0]


def main(args: SmoothArgs, in_queue, out_pipe, feedback_pipes, counters_arrays, depths_array, stop_event,
         log_level: int, weights_label: str | None) -> None:
    """`out_pipe` goes to publish: a pipe of this process alone (no lock that a kill could leave
    held), so the supervisor can replace it, with the stages behind it, when one of them dies.
    What went down it is counted in the link depths. `in_queue` brings only this process's streams."""
    process.init_child(log_level, weights_label)
    smoothers = {stream: StreamSmoother(args, args.sources.get(stream)) for stream in args.streams}
    feedback_fds = {stream: feedback.open_writer(feedback_pipes[stream]) for stream in args.streams}
    counters = {stream: Counters(counters_arrays[stream]) for stream in args.streams}
    depths = LinkDepths(depths_array)
    ended: set[str] = set()
    try:
        while ended != set(args.streams) and not stop_event.is_set():
            try:
                batch = in_queue.get(timeout=_POLL_S)  # one inference batch: a list of tickets in order
            except queue.Empty:
                continue
            for item in batch:
                if isinstance(item, EndOfStream):
                    ended.add(item.stream)
                    smoothers[item.stream].filters.clear()
                else:
                    smoothers[item.stream].process(item)
                    _feedback(feedback_fds[item.stream], item)
                    for person in item.people:  # network outputs publish never reads: less to pickle
                        person.joints2d_crop = person.depth = person.affine = None
                    item.times["smooth"] = time.monotonic()
                    counters[item.stream].add("smoothed")
                try:
                    out_pipe.send(item)  # blocks while publish is behind: the pipe is the back-pressure
                except (BrokenPipeError, ConnectionResetError):
                    return  # publish has gone (the run is stopping)
                depths.count_sent(args.shard)
    finally:
        out_pipe.close()


def _feedback(fd: int, ticket: FrameTicket) -> None:
    """Tell preprocess where each person of the frame is (None: out of the frame) and how sure the
    pose is; a full pipe only means preprocess has not caught up with older feedback yet."""
    width, height = ticket.size
    poses = []
    for person in ticket.people:
        box = pose_box(person.joints2d)
        inside = box[2] > 0 and box[3] > 0 and box[0] < width and box[1] < height
        poses.append((person.track_id, box if inside else None, float(person.conf.mean())))
    feedback.send(fd, ticket.seq, poses)
