"""Fixtures for tests that run the real pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from support import RunningCommand, RunningPipeline, free_port


@pytest.fixture()
def pipeline():
    """Start pipelines with `pipeline(*args)`; every one is killed at the end of the test."""
    started: list[RunningPipeline] = []

    def start(*args: str) -> RunningPipeline:
        running = RunningPipeline(*args)
        started.append(running)
        return running

    yield start
    for running in started:
        running.kill()


@pytest.fixture()
def unused_port() -> int:
    """A TCP port on loopback that nothing listens on (at the time of asking)."""
    return free_port()


@pytest.fixture(scope="session")
def preset_onnx(isolated_cache):
    """The tiny preset exported to ONNX (a pose model, not a detector)."""
    from wildpose.engine import default_model

    return default_model.untrained_onnx("tiny", 0)


@pytest.fixture()
def command():
    """Start `wildpose VERB ARGS` with `command(VERB, *ARGS)`; every one is killed at the end of the test."""
    started: list[RunningCommand] = []

    def start(*args: str) -> RunningCommand:
        running = RunningCommand(*args)
        started.append(running)
        return running

    yield start
    for running in started:
        running.kill()


@dataclass(frozen=True)
class Recording:
    path: Path
    messages: list  # recording.RecordedMessage, in file order
    run_log: str


@pytest.fixture(scope="session")
def recorded_session(tmp_path_factory, walker_clip) -> Recording:
    """A real recording: `wildpose record` of `wildpose run` on the generated clip (realtime pacing,
    thumbnails at 10 Hz, stats every 0.25 s), so replay tests have every topic at a camera's pace."""
    from wildpose.stream import recording

    path = tmp_path_factory.mktemp("recording") / "walker.mcap"
    run = RunningPipeline("--source", f"walker={walker_clip}", "--detector", "none", "--publish-frames", "10",
                          "--stats-interval", "0.25", "--wait-subscribers", "1")
    recorder = RunningCommand("record", "--endpoint", run.endpoint, "--output", str(path), "--idle-timeout", "1.5")
    try:
        assert run.wait(timeout=120) == 0, run.log
        assert recorder.wait(timeout=30) == 0, recorder.log
    finally:
        run.kill()
        recorder.kill()
    messages, damage = recording.read_all(path)
    assert damage is None and messages, recorder.log
    return Recording(path, messages, run.log)
