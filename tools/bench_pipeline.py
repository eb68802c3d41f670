"""`wildpose bench --end-to-end`: the whole pipeline measured next to the engine alone, in one run.

Two pipeline runs on the same clip and model: every-frame mode (as fast as it goes: throughput) and
realtime mode at the clip's own frame rate (capture-to-publish latency under a live-like load). The
engine alone is timed in the same run, so the ratio compares like with like on a noisy machine.
The detector is off (`--detector none`): the engine-only figure has no detector either.
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wildpose.errors import ConfigError, PipelineError
from wildpose.stream.client import PoseMessage, PoseSubscriber
from wildpose.tools import democlip
from wildpose.tools.bench import markdown_table, measure_engine

log = logging.getLogger(__name__)

_CLIP_FRAMES = 450  # 15 s at 30 frames/s


@dataclass(frozen=True)
class PipelineBenchConfig:
    source: str | None = None  # a video file; None: a generated 640x360, 30 frames/s clip
    model: str | None = None
    threads: int | None = None
    engine_seconds: float = 5.0

    def __post_init__(self) -> None:
        if self.source is not None and not Path(self.source).is_file():
            raise ConfigError(f"--source {self.source}: file not found")


@dataclass(frozen=True)
class PipelineBenchRow:
    mode: str
    frames: int
    frames_per_s: float
    latency_p50_ms: float
    latency_p95_ms: float
    engine_frames_per_s: float
    engine_median_ms: float


def run_end_to_end(config: PipelineBenchConfig) -> tuple[list[PipelineBenchRow], str]:
    """Rows for every-frame and realtime mode, and the weights label."""
    from wildpose.engine import loader

    model_path = str(loader.resolve(config.model, "onnxruntime"))
    clip = Path(config.source) if config.source else democlip.cached_clip(_CLIP_FRAMES)
    log.info("engine alone: %s", model_path)
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        engine = pool.submit(measure_engine, model_path, "onnxruntime", 1, config.threads, 3, 10,
                             config.engine_seconds).result()
    engine_fps = 1000.0 / engine["median_ms"]
    rows = []
    for mode in ("every-frame", "realtime"):
        log.info("pipeline, %s mode, on %s", mode, clip)
        poses = _pipeline_run(clip, model_path, config.threads, every_frame=(mode == "every-frame"))
        latency = np.array([p.latency_s for p in poses]) * 1000.0
        span = poses[-1].t_publish - poses[0].t_publish
        rows.append(PipelineBenchRow(
            mode=mode, frames=len(poses), frames_per_s=(len(poses) - 1) / span if span > 0 else float("nan"),
            latency_p50_ms=float(np.percentile(latency, 50)), latency_p95_ms=float(np.percentile(latency, 95)),
            engine_frames_per_s=engine_fps, engine_median_ms=engine["median_ms"]))
    return rows, engine["weights"]


def _pipeline_run(clip: Path, model_path: str, threads: int | None, every_frame: bool) -> list[PoseMessage]:
    endpoint = f"ipc://{tempfile.gettempdir()}/wildpose-bench-{os.getpid()}.sock"
    command = [sys.executable, "-m", "wildpose.tools.cli", "run", "--source", f"bench={clip}",
               "--model", model_path, "--detector", "none", "--publish", endpoint, "--wait-subscribers", "1"]
    if threads:
        command += ["--threads", str(threads)]
    if every_frame:
        command.append("--every-frame")
    poses: list[PoseMessage] = []
    with PoseSubscriber(endpoint, topics=["pose"]) as subscriber:
        pipeline = subprocess.Popen(command, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                message = subscriber.recv(timeout=1.0)
                if message is not None:
                    poses.append(message)
                elif pipeline.poll() is not None:
                    break
        finally:
            if pipeline.poll() is None:
                pipeline.terminate()
            code = pipeline.wait(timeout=10)
    if code != 0 or len(poses) < 2:
        raise PipelineError(f"the benchmark pipeline failed (exit status {code}, {len(poses)} frames); run "
                            f"`{' '.join(command[2:])}` to see why")
    return poses


def format_table(rows: list[PipelineBenchRow], weights: str) -> str:
    headers = ["mode", "frames", "pipeline frames/s", "engine-only frames/s", "ratio", "engine median ms",
               "latency p50 ms", "latency p95 ms", "p50 - inference ms"]
    body = [[r.mode, str(r.frames), f"{r.frames_per_s:.1f}", f"{r.engine_frames_per_s:.1f}",
             f"{r.frames_per_s / r.engine_frames_per_s:.2f}", f"{r.engine_median_ms:.1f}",
             f"{r.latency_p50_ms:.1f}", f"{r.latency_p95_ms:.1f}", f"{r.latency_p50_ms - r.engine_median_ms:.1f}"]
            for r in rows]
    return (markdown_table(headers, body)
            + f"\n({weights}; detector off; realtime mode paces the clip at its own frame rate)")
