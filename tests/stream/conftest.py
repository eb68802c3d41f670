"""Fixtures for tests that run the real pipeline."""

from __future__ import annotations

import pytest
from support import RunningPipeline, free_port


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
