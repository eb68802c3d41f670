"""`wildpose` as a container's first process: `docker run IMAGE run ...` makes it pid 1 of its pid
namespace. The stages once read a parent pid of 1 as "my parent died" and exited at start, so the
run ended with "the publish process exited during start-up"; pid 1 has no default SIGTERM action,
so `docker stop` must find a handler; and two such runs may share one /dev/shm. Each test runs the
command as pid 1 of a new pid namespace."""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

PROBE = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "true"]


@pytest.fixture(scope="module")
def pid_namespaces():
    if shutil.which("unshare") is None or subprocess.run(PROBE, capture_output=True).returncode != 0:
        pytest.skip("needs `unshare --pid` (root, or a user namespace) to run a command as pid 1")


def as_pid_one(*wildpose_args: str) -> subprocess.Popen:
    """`wildpose ARGS` as pid 1 of a new pid namespace; its first stdout line is its pid there."""
    command = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "sh", "-c", 'echo $$; exec "$@"', "sh",
               sys.executable, "-m", "wildpose.tools.cli", *wildpose_args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "WILDPOSE_DEBUG": ""})


def the_command_in(namespace: subprocess.Popen) -> int:
    """The host pid of the namespace's pid 1 (the child `unshare --fork` made)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = open(f"/proc/{namespace.pid}/task/{namespace.pid}/children").read().split()
        if children:
            return int(children[0])
        time.sleep(0.05)
    pytest.fail("unshare started no child")


def catches_sigterm(pid: int) -> bool:
    """Whether process `pid` has a SIGTERM handler (its SigCgt mask in /proc)."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


def test_a_run_as_pid_one_publishes_every_frame(pid_namespaces, walker_clip):
    run = as_pid_one("run", "--source", str(walker_clip), "--every-frame", "--detector", "none",
                     "--publish", f"ipc:///tmp/wildpose-pid-one-{os.getpid()}.sock")
    out, err = run.communicate(timeout=300)
    assert out.splitlines()[0] == "1"
    assert run.returncode == 0, err
    assert "captured 48, published 48, dropped 0" in err


def test_two_runs_as_pid_one_beside_each_other_share_dev_shm(pid_namespaces, walker_clip):
    """Two containers of one Kubernetes pod (or two with `docker run --ipc host`) share /dev/shm, each
    run pid 1 of its own namespace: their rings, once named by pid alone, collided (File exists)."""
    runs = [as_pid_one("run", "--source", str(walker_clip), "--every-frame", "--detector", "none",
                       "--publish", f"ipc:///tmp/wildpose-pid-one-{os.getpid()}-{index}.sock") for index in (0, 1)]
    for run in runs:
        out, err = run.communicate(timeout=300)
        assert out.splitlines()[0] == "1"
        assert run.returncode == 0 and "captured 48, published 48, dropped 0" in err, err


def test_docker_stop_ends_a_run_as_pid_one_cleanly(pid_namespaces, walker_clip):
    """`docker stop` sends SIGTERM to pid 1: the run stops its stages in order and reports."""
    run = as_pid_one("run", "--source", str(walker_clip), "--loop", "--detector", "none",
                     "--publish", f"ipc:///tmp/wildpose-pid-one-stop-{os.getpid()}.sock")
    try:
        first_line = run.stdout.readline()
        assert first_line.strip() == "1"
        for line in run.stderr:
            if "all 1 streams start" in line:
                break
        time.sleep(1.0)
        os.kill(the_command_in(run), signal.SIGTERM)
        err = run.stderr.read()
        assert run.wait(timeout=30) == 0, err
        assert "(stopped by signal SIGTERM)" in err and "Traceback" not in err
    finally:
        run.kill()


def test_docker_stop_ends_a_subscriber_as_pid_one(pid_namespaces, unused_port):
    """A verb without its own SIGTERM handler (here `subscribe`, waiting on a silent endpoint) stops
    as on Ctrl-C instead of ignoring SIGTERM until Docker kills it."""
    subscriber = as_pid_one("subscribe", "--endpoint", f"tcp://127.0.0.1:{unused_port}")
    try:
        assert subscriber.stdout.readline().strip() == "1"
        pid = the_command_in(subscriber)
        deadline = time.monotonic() + 60
        while not catches_sigterm(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert catches_sigterm(pid), "as pid 1 it would ignore SIGTERM"
        time.sleep(0.5)  # into the receive loop
        os.kill(pid, signal.SIGTERM)
        assert subscriber.wait(timeout=30) == 130, subscriber.stderr.read()
    finally:
        subscriber.kill()
