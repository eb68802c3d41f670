"""`wildpose bench --crowd`: frames/s and latency with 1, 3 and 6 people in view.

The clip is real footage arranged into crowds of a known size: the 65 frames of one person in
`../shared/data/video/pose_squats.mp4` (research-only: used here for inference, never for training),
tiled 1, 3 and 6 times into one frame, so the detector finds N people and the pose engine runs N crops
a frame. Every-frame mode gives the throughput (frames/s, people/s, the cost of one person);
realtime mode (the clip's own 5 frames/s, which every size keeps up with) gives capture-to-publish
latency. The YOLOX detector runs on every frame in both, as it must when tracking cannot hold.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from wildpose.engine.cache import cache_dir
from wildpose.errors import ConfigError, PipelineError
from wildpose.stream.client import PoseMessage, PoseSubscriber
from wildpose.tools.bench import markdown_table

log = logging.getLogger(__name__)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_CLIP = SHARED / "video" / "pose_squats.mp4"
DEFAULT_DETECTOR = SHARED / "models" / "yolox_nano.onnx"
CROWDS = (1, 3, 6)
_GRID = {1: (1, 1), 3: (1, 3), 6: (2, 3)}  # rows, columns
_TILE = (360, 640)  # width, height of one person's tile (the 720x1280 portrait clip halved)


@dataclass(frozen=True)
class CrowdBenchRow:
    people: int
    frames: int
    frames_per_s: float
    people_per_s: float
    ms_per_person: float
    latency_p50_ms: float
    latency_p95_ms: float
    mean_people_found: float


def crowd_clip(people: int, source: Path = DEFAULT_CLIP) -> Path:
    """The source clip tiled `people` times into each frame (cached)."""
    if not source.is_file():
        raise ConfigError(f"the crowd benchmark needs {source} (../shared/data beside the checkout)")
    target = cache_dir("bench") / f"crowd-{people}-{source.stem}.mp4"
    if target.is_file():
        return target
    rows, columns = _GRID[people]
    width, height = _TILE
    with av.open(str(source)) as reader, av.open(str(target), "w") as writer:
        rate = reader.streams.video[0].average_rate
        stream = writer.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width * columns, height * rows, "yuv420p"
        for index, frame in enumerate(reader.decode(video=0)):
            tile = cv2.resize(frame.to_ndarray(format="rgb24"), (width, height), interpolation=cv2.INTER_AREA)
            row = np.concatenate([tile] * columns, axis=1)
            grid = np.concatenate([row] * rows, axis=0)
            out = av.VideoFrame.from_ndarray(np.ascontiguousarray(grid), format="rgb24")
            out.pts = index
            out.time_base = 1 / rate
            for packet in stream.encode(out):
                writer.mux(packet)
        for packet in stream.encode(None):
            writer.mux(packet)
    return target


def run_crowds(detector: Path = DEFAULT_DETECTOR, model: str | None = None, frames: int = 130,
               source: Path = DEFAULT_CLIP, run_args: tuple[str, ...] = ()) -> tuple[list[CrowdBenchRow], str]:
    """`run_args`: more `wildpose run` options for every run (e.g. `--backend torch --device-crops`)."""
    if not Path(detector).is_file():
        raise ConfigError(f"the crowd benchmark needs a YOLOX file: {detector} not found (--detector PATH)")
    rows, weights = [], "unknown weights"
    for people in CROWDS:
        clip = crowd_clip(people, source)
        throughput, weights = _run(clip, detector, model, people, every_frame=True, count=frames, run_args=run_args)
        paced, _ = _run(clip, detector, model, people, every_frame=False, count=65, run_args=run_args)
        span = throughput[-1].t_publish - throughput[0].t_publish
        rate = (len(throughput) - 1) / span
        found = float(np.mean([len(p.people) for p in throughput]))
        latency = np.array([p.latency_s for p in paced]) * 1000.0
        rows.append(CrowdBenchRow(people=people, frames=len(throughput), frames_per_s=rate,
                                  people_per_s=rate * found, ms_per_person=1000.0 / (rate * found),
                                  latency_p50_ms=float(np.percentile(latency, 50)),
                                  latency_p95_ms=float(np.percentile(latency, 95)), mean_people_found=found))
    return rows, weights


def _run(clip: Path, detector: Path, model: str | None, people: int, every_frame: bool,
         count: int, run_args: tuple[str, ...] = ()) -> tuple[list[PoseMessage], str]:
    endpoint = f"ipc://{tempfile.gettempdir()}/wildpose-crowd-{os.getpid()}.sock"
    command = [sys.executable, "-m", "wildpose.tools.cli", "run", "--source", f"crowd{people}={clip}",
               "--detector", str(detector), "--publish", endpoint, "--wait-subscribers", "1", "--loop",
               "--detect-every", "1", "--max-people", str(max(CROWDS)), *run_args]
    if model:
        command += ["--model", model]
    if every_frame:
        command.append("--every-frame")
    poses: list[PoseMessage] = []
    weights = "unknown weights"
    with PoseSubscriber(endpoint, topics=["pose", "meta"]) as subscriber:
        pipeline = subprocess.Popen(command, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 600
            while len(poses) < count and time.monotonic() < deadline and pipeline.poll() is None:
                message = subscriber.recv(timeout=1.0)
                if isinstance(message, PoseMessage):
                    poses.append(message)
                elif message is not None:
                    weights = f"{message.model.get('weights')}; {message.model.get('backend')} backend"
        finally:
            if pipeline.poll() is None:
                pipeline.terminate()
            pipeline.wait(timeout=10)
    if len(poses) < count:
        raise PipelineError(f"the crowd benchmark pipeline delivered {len(poses)} of {count} frames; run "
                            f"`{' '.join(command[2:])}` to see why")
    return poses, weights


def format_table(rows: list[CrowdBenchRow], weights: str) -> str:
    headers = ["people in view", "people found (mean)", "frames/s", "people/s", "ms per person",
               "latency p50 ms", "latency p95 ms"]
    body = [[str(r.people), f"{r.mean_people_found:.2f}", f"{r.frames_per_s:.1f}", f"{r.people_per_s:.1f}",
             f"{r.ms_per_person:.1f}", f"{r.latency_p50_ms:.1f}", f"{r.latency_p95_ms:.1f}"] for r in rows]
    return markdown_table(headers, body) + (f"\n({weights}; YOLOX-Nano on every frame; throughput in every-frame "
                                            "mode, latency paced at the clip's 5 frames/s)")
