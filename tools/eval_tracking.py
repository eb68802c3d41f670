"""`wildpose eval --tracking`: identity switches and MOTA of the pipeline on rendered crowd scenes.

Each scene (training/synthpose/crowd.py: 2-4 figures walking across each other, identities known) is
rendered once into the cache as an H.264 clip with its truth beside it, then played through a real
`wildpose run --every-frame` with the settings given (defaults unless told otherwise); a subscriber
collects every published frame's people and training/tracking_metrics.py scores them.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from wildpose.engine.cache import cache_dir
from wildpose.errors import PipelineError
from wildpose.stream.client import PoseMessage, PoseSubscriber
from wildpose.tools.bench import markdown_table
from wildpose.tools.democlip import encode_clip
from wildpose.training.synthpose import crowd
from wildpose.training.tracking_metrics import TrackBox, TrackingScores, TruthBox, score_tracks

log = logging.getLogger(__name__)

DEFAULT_SCENES = ((2, 0), (3, 0), (4, 0))  # (people, seed)


@dataclass(frozen=True)
class SceneResult:
    people: int
    seed: int
    frames: int
    scores: TrackingScores


def scene_clip(config: crowd.CrowdConfig) -> tuple[Path, list[list[TruthBox]]]:
    """The scene's clip and per-frame truth, rendered once into the cache."""
    stem = f"crowd-{config.people}p-seed{config.seed}-{config.frames}f-{config.width}x{config.height}-{config.fps}fps"
    folder = cache_dir("eval")
    clip, truth_file = folder / f"{stem}.mp4", folder / f"{stem}.truth.json"
    if not (clip.is_file() and truth_file.is_file()):
        log.info("rendering the %d-person crowd scene (seed %d, %d frames)", config.people, config.seed,
                 config.frames)
        truths: list[list[dict]] = []

        def images():
            for frame in crowd.render_crowd(config):
                truths.append([{"id": p.id, "box": [float(v) for v in p.box], "seen": p.seen} for p in frame.people])
                yield frame.image

        encode_clip(clip, images(), config.width, config.height, config.fps)
        partial = truth_file.with_suffix(".partial")
        partial.write_text(json.dumps(truths))
        partial.replace(truth_file)
    frames = json.loads(truth_file.read_text())
    return clip, [[TruthBox(p["id"], tuple(p["box"]), p["seen"]) for p in frame] for frame in frames]


def track_clip(clip: Path, frames: int, run_args: list[str], timeout_s: float = 600.0) -> list[list[TrackBox]]:
    """Every frame's published people (id, box) from `wildpose run --every-frame` on `clip`."""
    endpoint = f"ipc://{tempfile.gettempdir()}/wildpose-eval-{os.getpid()}.sock"
    command = [sys.executable, "-m", "wildpose.tools.cli", "run", "--source", f"scene={clip}", "--every-frame",
               "--publish", endpoint, "--wait-subscribers", "1", *run_args]
    by_seq: dict[int, list[TrackBox]] = {}
    with PoseSubscriber(endpoint, topics=["pose"]) as subscriber:
        pipeline = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + timeout_s
            while len(by_seq) < frames and time.monotonic() < deadline:
                message = subscriber.recv(timeout=0.5)
                if isinstance(message, PoseMessage):
                    by_seq[message.seq] = [TrackBox(p.id, tuple(p.bbox)) for p in message.people]
                elif message is None and pipeline.poll() is not None:
                    break
        finally:
            if pipeline.poll() is None:
                pipeline.terminate()
            _, stderr = pipeline.communicate(timeout=30)
    if len(by_seq) < frames:
        last = (stderr or "").strip().splitlines()[-1:] or ["(nothing on stderr)"]
        raise PipelineError(f"the pipeline published {len(by_seq)} of {frames} frames of {clip.name}: {last[0]}")
    return [by_seq[seq] for seq in range(frames)]


def evaluate_scenes(scenes=DEFAULT_SCENES, frames: int = 80, run_args: list[str] | None = None,
                    mocap: str | None = None) -> list[SceneResult]:
    results = []
    for people, seed in scenes:
        options = {"people": people, "seed": seed, "frames": frames}
        if mocap:
            options["mocap_dir"] = str(mocap)
        config = crowd.CrowdConfig(**options)
        clip, truths = scene_clip(config)
        tracks = track_clip(clip, frames, list(run_args or []))
        scores = score_tracks(truths, tracks)
        log.info("%d people (seed %d): MOTA %.3f, %d identity switches", people, seed, scores.mota, scores.switches)
        results.append(SceneResult(people=people, seed=seed, frames=frames, scores=scores))
    return results


def format_table(results: list[SceneResult]) -> str:
    headers = ["people", "seed", "frames", "MOTA", "IDF1", "identity switches", "misses", "false positives",
               "MOTP (IoU)", "mostly tracked", "ids given"]
    rows = [[str(r.people), str(r.seed), str(r.frames), f"{r.scores.mota:.3f}", f"{r.scores.idf1:.3f}",
             str(r.scores.switches), f"{r.scores.misses} of {r.scores.truths}", str(r.scores.false_positives),
             f"{r.scores.motp_iou:.3f}", f"{r.scores.mostly_tracked} of {r.scores.people}",
             str(r.scores.hypothesis_ids)] for r in results]
    return markdown_table(headers, rows)


def as_json(results: list[SceneResult]) -> list[dict]:
    return [{**asdict(r), "scores": r.scores.as_dict()} for r in results]


def summary(results: list[SceneResult]) -> dict[str, float]:
    """All scenes pooled: MOTA weighted by truths, switches summed."""
    truths = sum(r.scores.truths for r in results)
    return {"switches": sum(r.scores.switches for r in results),
            "mota": float(np.sum([r.scores.mota * r.scores.truths for r in results]) / max(truths, 1))}
