"""`wildpose bench --triton 1,2,4`: the cost of going remote, next to the local engine in one run.

For each count N, N `wildpose run` pipelines play the same clip at its own frame rate (realtime, as
cameras deliver it; detector off, one crop a frame), once with the local onnxruntime engine in every
pipeline and once all against one `wildpose serve` on this machine (loopback gRPC, Triton's dynamic
batching). Each row: frames published of those expected, frames/s, capture-to-publish p50/p95.
On one small machine the server competes with the pipelines for the same cores; the figures show the
protocol's cost and the batching's gain there, not a GPU server's.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wildpose.engine.triton_repo import METADATA_MODEL_NAME, MODEL_NAME
from wildpose.errors import BackendUnavailableError, ConfigError, PipelineError
from wildpose.stream.client import PoseMessage, PoseSubscriber
from wildpose.tools import democlip
from wildpose.tools.bench import markdown_table

log = logging.getLogger(__name__)

_CLIP_FRAMES, _CLIP_FPS = 300, 30  # 10 s
_SERVER_START_S = 120.0


@dataclass(frozen=True)
class TritonBenchConfig:
    counts: tuple[int, ...] = (1, 2, 4)
    source: str | None = None  # a video file; None: a generated 640x360, 30 frames/s, 10 s clip
    queue_delay_us: int = 2000

    def __post_init__(self) -> None:
        if not self.counts or any(n < 1 for n in self.counts):
            raise ConfigError(f"--triton counts must be positive integers, got {list(self.counts)}")
        if self.source is not None and not Path(self.source).is_file():
            raise ConfigError(f"--source {self.source}: file not found")


@dataclass(frozen=True)
class TritonBenchRow:
    engine: str  # "local onnxruntime" or "triton (one server)"; ", engine alone": batch-1 calls, no pipeline
    pipelines: int  # 0 for the engine-alone rows
    frames_expected: int
    frames_published: int
    frames_per_s: float  # all pipelines together
    latency_p50_ms: float
    latency_p95_ms: float


def run_triton_bench(config: TritonBenchConfig) -> tuple[list[TritonBenchRow], str]:
    clip = Path(config.source) if config.source else democlip.cached_clip(_CLIP_FRAMES, _CLIP_FPS)
    frames = _frame_count(clip)
    rows = []
    for count in config.counts:
        log.info("%d pipeline(s), local engine", count)
        rows.append(_row("local onnxruntime", count, frames, _pipelines(clip, count, ["--backend", "onnxruntime"])))
    with _Server(config.queue_delay_us) as server:
        rows += _engine_alone(server.url)
        for count in config.counts:
            log.info("%d pipeline(s) against %s", count, server.url)
            rows.append(_row("triton (one server)", count, frames, _pipelines(clip, count, ["--engine", server.url])))
    return rows, str(clip)


def _row(engine: str, count: int, frames: int, poses: list[PoseMessage]) -> TritonBenchRow:
    latency = np.array([p.latency_s for p in poses]) * 1000.0 if poses else np.array([np.nan])
    span = max(p.t_publish for p in poses) - min(p.t_publish for p in poses) if len(poses) > 1 else 0.0
    return TritonBenchRow(engine, count, frames * count, len(poses), (len(poses) - 1) / span if span else float("nan"),
                          float(np.percentile(latency, 50)), float(np.percentile(latency, 95)))


def _engine_alone(url: str, calls: int = 50) -> list[TritonBenchRow]:
    """Batch-1 calls of the engine alone, local and remote, one after the other: the protocol's cost
    without the pipeline around it."""
    from wildpose.engine import load

    rows = []
    for label, model, backend in (("local onnxruntime", None, "onnxruntime"), ("triton (one server)", url, "auto")):
        # no spinning threads, like the pipeline's engine and the server's (their defaults)
        with load(model, backend, device="cpu", spin=False) as engine:
            crops = np.random.default_rng(0).integers(0, 256, (1, engine.input_size, engine.input_size, 3), np.uint8)
            for _ in range(5):
                engine.infer_crops(crops)
            times = []
            for _ in range(calls):
                start = time.perf_counter()
                engine.infer_crops(crops)
                times.append((time.perf_counter() - start) * 1000.0)
        median = float(np.median(times))
        rows.append(TritonBenchRow(f"{label}, engine alone", 0, calls, calls, 1000.0 / median, median,
                                   float(np.percentile(times, 95))))
    return rows


class _Server:
    """`wildpose serve` on free loopback ports for the length of the benchmark."""

    def __init__(self, queue_delay_us: int) -> None:
        self.ports = [_free_port() for _ in range(3)]
        self.queue_delay_us = queue_delay_us
        self.url = f"triton://127.0.0.1:{self.ports[0]}"

    def __enter__(self) -> _Server:
        import tritonclient.grpc as grpcclient

        command = [sys.executable, "-m", "wildpose.tools.cli", "serve", "--grpc-port", str(self.ports[0]),
                   "--http-port", str(self.ports[1]), "--metrics-port", str(self.ports[2]),
                   "--queue-delay-us", str(self.queue_delay_us)]
        self.process = subprocess.Popen(command, stderr=subprocess.DEVNULL, start_new_session=True)
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{self.ports[0]}")
        deadline = time.monotonic() + _SERVER_START_S
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if all(client.is_model_ready(name) for name in (MODEL_NAME, METADATA_MODEL_NAME)):
                    return self
            except Exception:  # not listening yet
                pass
            time.sleep(0.2)
        self.__exit__()
        raise BackendUnavailableError(f"`wildpose serve` did not come up within {_SERVER_START_S:.0f} s; run "
                                      f"`{' '.join(command[2:])}` to see why (make serve-env builds its environment)")

    def __exit__(self, *exc_info) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def _pipelines(clip: Path, count: int, engine_args: list[str]) -> list[PoseMessage]:
    """All poses of `count` concurrent realtime pipelines on `clip`."""
    endpoints = [f"ipc://{tempfile.gettempdir()}/wildpose-bench-triton-{os.getpid()}-{i}.sock" for i in range(count)]
    collected: list[list[PoseMessage]] = [[] for _ in range(count)]
    subscribers = [PoseSubscriber(endpoint, topics=["pose"]) for endpoint in endpoints]
    commands = [[sys.executable, "-m", "wildpose.tools.cli", "run", "--source", f"bench{i}={clip}", "--detector",
                 "none", "--publish", endpoint, "--wait-subscribers", "1", *engine_args]
                for i, endpoint in enumerate(endpoints)]
    logs = [tempfile.TemporaryFile(mode="w+") for _ in range(count)]
    processes = [subprocess.Popen(command, stderr=log_file) for command, log_file in zip(commands, logs, strict=True)]

    def receive(index: int) -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            message = subscribers[index].recv(timeout=1.0)
            if message is not None:
                collected[index].append(message)
            elif processes[index].poll() is not None:
                return

    readers = [threading.Thread(target=receive, args=(i,), daemon=True) for i in range(count)]
    try:
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join()
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        codes = [process.wait(timeout=30) for process in processes]
        for subscriber in subscribers:
            subscriber.close()
    if any(codes):
        failed = codes.index(max(codes))
        logs[failed].seek(0)
        last = (logs[failed].read().strip().splitlines() or ["(no output)"])[-1]
        raise PipelineError(f"a benchmark pipeline failed (exit status {codes[failed]}): {last}")
    for log_file in logs:
        log_file.close()
    return [pose for poses in collected for pose in poses]


def _frame_count(clip: Path) -> int:
    import av

    with av.open(str(clip)) as container:
        return sum(1 for packet in container.demux(video=0) if packet.size)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def format_table(rows: list[TritonBenchRow], clip: str) -> str:
    headers = ["engine", "pipelines", "frames published / expected", "frames/s (all)", "latency p50 ms",
               "latency p95 ms"]
    body = [[r.engine, str(r.pipelines) if r.pipelines else "-", f"{r.frames_published} / {r.frames_expected}",
             f"{r.frames_per_s:.1f}", f"{r.latency_p50_ms:.1f}", f"{r.latency_p95_ms:.1f}"] for r in rows]
    return (markdown_table(headers, body) + f"\n(realtime pipelines on {clip}, detector off; the server runs "
            "on the same machine, loopback gRPC; 'engine alone' rows: batch-1 calls, latency = call time)")
