"""`wildpose bench --smooth-stage 1,16`: what one smoothing process costs the host, a frame.

For each count N, the pipeline's own smoothing process (`stream/smooth.py`) serves N streams of one
person each at 30 frames/s a stream, fed as inference feeds it (a batch a frame time, one frame of every
stream in it) through the same queue, publishing to a pipe and sending tracking feedback to
preprocess, both drained here. Its CPU time (all threads, from the OS) over `--seconds` is divided by
the frames it smoothed. The network outputs are fixed random crop joints: the cost does not depend on
their values. No model and no other stage runs.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import threading
import time
from dataclasses import dataclass

import numpy as np
import psutil

from wildpose.errors import ConfigError, PipelineError
from wildpose.stream import crop, feedback, smooth
from wildpose.stream.config import SmoothingConfig, SourceConfig
from wildpose.stream.frames import FrameTicket, PersonRegion
from wildpose.stream.process import SharedFlag
from wildpose.stream.stats import Counters, LinkDepths
from wildpose.tools.bench import cpu_seconds, markdown_table
from wildpose.training import joints

log = logging.getLogger(__name__)

FPS = 30.0
_FRAME = (640, 480)
_INPUT_SIZE = 256
_SKELETON_SUM_MM = 4500.0
_WARM_UP_S = 1.0
_DISTINCT_BATCHES = 64  # tickets are made before timing and sent round and round


@dataclass(frozen=True)
class SmoothStageBenchConfig:
    counts: tuple[int, ...] = (1, 16)
    seconds: float = 10.0

    def __post_init__(self) -> None:
        if not self.counts or any(n < 1 for n in self.counts):
            raise ConfigError(f"--smooth-stage counts must be positive integers, got {list(self.counts)}")
        if self.seconds <= 0:
            raise ConfigError(f"--seconds must be positive, got {self.seconds}")


@dataclass(frozen=True)
class SmoothStageBenchRow:
    streams: int
    frames_per_s: float  # smoothed, over the timed seconds
    frames: int
    cpu_us_a_frame: float
    core_percent: float  # the process's share of one core
    os_threads: int


def run_smooth_stage_bench(config: SmoothStageBenchConfig) -> list[SmoothStageBenchRow]:
    rows = []
    for count in config.counts:
        row = _measure(count, config.seconds)
        log.info("%d streams: %.0f frames/s, %.0f us of CPU a frame, %.1f %% of a core", count, row.frames_per_s,
                 row.cpu_us_a_frame, row.core_percent)
        rows.append(row)
    return rows


def _measure(count: int, seconds: float) -> SmoothStageBenchRow:
    ctx = multiprocessing.get_context("spawn")
    streams = tuple(f"s{index:02d}" for index in range(count))
    args = smooth.SmoothArgs(streams, _INPUT_SIZE, SmoothingConfig(), _SKELETON_SUM_MM,
                             {s: SourceConfig("bench.mp4", s) for s in streams})
    batches, (published, to_publish) = ctx.Queue(maxsize=4), ctx.Pipe(duplex=False)
    feedback_pipes = {s: ctx.Pipe(duplex=False) for s in streams}
    stop = SharedFlag()
    worker = ctx.Process(name="smooth", target=smooth.main, args=(
        args, batches, to_publish, {s: pipe[1] for s, pipe in feedback_pipes.items()},
        {s: Counters().array for s in streams}, LinkDepths(pipes=1).array, stop, logging.WARNING, None))
    worker.start()
    to_publish.close()
    smoothed = [0]
    drains = [threading.Thread(target=_drain_published, args=(published, smoothed), daemon=True),
              threading.Thread(target=_drain_feedback, args=([feedback.FeedbackReader(pipe[0])
                                                              for pipe in feedback_pipes.values()], stop), daemon=True)]
    for drain in drains:
        drain.start()
    rng = np.random.default_rng(0)
    frames = [[_ticket(stream, rng) for stream in streams] for _ in range(_DISTINCT_BATCHES)]
    try:
        warm_up = _feed(batches, frames, 0, _WARM_UP_S, worker)
        _wait_for(smoothed, warm_up)  # the timed frames alone are counted
        process = psutil.Process(worker.pid)
        before = cpu_seconds(process)
        sent = _feed(batches, frames, int(_WARM_UP_S * FPS), seconds, worker)
        _wait_for(smoothed, warm_up + sent)
        used, done = cpu_seconds(process) - before, smoothed[0] - warm_up
        threads = process.num_threads()
    finally:
        stop.set()
        worker.join(timeout=10)
        if worker.is_alive():
            worker.kill()
    if not done:
        raise PipelineError("the smoothing process smoothed no frame; see the log above")
    return SmoothStageBenchRow(streams=count, frames_per_s=done / seconds, frames=done,
                               cpu_us_a_frame=used / done * 1e6, core_percent=used / seconds * 100.0,
                               os_threads=threads)


def _ticket(stream: str, rng: np.random.Generator) -> FrameTicket:
    affine = crop.box_to_affine(crop.square_box(crop.full_frame_box(*_FRAME)), _INPUT_SIZE)
    person = PersonRegion(track_id=1, box=np.array([0.0, 0.0, *_FRAME]), score=0.9, tracked=True, affine=affine,
                          joints2d_crop=(rng.random((joints.NUM_JOINTS, 2)) * 160 + 48).astype(np.float32),
                          conf=rng.uniform(0.5, 1.0, joints.NUM_JOINTS).astype(np.float32),
                          depth=rng.uniform(-0.2, 0.2, joints.NUM_JOINTS).astype(np.float32))
    return FrameTicket(stream=stream, seq=0, t_capture=0.0, t_media=0.0, size=_FRAME, people=[person])


def _feed(batches, frames: list[list[FrameTicket]], first: int, seconds: float, worker) -> int:
    """Send a batch (a frame of every stream) each 1 / FPS s for `seconds`; returns the frames sent."""
    start, sent, index = time.monotonic(), 0, first
    while (due := start + (index - first) / FPS) < start + seconds:
        time.sleep(max(0.0, due - time.monotonic()))
        batch = frames[index % len(frames)]
        for ticket in batch:
            ticket.seq, ticket.t_media, ticket.t_capture = index, index / FPS, time.time()
        while not _put(batches, batch):
            if not worker.is_alive():
                raise PipelineError(f"the smoothing process died (exit code {worker.exitcode}); see the log above")
        sent += len(batch)
        index += 1
    return sent


def _wait_for(smoothed: list[int], frames: int, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while smoothed[0] < frames and time.monotonic() < deadline:
        time.sleep(0.01)


def _put(batches, batch: list[FrameTicket]) -> bool:
    try:
        batches.put(batch, timeout=0.5)
    except queue.Full:
        return False
    return True


def _drain_published(published, smoothed: list[int]) -> None:
    while True:
        try:
            published.recv()
        except (EOFError, OSError):
            return
        smoothed[0] += 1


def _drain_feedback(readers: list[feedback.FeedbackReader], stop: SharedFlag) -> None:
    while not stop.wait(0.02):
        for reader in readers:
            reader.messages()


def format_table(rows: list[SmoothStageBenchRow]) -> str:
    headers = ["streams", "frames/s", "frames", "CPU us a frame", "% of a core", "OS threads"]
    body = [[str(r.streams), f"{r.frames_per_s:.0f}", str(r.frames), f"{r.cpu_us_a_frame:.0f}",
             f"{r.core_percent:.1f}", str(r.os_threads)] for r in rows]
    return (f"One smoothing process (one person a frame, {FPS:g} frames/s a stream, a batch of every stream "
            "each frame time)\n" + markdown_table(headers, body))
