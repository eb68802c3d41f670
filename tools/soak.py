"""`wildpose soak`: a bounded soak run that watches the pipeline's memory and file descriptors.

The pipeline runs for minutes on a looped file (realtime pacing, loopback only) with a subscriber
reading every message, while this samples every process of the run (the supervisor and its stages)
with psutil: resident memory and open file descriptors. Leaks show as growth after warm-up, so the
report compares the end of the run with the end of its first fifth (at least 10 s in: an engine's
memory grows with each batch size it meets for the first time); a growth beyond the allowance
(memory: 10 % + 20 MB per process, file descriptors: none) fails the soak. With `kill_every_s` it
also kills a stage (SIGKILL) that often, capture, preprocess, inference and smoothing in turn, so the
supervisor's restarts are soaked too: a restart that leaked would show in the supervisor and publish,
which live through all of them.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from wildpose.errors import ConfigError, PipelineError
from wildpose.stream.client import PoseMessage, PoseSubscriber
from wildpose.tools import democlip
from wildpose.tools.bench import markdown_table

log = logging.getLogger(__name__)

RSS_ALLOWANCE = 0.10  # growth after warm-up: a tenth of the warm value ...
RSS_SLACK_MB = 20.0  # ... plus this (allocator arenas settle slowly)
WARM_UP_S = 10.0  # the warm sample is at least this far in, however short the soak
KILLED_IN_TURN = ("capture-soak", "preprocess-soak", "infer", "smooth")


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the pipeline was ready
    rss_mb: dict[str, float]  # process name -> resident MB
    fds: dict[str, int]  # process name -> open file descriptors
    poses: int  # pose messages received so far


@dataclass(frozen=True)
class SoakReport:
    seconds: float
    poses: int
    rows: list[tuple[str, float, float, float, int, int]]  # name, rss warm, rss end, rss max, fds warm, fds end
    leaks: list[str]
    kills: int = 0  # stages killed on purpose (`kill_every_s`)
    restarts: int = 0  # restarts the run's log reported

    @property
    def passed(self) -> bool:
        return not self.leaks


def _measure(root: psutil.Process, names: dict[int, str]) -> tuple[dict[str, float], dict[str, int]]:
    rss, fds = {}, {}
    for process in [root, *root.children(recursive=True)]:
        try:
            name = names.get(process.pid) or _unnamed(process)
            with process.oneshot():
                rss[name] = process.memory_info().rss / 2**20
                fds[name] = process.num_fds()
        except psutil.Error:
            continue  # a process that just ended
    return rss, fds


def _unnamed(process: psutil.Process) -> str:
    """A process the run's log did not name: multiprocessing's resource tracker, or its pid."""
    try:
        if any("resource_tracker" in part for part in process.cmdline()):
            return "resource tracker"
    except psutil.Error:
        pass
    return f"pid {process.pid}"


def soak(seconds: float, interval_s: float = 5.0, source: str | None = None, run_args: list[str] | None = None,
         progress=None, kill_every_s: float | None = None) -> SoakReport:
    """Run the pipeline for `seconds` on `source` (default: the bundled demo clip), looped; with
    `kill_every_s`, kill a stage that often (see the module's doc)."""
    if seconds < 10 or interval_s <= 0 or interval_s > seconds / 4:
        raise ConfigError(f"soak: at least 10 s with at least 4 samples, got {seconds} s every {interval_s} s")
    if kill_every_s is not None and not 5 <= kill_every_s <= seconds / 2:
        raise ConfigError(f"soak: --kill-every must be from 5 s to half the soak ({seconds / 2:.0f} s), "
                          f"got {kill_every_s} s")
    clip = Path(source) if source else democlip.demo_clip(Path(tempfile.gettempdir()) / "wildpose-soak")
    if not clip.is_file():
        raise ConfigError(f"soak: {clip} not found")
    endpoint = f"ipc://{tempfile.gettempdir()}/wildpose-soak-{os.getpid()}.sock"
    command = [sys.executable, "-m", "wildpose.tools.cli", "run", "--source", f"soak={clip}", "--loop",
               "--publish", endpoint, "--wait-subscribers", "1", *(run_args or [])]
    pipeline = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    names: dict[int, str] = {pipeline.pid: "supervisor"}
    lines: list[str] = []

    def read_log() -> None:
        for line in pipeline.stderr:
            lines.append(line.rstrip("\n"))
            if "started " in line and "(pid " in line:  # "started infer (pid 1234)"
                stage, pid = line.split("started ", 1)[1].split(" (pid ")
                names[int(pid.rstrip(")\n"))] = stage.strip()

    reader = threading.Thread(target=read_log, daemon=True)
    reader.start()
    samples: list[Sample] = []
    poses = kills = 0
    try:
        with PoseSubscriber(endpoint, topics=["pose"]) as subscriber:
            root = psutil.Process(pipeline.pid)
            first = None
            while first is None:
                if pipeline.poll() is not None:
                    raise PipelineError(f"the soak pipeline ended before its first frame: {(lines or ['?'])[-1]}")
                if isinstance(subscriber.recv(timeout=1.0), PoseMessage):
                    first = time.monotonic()
                    poses = 1
            next_sample = first
            next_kill = first + kill_every_s if kill_every_s else float("inf")
            while time.monotonic() - first < seconds:
                if pipeline.poll() is not None:
                    raise PipelineError(f"the soak pipeline died after {time.monotonic() - first:.0f} s: "
                                        f"{(lines or ['?'])[-1]}")
                if time.monotonic() >= next_sample:
                    rss, fds = _measure(root, names)
                    samples.append(Sample(time.monotonic() - first, rss, fds, poses))
                    next_sample += interval_s
                    if progress:
                        progress(samples[-1])
                if time.monotonic() >= next_kill:
                    _kill(KILLED_IN_TURN[kills % len(KILLED_IN_TURN)], names)
                    kills += 1
                    next_kill += kill_every_s
                message = subscriber.recv(timeout=0.1)
                poses += isinstance(message, PoseMessage)
    finally:
        if pipeline.poll() is None:
            pipeline.terminate()
        try:
            pipeline.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pipeline.kill()
        reader.join(timeout=5)  # the final stats line, with the restarts
    final = next((line for line in reversed(lines) if "final stats" in line), "")
    restarts = int(final.split("restarts ")[1].split(",")[0]) if "restarts " in final else 0
    return dataclasses.replace(_report(samples, poses), kills=kills, restarts=restarts)


def _kill(stage: str, names: dict[int, str]) -> None:
    """SIGKILL the newest process named `stage` (a stage restarted before has a new pid)."""
    pid = next((pid for pid, name in reversed(names.items()) if name == stage), None)
    if pid is None:
        return
    log.info("soak: killing %s (pid %d)", stage, pid)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _report(samples: list[Sample], poses: int) -> SoakReport:
    end = samples[-1]
    horizon = max(end.t / 5, WARM_UP_S)
    warm_index = next((i for i, s in enumerate(samples) if s.t >= horizon), len(samples) - 1)
    warm = samples[max(1, min(warm_index, len(samples) - 2))]
    rows, leaks = [], []
    for name in sorted(end.rss_mb, key=lambda n: (n != "supervisor", n)):
        if name not in warm.rss_mb:
            continue
        peak = max(s.rss_mb.get(name, 0.0) for s in samples)
        rows.append((name, warm.rss_mb[name], end.rss_mb[name], peak, warm.fds[name], end.fds[name]))
        if end.rss_mb[name] > warm.rss_mb[name] * (1 + RSS_ALLOWANCE) + RSS_SLACK_MB:
            leaks.append(f"{name}: resident memory {warm.rss_mb[name]:.0f} -> {end.rss_mb[name]:.0f} MB")
        if end.fds[name] > warm.fds[name]:
            leaks.append(f"{name}: open file descriptors {warm.fds[name]} -> {end.fds[name]}")
    return SoakReport(seconds=end.t, poses=poses, rows=rows, leaks=leaks)


def format_table(report: SoakReport) -> str:
    headers = ["process", "RSS after warm-up MB", "RSS at end MB", "RSS peak MB", "fds after warm-up", "fds at end"]
    body = [[name, f"{warm:.1f}", f"{end:.1f}", f"{peak:.1f}", str(fw), str(fe)]
            for name, warm, end, peak, fw, fe in report.rows]
    verdict = "no growth beyond warm-up" if report.passed else "GROWTH: " + "; ".join(report.leaks)
    killed = f"{report.kills} stages killed, {report.restarts} restarts; " if report.kills else ""
    return (markdown_table(headers, body) + f"\n({report.seconds:.0f} s, {report.poses} poses received, "
            f"{report.poses / max(report.seconds, 1e-9):.1f} per second; {killed}{verdict})")
