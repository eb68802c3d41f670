"""Helpers shared by the tests: real pipeline processes, free ports, receiving poses."""

from __future__ import annotations

import functools
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

# where tests leave files for people to look at (screenshots, overlay frames): kept after the run
ARTIFACTS = Path(os.environ.get("WILDPOSE_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts"))


def artifact_path(name: str) -> Path:
    """`ARTIFACTS / name`, its folder created."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ipv6_loopback() -> bool:
    """Whether this machine has an IPv6 loopback (::1) to bind to."""
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def wildpose(*args: str, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`wildpose ARGS` to the end, output captured, tracebacks off; `env` adds to the environment."""
    return subprocess.run([sys.executable, "-m", "wildpose.tools.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "WILDPOSE_DEBUG": "", **(env or {})})


def assert_one_error_line(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """A failed command told the user one `wildpose: error: ...` line holding `fragments`, no traceback."""
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("wildpose: error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


@functools.cache
def small_disks_allowed() -> bool:
    """Whether this machine lets a test mount a tmpfs in a mount namespace of its own (root, or a user
    namespace): how the tests give a command a full disk or a small /dev/shm without touching the machine's."""
    if shutil.which("unshare") is None:
        return False
    with tempfile.TemporaryDirectory() as folder:
        return subprocess.run(small_disk_command(folder, "size=1m", ["true"]), capture_output=True).returncode == 0


def skip_without_small_disks() -> None:
    if not small_disks_allowed():
        pytest.skip("needs `unshare -m` and tmpfs mounts (root, or a user namespace) to give a command a small disk")


def small_disk_command(folder: str | Path, options: str, command: list, then: str = "true") -> list[str]:
    """The argv of `command` with `folder` a tmpfs mounted with `options` (`size=96k`, `size=1m,ro`) in a
    mount namespace of its own, then the shell line `then` (the tmpfs goes with the namespace: copy out
    there what a test reads afterwards); it exits with the command's status."""
    script = f'mount -t tmpfs -o {options} tmpfs {folder} || exit 99; "$@"; status=$?; {then}; exit $status'
    return ["unshare", "-m", "sh", "-c", script, "sh", *map(str, command)]


class RunningCommand:
    """`wildpose VERB ARGS` in its own process; stderr lines are collected as they come."""

    def __init__(self, *args: str, new_session: bool = False) -> None:
        command = [sys.executable, "-m", "wildpose.tools.cli", *args]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                        env={**os.environ, "WILDPOSE_DEBUG": ""}, start_new_session=new_session)
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


class RunningPipeline(RunningCommand):
    """`wildpose run ARGS` publishing on a free loopback port (`endpoint`)."""

    def __init__(self, *args: str) -> None:
        self.endpoint = f"tcp://127.0.0.1:{free_port()}"
        super().__init__("run", "--publish", self.endpoint, *args)


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


def assert_valid_pose(message, size: tuple[int, int]) -> None:
    """A pose message for a `size` (width, height) frame: finite times and joints, pelvis-rooted 3D,
    confidences in [0, 1], boxes inside the frame."""
    assert message.size == size
    assert math.isfinite(message.t_capture) and message.t_publish >= message.t_capture
    for person in message.people:
        assert person.joints2d.shape == (16, 2) and person.joints3d.shape == (16, 3) and person.conf.shape == (16,)
        assert np.all(np.isfinite(person.joints3d)) and np.all(person.joints3d[6] == 0)  # pelvis is the root
        assert np.all((person.conf >= 0) & (person.conf <= 1))
        x0, y0, x1, y1 = person.bbox
        assert 0 <= x0 <= x1 <= size[0] and 0 <= y0 <= y1 <= size[1]


class RawSubscriber:
    """A plain ZeroMQ SUB socket on everything an endpoint publishes: (topic, payload, arrival) tuples,
    arrival by `time.monotonic()`. One subscription, so `--wait-subscribers 1` waits for exactly it."""

    def __init__(self, endpoint: str) -> None:
        import zmq

        self._context = zmq.Context()
        self.socket = self._context.socket(zmq.SUB)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.RCVHWM, 100000)
        self.socket.setsockopt(zmq.SUBSCRIBE, b"")
        self.socket.connect(endpoint)

    def receive(self, count: int, timeout: float = 60.0) -> list[tuple[str, bytes, float]]:
        """Up to `count` messages; stops early when none arrives for `timeout` seconds."""
        received = []
        while len(received) < count and self.socket.poll(int(timeout * 1000)):
            topic, payload = self.socket.recv_multipart()
            received.append((topic.decode(), payload, time.monotonic()))
        return received

    def close(self) -> None:
        self.socket.close(linger=0)
        self._context.term()

    def __enter__(self) -> RawSubscriber:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def http_get(port: int, path: str) -> tuple[int, str]:
    """GET http://127.0.0.1:PORT/PATH: (status, body), error statuses included."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait_until_ready(port: int, run: RunningCommand, timeout: float = 60.0) -> None:
    """Until the `--metrics` endpoint of `run` says /readyz 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if http_get(port, "/readyz")[0] == 200:
                return
        except OSError:  # not bound yet
            pass
        assert run.process.poll() is None, run.log
        time.sleep(0.05)
    pytest.fail(f"/readyz never answered 200 within {timeout} s; log:\n{run.log}")


def scrape_metrics(port: int) -> dict[str, dict[tuple, float]]:
    """metric sample name -> {label values (sorted by label name): value}."""
    status, text = http_get(port, "/metrics")
    assert status == 200
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(v for _, v in sorted(sample.labels.items()))] = sample.value
    return samples
