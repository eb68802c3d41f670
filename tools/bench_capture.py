"""`wildpose bench --capture 1,4,16`: what the capture stage costs the host, a frame and a stream.

For each count N, N real capture processes (the pipeline's own, `stream/capture.py`) play one file in a
loop, each paced at the clip's frame rate as in `wildpose run`, decoding into their shared-memory rings
and sending their tickets to this process, which only counts them. Their CPU time (user + system, all
threads, from the OS) is read over `--seconds`. Each count runs with the threads the pipeline gives a
stream (the host's cores over the streams) and with a thread a core in every stream (FFmpeg's own
choice, what every capture had before); the difference is what the sharing saves when all streams are
busy. No model runs: this is the host cost that stands before inference on a many-stream machine.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import secrets
import time
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path

import psutil

from wildpose.errors import ConfigError, PipelineError
from wildpose.stream import capture, sources
from wildpose.stream.config import SourceConfig
from wildpose.stream.frames import EndOfStream
from wildpose.stream.process import SharedFlag
from wildpose.stream.shm import SlotRing
from wildpose.stream.stats import Counters
from wildpose.tools.bench import cpu_seconds, markdown_table

log = logging.getLogger(__name__)

DEFAULT_CLIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "video" / "street_people_720p50.avi"
_RING_SLOTS = 8
_READY_TIMEOUT_S = 60.0
_WARM_UP_S = 1.0  # after the gate opens: first frames, caches and page faults are not the steady state


@dataclass(frozen=True)
class CaptureBenchConfig:
    counts: tuple[int, ...] = (1, 4)
    source: Path = DEFAULT_CLIP
    seconds: float = 10.0

    def __post_init__(self) -> None:
        if not self.counts or any(n < 1 for n in self.counts):
            raise ConfigError(f"--capture counts must be positive integers, got {list(self.counts)}")
        if not self.source.is_file():
            hint = "(../shared/data beside the checkout) or pass --source" if self.source == DEFAULT_CLIP else ""
            raise ConfigError(f"the capture benchmark needs {self.source}: file not found {hint}".rstrip())
        if self.seconds <= 0:
            raise ConfigError(f"--seconds must be positive, got {self.seconds}")


@dataclass(frozen=True)
class CaptureBenchRow:
    streams: int
    threads: str  # a stream's decoder and colour-conversion threads, and why that many
    frames: int
    frames_per_s_a_stream: float
    cpu_ms_a_frame: float  # CPU time of all capture processes over the frames they sent
    core_percent_a_stream: float  # one capture process's share of one core
    os_threads_a_process: int


def run_capture_bench(config: CaptureBenchConfig) -> tuple[list[CaptureBenchRow], str]:
    import av

    size = sources.probe(SourceConfig(str(config.source), "probe"))  # as the rings hold it; one line if unreadable
    with av.open(str(config.source)) as container:
        rate = float(container.streams.video[0].average_rate or 0)
    cores = os.cpu_count() or 1
    rows = []
    for count in config.counts:
        shared = max(1, cores // count)
        settings = [(shared, f"{shared} (cores / streams)")]
        if shared != cores:
            settings.append((cores, f"{cores} (a core each)"))
        for threads, why in settings:
            row = _measure(config, count, threads, why, size)
            log.info("%d streams, %s threads: %.2f ms of CPU a frame, %.1f %% of a core a stream",
                     count, why, row.cpu_ms_a_frame, row.core_percent_a_stream)
            rows.append(row)
    return rows, f"{config.source.name}, {size[0]}x{size[1]} at {rate:g} frames/s"


def _measure(config: CaptureBenchConfig, count: int, threads: int, why: str,
             size: tuple[int, int]) -> CaptureBenchRow:
    ctx = multiprocessing.get_context("spawn")
    stop, gate, control = SharedFlag(), SharedFlag(), ctx.Queue()
    prefix = f"wpcap{os.getpid()}_{secrets.token_hex(3)}"
    rings, readers, workers = [], [], []
    try:
        for index in range(count):
            ring = SlotRing.create(f"{prefix}_{index}", _RING_SLOTS, size[0] * size[1] * 3)
            rings.append(ring)
            reading, writing = ctx.Pipe(duplex=False)
            source = SourceConfig(str(config.source), f"s{index:02d}", loop=True)
            worker = ctx.Process(name=f"capture-s{index:02d}", target=capture.main, args=(
                capture.CaptureArgs(source, ring.spec, resume_after=-1, threads=threads), writing,
                Counters().array, stop, gate, control, logging.WARNING, None))
            worker.start()
            writing.close()
            readers.append(reading)
            workers.append(worker)
        _wait_ready(control, workers, count)
        gate.set()
        _count_tickets(readers, stop, _WARM_UP_S)
        processes = [psutil.Process(w.pid) for w in workers]
        before = [cpu_seconds(p) for p in processes]
        frames = _count_tickets(readers, stop, config.seconds)
        used = sum(cpu_seconds(p) - b for p, b in zip(processes, before, strict=True))
        os_threads = max(p.num_threads() for p in processes)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()
        for ring in rings:
            ring.close()
    if not frames:
        raise PipelineError(f"the capture processes sent no frame of {config.source} in {config.seconds:g} s")
    return CaptureBenchRow(streams=count, threads=why, frames=frames,
                           frames_per_s_a_stream=frames / config.seconds / count,
                           cpu_ms_a_frame=used / frames * 1000.0,
                           core_percent_a_stream=used / config.seconds / count * 100.0,
                           os_threads_a_process=os_threads)


def _wait_ready(control, workers, count: int) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT_S
    ready = 0
    while ready < count:
        if time.monotonic() > deadline or not all(w.is_alive() for w in workers):
            raise PipelineError(f"{count - ready} of {count} capture processes did not open the source; "
                                "see the log above")
        try:
            kind, *_ = control.get(timeout=0.5)
        except queue.Empty:
            continue
        if kind == "source_failed":
            raise PipelineError("a capture process could not read the source; see the log above")
        ready += kind == "ready"


def _count_tickets(readers, stop: SharedFlag, seconds: float) -> int:
    """Receive (and count) frame tickets for `seconds`."""
    end = time.monotonic() + seconds
    frames = 0
    while (left := end - time.monotonic()) > 0:
        for reader in wait(readers, timeout=min(left, 0.1)):
            try:
                item = reader.recv()
            except EOFError:
                readers.remove(reader)
                continue
            if isinstance(item, EndOfStream):
                stop.set()
                raise PipelineError(f"a capture ended: {item.reason}")
            frames += 1
    return frames


def format_table(rows: list[CaptureBenchRow], clip: str) -> str:
    headers = ["streams", "threads a stream", "frames", "frames/s a stream", "CPU ms a frame",
               "% of a core a stream", "OS threads a process"]
    body = [[str(r.streams), r.threads, str(r.frames), f"{r.frames_per_s_a_stream:.1f}", f"{r.cpu_ms_a_frame:.2f}",
             f"{r.core_percent_a_stream:.1f}", str(r.os_threads_a_process)] for r in rows]
    return (f"Capture processes alone ({clip}; {os.cpu_count()} cores; paced at the clip's rate, looping)\n"
            + markdown_table(headers, body))
