"""`wildpose demo`: the whole pipeline on the project's own clip, watched by a real subscriber.

It starts `wildpose run` as its own process on the bundled clip (a SynthPose-rendered person that
even OpenCV's HOG detector finds, democlip.py; realtime pacing, the embedded default model),
subscribes to it over ZeroMQ, prints the model's weights once, one line per pose message (each
naming the weights in short, so no line passes for a real pose) and ends with what arrived: frames,
frames/s, capture-to-publish latency and people per frame.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass

import numpy as np

from wildpose.engine.cache import cache_dir
from wildpose.errors import PipelineError
from wildpose.stream.client import MetaMessage, PoseMessage, PoseSubscriber
from wildpose.tools import democlip
from wildpose.tools.run_cli import describe

log = logging.getLogger(__name__)

_FIRST_MESSAGE_TIMEOUT_S = 120.0  # the first run builds and exports the default model
_MESSAGE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class DemoConfig:
    model: str | None = None
    backend: str = "auto"
    detector: str = "yolox"
    every_frame: bool = False


def run(config: DemoConfig) -> int:
    from wildpose.engine import loader

    loader.resolve(config.model, config.backend)  # a bad model or backend fails here, in one line
    clip = democlip.demo_clip(cache_dir("demo"))  # rendered once, then reused
    endpoint = f"ipc://{tempfile.gettempdir()}/wildpose-demo-{os.getpid()}.sock"
    command = [sys.executable, "-m", "wildpose.tools.cli", "run", "--source", f"demo={clip}",
               "--publish", endpoint, "--wait-subscribers", "1", "--backend", config.backend,
               "--detector", config.detector]
    if config.model:
        command += ["--model", config.model]
    if config.every_frame:
        command.append("--every-frame")
    log.debug("demo: %s", " ".join(command))
    with PoseSubscriber(endpoint) as subscriber:
        pipeline = subprocess.Popen(command)
        try:
            poses, weights = _watch(subscriber, pipeline)
        finally:
            if pipeline.poll() is None:
                pipeline.terminate()
            code = pipeline.wait(timeout=10)
    if code != 0:
        raise PipelineError(f"the pipeline exited with status {code}; see its log above")
    _summary(poses, weights)
    return 0


def _watch(subscriber: PoseSubscriber, pipeline: subprocess.Popen) -> tuple[list[PoseMessage], str]:
    poses: list[PoseMessage] = []
    weights = "unknown weights"
    timeout = _FIRST_MESSAGE_TIMEOUT_S
    while True:
        message = subscriber.recv(timeout=1.0)
        if message is None:
            if pipeline.poll() is not None:
                return poses, weights  # the run ended: everything it published has arrived
            timeout -= 1.0
            if timeout <= 0:
                raise PipelineError("no message from the pipeline; see its log above")
            continue
        timeout = _MESSAGE_TIMEOUT_S
        if isinstance(message, MetaMessage) and str(message.model.get("weights")) != weights:
            weights = str(message.model.get("weights"))
            print(f"# weights: {weights}", flush=True)
        if isinstance(message, PoseMessage):
            poses.append(message)
            print(f"{describe(message)} ({short_weights(weights)})", flush=True)


def short_weights(weights: str) -> str:
    """The gist of a weights description: "trained on SynthPose only (synthetic renders ...): ..." ->
    "trained on SynthPose only", "untrained weights (random init, seed 0)" -> "untrained weights"."""
    return weights.split(" (", 1)[0].split(":", 1)[0]


def _summary(poses: list[PoseMessage], weights: str) -> None:
    if not poses:
        print(f"# received no pose message ({weights})")
        return
    latency = np.array([p.latency_s for p in poses]) * 1000.0
    span = poses[-1].t_publish - poses[0].t_publish
    rate = (len(poses) - 1) / span if span > 0 else float("nan")
    people = np.mean([len(p.people) for p in poses])
    print(f"# received {len(poses)} frames (seq {poses[0].seq}..{poses[-1].seq}) at {rate:.1f} frames/s, "
          f"capture-to-publish latency p50 {np.percentile(latency, 50):.1f} ms, "
          f"p95 {np.percentile(latency, 95):.1f} ms, {people:.2f} people per frame ({weights})", flush=True)
