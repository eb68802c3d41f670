"""`wildpose bench --faults`: each pipeline stage killed (SIGKILL) mid-run, and what it cost.

One `wildpose run` per stage and mode on a generated 10 s, 30 frames/s clip (detector off): paced, as
a camera delivers frames, and `--every-frame`. The stage is killed when the 60th pose arrives. Each row:
the longest pause in the poses after the kill (from the kill to the pose that ended it), the frames
received and dropped (by reason), whether received + dropped = captured = frames in the clip, and
whether the frames arrived in order (every-frame: each exactly once).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from wildpose.errors import ConfigError, PipelineError
from wildpose.stream.client import PoseMessage, PoseSubscriber, StatsMessage
from wildpose.tools import democlip
from wildpose.tools.bench import markdown_table

log = logging.getLogger(__name__)

STAGES = ("capture", "preprocess", "infer", "smooth")
MODES = ("paced", "every-frame")
_CLIP_FRAMES, _CLIP_FPS = 300, 30
_KILL_AT = 60  # poses received
_STREAM = "bench"
_RUN_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class FaultBenchConfig:
    stages: tuple[str, ...] = STAGES
    modes: tuple[str, ...] = MODES

    def __post_init__(self) -> None:
        unknown = [s for s in self.stages if s not in STAGES] + [m for m in self.modes if m not in MODES]
        if unknown:
            raise ConfigError(f"--faults: unknown {', '.join(unknown)}; stages are {', '.join(STAGES)}, "
                              f"modes {', '.join(MODES)}")


@dataclass(frozen=True)
class FaultBenchRow:
    stage: str
    mode: str
    pause_s: float  # from the kill to the pose that ended the longest pause after it
    frames: int  # in the clip
    captured: int
    received: int
    drops: dict[str, int] = field(default_factory=dict)
    in_order: bool = False  # seq only rises (every-frame: exactly 0 .. frames-1)

    @property
    def balanced(self) -> bool:
        return self.received + sum(self.drops.values()) == self.captured == self.frames


def run_fault_bench(config: FaultBenchConfig) -> tuple[list[FaultBenchRow], str]:
    clip = democlip.cached_clip(_CLIP_FRAMES, _CLIP_FPS)
    rows = []
    for mode in config.modes:
        for stage in config.stages:
            log.info("killing %s, %s", stage, mode)
            rows.append(_one_run(clip, stage, mode))
    return rows, str(clip)


def _one_run(clip: Path, stage: str, mode: str) -> FaultBenchRow:
    endpoint = f"ipc://{tempfile.gettempdir()}/wildpose-bench-faults-{os.getpid()}.sock"
    command = [sys.executable, "-m", "wildpose.tools.cli", "run", "--source", f"{_STREAM}={clip}", "--detector",
               "none", "--publish", endpoint, "--wait-subscribers", "1"]
    if mode == "every-frame":
        command.append("--every-frame")
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)
    reader.start()
    poses: list[tuple[float, PoseMessage]] = []
    stats: list[StatsMessage] = []
    killed = None
    deadline = time.monotonic() + _RUN_TIMEOUT_S
    try:
        with PoseSubscriber(endpoint, topics=["pose", "stats"]) as subscriber:
            while time.monotonic() < deadline:
                message = subscriber.recv(timeout=0.5)
                if message is None:
                    if process.poll() is not None:
                        break
                    continue
                if isinstance(message, StatsMessage):
                    stats.append(message)
                    continue
                poses.append((time.monotonic(), message))
                if killed is None and len(poses) == _KILL_AT:
                    os.kill(_pid_of(stage, lines), signal.SIGKILL)
                    killed = time.monotonic()
    finally:
        if process.poll() is None:
            process.terminate()
        code = process.wait(timeout=30)
        reader.join(timeout=5)
    if code != 0 or killed is None or not stats:
        last = (lines or ["(no output)"])[-1].strip()
        raise PipelineError(f"the benchmark run (killing {stage}, {mode}) failed (exit status {code}): {last}")
    final = stats[-1]
    arrivals = [killed] + [t for t, _ in poses if t > killed]
    pause = max(range(1, len(arrivals)), key=lambda i: arrivals[i] - arrivals[i - 1], default=0)
    seqs = [p.seq for _, p in poses]
    in_order = seqs == list(range(_CLIP_FRAMES)) if mode == "every-frame" else seqs == sorted(set(seqs))
    return FaultBenchRow(stage, mode, arrivals[pause] - killed if pause else float("nan"), _CLIP_FRAMES,
                         final.totals["captured"], len(poses), {k: v for k, v in final.drops.items() if v}, in_order)


def _pid_of(stage: str, lines: list[str]) -> int:
    name = stage if stage in ("infer", "smooth") else f"{stage}-{_STREAM}"
    pattern = re.compile(rf"started {re.escape(name)} \(pid (\d+)\)")
    for line in lines:
        match = pattern.search(line)
        if match:
            return int(match.group(1))
    raise PipelineError(f"no process {name} in the run's log")


def format_table(rows: list[FaultBenchRow], clip: str) -> str:
    headers = ["killed", "mode", "kill -> next pose s", "received", "dropped", "received + dropped = captured",
               "in order"]
    body = [[r.stage, r.mode, f"{r.pause_s:.2f}", f"{r.received} / {r.frames}",
             ", ".join(f"{k} {v}" for k, v in sorted(r.drops.items())) or "0",
             "yes" if r.balanced else f"no ({r.received} + {sum(r.drops.values())} vs {r.captured})",
             "yes" if r.in_order else "no"] for r in rows]
    return (markdown_table(headers, body) + f"\n({clip}, detector off; SIGKILL when the {_KILL_AT}th pose "
            "arrived; 'kill -> next pose': the longest pause after the kill, to the pose that ended it)")
