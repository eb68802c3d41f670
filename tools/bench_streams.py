"""`wildpose bench --streams 8,16,32`: how many concurrent live streams one machine carries.

For each count N, one `wildpose run` plays the same file as N sources, each paced at the clip's own
frame rate (realtime mode, as cameras would deliver it), with the detector off (one crop a frame),
and a subscriber counts what is published. A count holds when every frame of every stream was
published (zero drops of any reason) and the p95 capture-to-publish latency is under the limit.
GPU memory is sampled with `nvidia-smi` while the pipeline runs, and each stage's CPU use with
psutil: a stage near 100 % of a core is the one that limits the count.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil

from wildpose.engine.cache import cache_dir
from wildpose.errors import ConfigError, PipelineError
from wildpose.stream.client import PoseMessage, PoseSubscriber, StatsMessage
from wildpose.stream.stats import LinkDepths
from wildpose.tools import democlip
from wildpose.tools.bench import markdown_table

log = logging.getLogger(__name__)

_CLIP_SECONDS = 10
_LINKS = (*LinkDepths.QUEUES, LinkDepths.PIPE)  # in pipeline order


@dataclass(frozen=True)
class StreamsBenchConfig:
    counts: tuple[int, ...] = (8, 16, 32)
    source: str | None = None  # a video file; None: a generated 640x480, 30 frames/s, 10 s clip
    model: str | None = None
    backend: str = "auto"
    device: str = "auto"
    precision: str | None = None
    max_batch: int = 64
    p95_limit_ms: float = 100.0
    device_crops: bool = False  # torch: crops cut where the model runs (`wildpose run --device-crops`)
    overlap: bool = True  # off: `wildpose run --no-overlap`, inference waits for each batch before the next

    def __post_init__(self) -> None:
        if not self.counts or any(n < 1 for n in self.counts):
            raise ConfigError(f"--streams counts must be positive integers, got {list(self.counts)}")
        if self.source is not None and not Path(self.source).is_file():
            raise ConfigError(f"--source {self.source}: file not found")


@dataclass(frozen=True)
class StreamsBenchRow:
    streams: int
    frames_expected: int
    frames_published: int
    drops: str  # reason=count, from the pipeline's own accounting
    published_per_s: float
    latency_p50_ms: float
    latency_p95_ms: float
    peak_gpu_mb: float
    slowest_stage: str  # the stage with the largest p95 latency in the last stats of any stream
    queue_peaks: str  # the deepest each inter-stage queue was seen (a full queue: the next stage is behind)
    stage_cpu: str  # each stage's share of one core while frames flowed (near 100 %: that stage is the limit)
    holds: bool


def run_streams(config: StreamsBenchConfig) -> tuple[list[StreamsBenchRow], str]:
    import av

    clip = Path(config.source) if config.source else democlip.cached_clip(_CLIP_SECONDS * 30, height=480)
    with av.open(str(clip)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    rows = []
    for count in config.counts:
        log.info("%d streams of %s (%d frames each)", count, clip.name, frames)
        poses, stats, queue_peaks, peak_mb, stage_cpu = _pipeline_run(clip, count, config)
        latency = np.array([p.latency_s for p in poses]) * 1000.0 if poses else np.array([np.nan])
        drops: Counter = Counter()
        for message in stats.values():
            drops.update({reason: n for reason, n in message.drops.items() if n})
        span = poses[-1].t_publish - poses[0].t_publish if len(poses) > 1 else float("nan")
        expected = frames * count
        row = StreamsBenchRow(
            streams=count, frames_expected=expected, frames_published=len(poses),
            drops=", ".join(f"{k}={v}" for k, v in sorted(drops.items())) or "none",
            published_per_s=(len(poses) - 1) / span if span > 0 else float("nan"),
            latency_p50_ms=float(np.percentile(latency, 50)), latency_p95_ms=float(np.percentile(latency, 95)),
            peak_gpu_mb=peak_mb, slowest_stage=_slowest_stage(stats),
            queue_peaks=", ".join(f"{name} {queue_peaks[name]}" for name in sorted(queue_peaks, key=_link_order))
            or "-",
            stage_cpu=stage_cpu,
            holds=len(poses) == expected and not drops and float(np.percentile(latency, 95)) < config.p95_limit_ms)
        rows.append(row)
        # the whole row, so a run cut short by a time limit keeps the counts it finished
        log.info("%d streams: %d/%d frames, drops %s, %.0f published/s, p50 %.1f ms, p95 %.1f ms; queues %s; "
                 "CPU %s", count, len(poses), expected, row.drops, row.published_per_s, row.latency_p50_ms,
                 row.latency_p95_ms, row.queue_peaks, row.stage_cpu)
    return rows, f"{clip.name}, {frames} frames"


def _link_order(name: str) -> int:
    return _LINKS.index(name) if name in _LINKS else len(_LINKS)


def _slowest_stage(stats: dict[str, StatsMessage]) -> str:
    worst: dict[str, float] = {}
    for message in stats.values():
        for stage, values in message.latency_ms.items():
            if stage == "total":
                continue
            worst[stage] = max(worst.get(stage, 0.0), float(values.get("p95", 0.0)))
    if not worst:
        return "-"
    stage = max(worst, key=worst.get)
    return f"{stage} {worst[stage]:.0f} ms"


def _pipeline_run(clip: Path, count: int, config: StreamsBenchConfig
                  ) -> tuple[list[PoseMessage], dict[str, StatsMessage], dict[str, int], float, str]:
    endpoint = f"ipc://{tempfile.gettempdir()}/wildpose-streams-{os.getpid()}.sock"
    command = [sys.executable, "-m", "wildpose.tools.cli", "run", "--detector", "none", "--publish", endpoint,
               "--wait-subscribers", "1", "--backend", config.backend, "--device", config.device,
               "--max-batch", str(config.max_batch)]
    for index in range(count):
        command += ["--source", f"s{index:02d}={clip}"]
    if config.model:
        command += ["--model", config.model]
    if config.precision:
        command += ["--precision", config.precision]
    if config.device_crops:
        command.append("--device-crops")
    if not config.overlap:
        command.append("--no-overlap")
    poses: list[PoseMessage] = []
    stats: dict[str, StatsMessage] = {}
    queue_peaks: dict[str, int] = {}
    memory = _GpuMemorySampler()
    log_path = cache_dir("bench") / f"streams-{count}.log"
    with PoseSubscriber(endpoint, topics=["pose", "stats"]) as subscriber, open(log_path, "w") as log_file:
        pipeline = subprocess.Popen(command, stderr=log_file)
        memory.start()
        cpu = StageCpu(pipeline.pid)
        try:
            deadline = time.monotonic() + 1800
            while time.monotonic() < deadline:
                message = subscriber.recv(timeout=1.0)
                if isinstance(message, PoseMessage):
                    if not poses:
                        cpu.start()  # from the first frame: the engine's compile is not the stream's cost
                    poses.append(message)
                    cpu.sample()
                elif isinstance(message, StatsMessage):
                    stats[message.stream] = message
                    for name, depth in message.queues.items():
                        queue_peaks[name] = max(queue_peaks.get(name, 0), int(depth))
                elif message is None and pipeline.poll() is not None:
                    break
        finally:
            memory.stop()
            if pipeline.poll() is None:
                pipeline.terminate()
            code = pipeline.wait(timeout=30)
    log.info("the %d-stream pipeline's log: %s", count, log_path)
    if code != 0 or not poses:
        tail = " | ".join(log_path.read_text(errors="replace").strip().splitlines()[-3:])
        raise PipelineError(f"the {count}-stream pipeline failed (exit status {code}, {len(poses)} poses): {tail}")
    return poses, stats, queue_peaks, memory.peak_mb, cpu.describe()


class StageCpu:
    """Each pipeline process's CPU time per wall second, found by the stage names the processes give
    themselves (wp-infer, wp-capture-s01, ...): the saturated stage is the limit."""

    def __init__(self, pid: int, interval_s: float = 1.0) -> None:
        self.pid, self.interval_s = pid, interval_s
        self.first: dict[int, tuple[str, float, float]] = {}  # pid -> (name, wall s, cpu s)
        self.last: dict[int, tuple[str, float, float]] = {}
        self._next: float | None = None  # when to sample next; None before `start`

    def start(self) -> None:
        self.first = self.last = self._read()
        self._next = time.monotonic() + self.interval_s

    def sample(self) -> None:
        if self._next is not None and time.monotonic() >= self._next:
            self.last = self._read()
            self.first = {**self.last, **self.first}  # a process started (or restarted) since: from now
            self._next = time.monotonic() + self.interval_s

    def shares(self) -> dict[str, list[float]]:
        """Stage -> the share of one core each of its processes used (capture and preprocess: one a stream)."""
        stages: dict[str, list[float]] = {}
        for pid, (name, wall, cpu) in self.last.items():
            if pid in self.first and wall > self.first[pid][1]:
                stage = name.removeprefix("wp-").split("-")[0]
                stages.setdefault(stage, []).append((cpu - self.first[pid][2]) / (wall - self.first[pid][1]))
        return stages

    def describe(self) -> str:
        parts = []
        for stage, shares in sorted(self.shares().items(), key=lambda item: -max(item[1])):
            mean = 100 * float(np.mean(shares))
            many = f" (the busiest of {len(shares)}; mean {mean:.0f} %)" if len(shares) > 1 else ""
            parts.append(f"{stage} {100 * max(shares):.0f} %{many}")
        return ", ".join(parts) or "-"

    def _read(self) -> dict[int, tuple[str, float, float]]:
        now, found = time.monotonic(), {}
        try:
            supervisor = psutil.Process(self.pid)
            processes = [supervisor, *supervisor.children()]
        except psutil.Error:  # the run has ended
            return found
        for process in processes:
            try:
                with process.oneshot():
                    name = "wp-supervisor" if process.pid == self.pid else process.name()
                    times = process.cpu_times()
            except psutil.Error:  # a process that just ended
                continue
            if name.startswith("wp-"):
                found[process.pid] = (name, now, times.user + times.system)
        return found


class _GpuMemorySampler:
    """The largest `memory.used` nvidia-smi reports while running (NaN without nvidia-smi)."""

    def __init__(self, interval_s: float = 0.5) -> None:
        self.interval_s, self.peak_mb = interval_s, float("nan")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def start(self) -> None:
        if shutil.which("nvidia-smi"):
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                     capture_output=True, text=True, timeout=5).stdout.split()
                used = max(float(v) for v in out)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                continue
            self.peak_mb = used if np.isnan(self.peak_mb) else max(self.peak_mb, used)


def format_table(rows: list[StreamsBenchRow], clip: str) -> str:
    headers = ["streams", "frames expected", "published", "drops", "published/s", "latency p50 ms",
               "latency p95 ms", "slowest stage (p95)", "peak GPU MB", "holds"]
    body = [[str(r.streams), str(r.frames_expected), str(r.frames_published), r.drops, f"{r.published_per_s:.0f}",
             f"{r.latency_p50_ms:.1f}", f"{r.latency_p95_ms:.1f}", r.slowest_stage,
             "-" if np.isnan(r.peak_gpu_mb) else f"{r.peak_gpu_mb:,.0f}", "yes" if r.holds else "no"] for r in rows]
    held = [r.streams for r in rows if r.holds]
    peaks = "\n".join(f"{r.streams} streams, deepest queues: {r.queue_peaks}; CPU of one core: {r.stage_cpu}"
                      for r in rows)
    return (markdown_table(headers, body) + f"\n{peaks}\n({clip}; each stream paced at the clip's frame rate, detector "
            f"off; largest count that holds: {max(held) if held else 'none'})")
