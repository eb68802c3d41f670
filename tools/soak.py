"""`wildpose soak`: a bounded soak run that watches the pipeline's memory and file descriptors.

The pipeline runs for minutes on a looped file (realtime pacing, loopback only) with a subscriber
reading every message, while this samples every process of the run (the supervisor and its stages)
with psutil: resident memory and open file descriptors. Leaks show as growth after warm-up, so the
report compares each process's last third of samples with its first third after warm-up (the first
fifth of its life, at least 10 s: an engine's memory grows with each batch size it meets for the first
time). The inference process's memory follows the batch it is running (on a loaded machine it swings
by more than 100 MB between its once-a-second heap trims), and a leak raises the floor, not just the
peaks: memory is read four times a second, a sample keeps each process's lowest reading since the
one before, and a window is judged by its lowest sample. A growth beyond the allowance fails the soak:
for memory 10 % + 20 MB, or the swing the process showed in its first window if that is more (a leak
grows past any bound; a short soak of a busy process sees the batches move its floor); for file
descriptors none. A restarted stage is a new process, judged on its own
life; one too young for a warm-up and two samples after it is listed but not judged. With `kill_every_s` it
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
from dataclasses import dataclass, field
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
READ_EVERY_S = 0.25  # memory readings between samples (a sample keeps the lowest)
KILLED_IN_TURN = ("capture-soak", "preprocess-soak", "infer", "smooth")


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the pipeline was ready
    rss_mb: dict[str, float]  # process name -> lowest resident MB read since the sample before
    fds: dict[str, int]  # process name -> open file descriptors
    poses: int  # pose messages received so far
    pids: dict[str, int] = field(default_factory=dict)  # process name -> pid (a restarted stage has a new one)
    rss_peak_mb: dict[str, float] = field(default_factory=dict)  # highest read since the sample before


class _Readings:
    """Each process's lowest and highest resident memory read since the last sample."""

    def __init__(self) -> None:
        self.low: dict[str, float] = {}
        self.high: dict[str, float] = {}
        self.pids: dict[str, int] = {}

    def add(self, rss: dict[str, float], pids: dict[str, int]) -> None:
        for name, mb in rss.items():
            if self.pids.get(name) != pids.get(name):  # a new process of that name: only its own readings
                self.low.pop(name, None)
                self.high.pop(name, None)
            self.low[name] = min(self.low.get(name, mb), mb)
            self.high[name] = max(self.high.get(name, mb), mb)
        self.pids = dict(pids)

    def sample(self, t: float, fds: dict[str, int], poses: int) -> Sample:
        """The sample of the processes alive at the last reading; starts the next interval."""
        sample = Sample(t, {name: self.low[name] for name in fds}, fds, poses, dict(self.pids),
                        {name: self.high[name] for name in fds})
        self.low, self.high = {}, {}
        return sample


@dataclass(frozen=True)
class ProcessRow:
    """One process name's newest judged life (or its newest, not judged, if none could be)."""

    name: str
    rss_warm_mb: float | None  # lowest sample of the first third after warm-up (None: not judged)
    rss_end_mb: float | None  # lowest sample of the last third
    rss_peak_mb: float
    fds_warm: int | None
    fds_end: int
    lives: int = 1  # processes of this name seen: 1 + restarts while sampled


@dataclass(frozen=True)
class SoakReport:
    seconds: float
    poses: int
    rows: list[ProcessRow]
    leaks: list[str]
    kills: int = 0  # stages killed on purpose (`kill_every_s`)
    restarts: int = 0  # restarts the run's log reported

    @property
    def passed(self) -> bool:
        return not self.leaks


def _measure(root: psutil.Process, names: dict[int, str]) -> tuple[dict[str, float], dict[str, int], dict[str, int]]:
    rss, fds, pids = {}, {}, {}
    for process in [root, *root.children(recursive=True)]:
        try:
            name = names.get(process.pid) or _unnamed(process)
            with process.oneshot():
                rss[name] = process.memory_info().rss / 2**20
                fds[name] = process.num_fds()
            pids[name] = process.pid
        except psutil.Error:
            continue  # a process that just ended
    return rss, fds, pids


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
    readings = _Readings()
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
            next_sample = next_reading = first
            next_kill = first + kill_every_s if kill_every_s else float("inf")
            while time.monotonic() - first < seconds:
                if pipeline.poll() is not None:
                    raise PipelineError(f"the soak pipeline died after {time.monotonic() - first:.0f} s: "
                                        f"{(lines or ['?'])[-1]}")
                now = time.monotonic()
                if now >= next_reading or now >= next_sample:
                    rss, fds, pids = _measure(root, names)
                    readings.add(rss, pids)
                    next_reading = now + READ_EVERY_S
                if now >= next_sample:
                    samples.append(readings.sample(now - first, fds, poses))
                    next_sample += interval_s
                    if progress:
                        progress(samples[-1])
                # The same `now` as the sample: when both fall due, the sample is taken first, never a
                # moment after a kill, while the supervisor is still restarting the stages.
                if now >= next_kill:
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
    rows, leaks = [], []
    for name in sorted(end.rss_mb, key=lambda n: (n != "supervisor", n)):
        lives = _lives(samples, name)
        newest = lives[-1]
        row = ProcessRow(name, None, None, _peak(newest, name), None, newest[-1].fds[name])  # not judged
        for life in lives:
            verdict = _judge(name, life, born_with_run=life[0] is samples[0])
            if verdict is not None:
                row, life_leaks = verdict  # the row shows the newest life judged
                leaks.extend(life_leaks)
        rows.append(dataclasses.replace(row, lives=len(lives)))
    return SoakReport(seconds=end.t, poses=poses, rows=rows, leaks=leaks)


def _peak(life: list[Sample], name: str) -> float:
    return max(sample.rss_peak_mb.get(name, sample.rss_mb[name]) for sample in life)


def _lives(samples: list[Sample], name: str) -> list[list[Sample]]:
    """The samples of each process called `name`, one list a process (pid), oldest first."""
    lives: list[list[Sample]] = []
    pid = None
    for sample in samples:
        if name not in sample.rss_mb:
            continue
        current = sample.pids.get(name)
        if not lives or current != pid:
            lives.append([])
            pid = current
        lives[-1].append(sample)
    return lives


def _judge(name: str, life: list[Sample], born_with_run: bool) -> tuple[ProcessRow, list[str]] | None:
    """The row and leaks of one process, or None when it did not live long enough to judge."""
    born = 0.0 if born_with_run else life[0].t
    horizon = born + max((life[-1].t - born) / 5, WARM_UP_S)
    settled = [sample for sample in life if sample.t >= horizon]
    if len(settled) < 2:
        return None
    window = max(1, len(settled) // 3)
    early, late = settled[:window], settled[-window:]
    warm_mb = min(sample.rss_mb[name] for sample in early)
    end_mb = min(sample.rss_mb[name] for sample in late)
    swing_mb = _peak(early, name) - warm_mb
    row = ProcessRow(name, warm_mb, end_mb, _peak(life, name),
                     settled[0].fds[name], settled[-1].fds[name])
    leaks = []
    if end_mb > warm_mb + max(warm_mb * RSS_ALLOWANCE + RSS_SLACK_MB, swing_mb):
        leaks.append(f"{name}: resident memory {warm_mb:.0f} -> {end_mb:.0f} MB")
    if row.fds_end > row.fds_warm:
        leaks.append(f"{name}: open file descriptors {row.fds_warm} -> {row.fds_end}")
    return row, leaks


def format_table(report: SoakReport) -> str:
    headers = ["process", "processes", "RSS after warm-up MB", "RSS at end MB", "RSS peak MB", "fds after warm-up",
               "fds at end"]
    body = [[row.name, str(row.lives), _figure(row.rss_warm_mb), _figure(row.rss_end_mb), f"{row.rss_peak_mb:.1f}",
             _figure(row.fds_warm, "d"), str(row.fds_end)] for row in report.rows]
    verdict = "no growth beyond warm-up" if report.passed else "GROWTH: " + "; ".join(report.leaks)
    killed = f"{report.kills} stages killed, {report.restarts} restarts; " if report.kills else ""
    unjudged = any(row.rss_warm_mb is None for row in report.rows)
    young = "; -: restarted too late to judge" if unjudged else ""
    return (markdown_table(headers, body) + f"\n({report.seconds:.0f} s, {report.poses} poses received, "
            f"{report.poses / max(report.seconds, 1e-9):.1f} per second; {killed}{verdict}{young})")


def _figure(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)
