"""Helpers shared by the tests: real pipeline processes, free ports, receiving poses."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RunningPipeline:
    """`wildpose run ARGS` in its own process; stderr lines are collected as they come."""

    def __init__(self, *args: str) -> None:
        self.endpoint = f"tcp://127.0.0.1:{free_port()}"
        command = [sys.executable, "-m", "wildpose.tools.cli", "run", "--publish", self.endpoint, *args]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                        env={**os.environ, "WILDPOSE_DEBUG": ""})
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def wait_for_log(self, pattern: str, timeout: float = 30.0, after: int = 0) -> re.Match:
        """The first log line (from line `after` on) matching `pattern`; fails after `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines[after:]:
                match = re.search(pattern, line)
                if match:
                    return match
            if self.process.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.05)
        pytest.fail(f"no log line matching {pattern!r} within {timeout} s; log:\n{self.log}")

    def pid_of(self, stage: str, after: int = 0) -> int:
        return int(self.wait_for_log(rf"started {re.escape(stage)} \(pid (\d+)\)", after=after).group(1))

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code

    def wait(self, timeout: float = 120.0) -> int:
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()




def receive_poses(subscriber, count: int, timeout: float = 60.0) -> list:
    """Up to `count` pose messages from `subscriber`, within `timeout` seconds."""
    from wildpose.stream.client import PoseMessage

    poses = []
    deadline = time.monotonic() + timeout
    while len(poses) < count and time.monotonic() < deadline:
        message = subscriber.recv(timeout=1.0)
        if isinstance(message, PoseMessage):
            poses.append(message)
    return poses
