"""Faults: a stage killed behind publish is restarted and loses nothing from a file; whatever way a run
ends (end of file, a signal, stages that cannot start again, the supervisor itself killed), its
shared-memory rings are released."""

from __future__ import annotations

import http.server
import os
import re
import shutil
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
from support import receive_poses

from wildpose.stream.client import PoseSubscriber
from wildpose.tools import democlip

SHM = Path("/dev/shm")
pytestmark = [pytest.mark.faults, pytest.mark.skipif(not SHM.is_dir(), reason="no /dev/shm on this system")]


def rings_of(pid: int) -> list[str]:
    return sorted(p.name for p in SHM.glob(f"wp{pid}_*"))


def released(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while rings_of(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not rings_of(pid)


def everything_published(run, after_each_pose=None) -> tuple[list, list]:
    """The pose and stats messages of a run, until it ends; `after_each_pose(poses)` may act mid-run."""
    from wildpose.stream.client import StatsMessage

    poses, stats = [], []
    with PoseSubscriber(run.endpoint, topics=["pose", "stats"]) as subscriber:
        while True:
            message = subscriber.recv(timeout=0.5)
            if message is None:
                if run.process.poll() is not None:
                    return poses, stats  # ended, and everything it sent has been read
                continue
            if isinstance(message, StatsMessage):
                stats.append(message)
            else:
                poses.append(message)
                if after_each_pose is not None:
                    after_each_pose(poses)


def running(pipeline, walker_clip):
    run = pipeline("--source", f"walker={walker_clip}", "--loop", "--detector", "none", "--wait-subscribers", "1")
    subscriber = PoseSubscriber(run.endpoint, topics=["pose"])
    assert len(receive_poses(subscriber, 3)) == 3, run.log
    assert rings_of(run.process.pid), "the run made no shared-memory rings to check"
    return run, subscriber


def test_the_end_of_a_file_releases_the_rings(pipeline, walker_clip):
    run = pipeline("--source", f"walker={walker_clip}", "--every-frame", "--detector", "none")
    assert run.wait() == 0, run.log
    assert released(run.process.pid)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_releases_the_rings(pipeline, walker_clip, sig):
    run, subscriber = running(pipeline, walker_clip)
    with subscriber:
        assert run.stop(sig) == 0
    assert released(run.process.pid)


@pytest.mark.parametrize("stage", ["preprocess-walker", "infer", "smooth"])
def test_a_killed_stage_behind_publish_is_restarted_and_a_file_loses_no_frame(pipeline, walker_clip, stage):
    frames = 96  # two passes of the clip
    run = pipeline("--source", f"walker={walker_clip}", "--every-frame", "--loop", "--detector", "none",
                   "--wait-subscribers", "1")
    with PoseSubscriber(run.endpoint, topics=["pose"]) as subscriber:
        before = receive_poses(subscriber, 10)
        assert len(before) == 10, run.log
        publish_pid = run.pid_of("publish")
        mark = len(run.lines)
        os.kill(run.pid_of(stage), signal.SIGKILL)
        killed = time.monotonic()
        run.wait_for_log(rf"{stage} died \(signal SIGKILL\); restarting the stages between the sources and publish",
                         after=mark)
        run.wait_for_log(rf"stages restarted after {stage} died", after=mark)
        print(f"{stage} killed: stages running again after {time.monotonic() - killed:.1f} s")
        after = receive_poses(subscriber, frames - len(before), timeout=60)
    assert [p.seq for p in before + after] == list(range(frames)), run.log  # every frame, in order, once
    os.kill(publish_pid, 0)  # the publisher (and its subscribers' connections) lived on
    assert run.stop(signal.SIGINT) == 0
    assert "restarts 1" in run.log and "Traceback" not in run.log
    assert re.search(r"final stats walker: captured \d+, published \d+, dropped 0,", run.log), run.log
    assert released(run.process.pid)


def test_a_signal_while_the_stages_restart_stops_the_run_cleanly(pipeline, walker_clip):
    run, subscriber = running(pipeline, walker_clip)
    with subscriber:
        os.kill(run.pid_of("infer"), signal.SIGKILL)
        run.wait_for_log("restarting the stages")
        assert run.stop(signal.SIGINT) == 0, run.log
    assert "(stopped by signal SIGINT)" in run.log and "Traceback" not in run.log
    assert released(run.process.pid)


def test_a_paced_run_whose_inference_was_killed_accounts_for_every_frame(pipeline, tmp_path):
    """A file in realtime mode, like a live source, goes on from the last frame captured: every frame
    is received by the subscriber or counted as dropped (those lost with the dead stages as `restart`)."""
    frames = 96
    clip = democlip.write_clip(tmp_path / "walker.mp4", frames=frames)
    run = pipeline("--source", f"walker={clip}", "--detector", "none", "--wait-subscribers", "1")

    def kill_infer_at_the_tenth_pose(poses: list) -> None:
        if len(poses) == 10 and "restarting the stages" not in run.log:
            os.kill(run.pid_of("infer"), signal.SIGKILL)
            run.wait_for_log("restarting the stages")

    poses, stats = everything_published(run, kill_infer_at_the_tenth_pose)
    assert run.wait() == 0, run.log
    final = stats[-1]
    seqs = [p.seq for p in poses]
    assert seqs == sorted(set(seqs)) and seqs[-1] == frames - 1
    assert final.totals["captured"] == frames
    assert len(poses) + sum(final.drops.values()) == frames, (len(poses), final.drops)
    assert "restarts 1" in run.log


def test_stages_that_cannot_start_again_end_the_run_loudly_and_release_the_rings(pipeline, walker_clip, tmp_path):
    from wildpose.engine import default_model

    model = tmp_path / "model.onnx"
    shutil.copyfile(default_model.onnx_path(), model)
    run = pipeline("--source", f"walker={walker_clip}", "--loop", "--detector", "none", "--model", str(model),
                   "--wait-subscribers", "1")
    with PoseSubscriber(run.endpoint, topics=["pose"]) as subscriber:
        assert len(receive_poses(subscriber, 3)) == 3, run.log
        model.unlink()  # the restarted inference stage cannot load it
        os.kill(run.pid_of("infer"), signal.SIGKILL)
        assert run.wait(timeout=60) == 1
    errors = [line for line in run.lines if line.startswith("wildpose: error:")]
    assert len(errors) == 1 and "could not restart the stages after infer died" in errors[0], run.log
    assert "Traceback" not in run.log
    assert released(run.process.pid)


def test_a_killed_supervisor_takes_its_stages_and_rings_with_it(pipeline, walker_clip):
    run, subscriber = running(pipeline, walker_clip)
    stages = [run.pid_of(name) for name in ("publish", "infer", "smooth", "preprocess-walker", "capture-walker")]
    with subscriber:
        run.process.kill()
        run.process.wait()
    assert released(run.process.pid), rings_of(run.process.pid)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(pid) for pid in stages):
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in stages)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by its dead parent's successor) counts as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


class _StallingHandler(http.server.BaseHTTPRequestHandler):
    """Each request gets the first half of the clip; the first client still reading after it then gets
    silence on an open connection, every later one the rest. (The supervisor's size probe reads only
    the start and hangs up, so it is not the one that stalls.)"""

    clip: bytes = b""
    stalled = 0
    release = threading.Event()

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(len(self.clip)))
        self.end_headers()
        try:
            self.wfile.write(self.clip[: len(self.clip) // 2])
            self.wfile.flush()
            time.sleep(0.5)
            if self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                return  # the client hung up
        except BlockingIOError:
            pass  # still connected, nothing to read: a client waiting for the rest
        except OSError:
            return
        if type(self).stalled == 0:
            type(self).stalled += 1
            self.release.wait(60)  # stalls without closing
            return
        try:
            self.wfile.write(self.clip[len(self.clip) // 2:])
        except OSError:
            pass

    def log_message(self, *args) -> None:
        pass


def test_a_source_that_stalls_without_closing_times_out_and_is_reopened(pipeline, tmp_path):
    clip = democlip.write_clip(tmp_path / "walker.mp4", frames=96, faststart=True)
    handler = type("Handler", (_StallingHandler,), {"clip": clip.read_bytes(), "stalled": 0,
                                                   "release": threading.Event()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/walker.mp4"
        run = pipeline("--source", f"web={url}", "--detector", "none", "--read-timeout", "2",
                       "--wait-subscribers", "1")
        with PoseSubscriber(run.endpoint, topics=["pose"]) as subscriber:
            poses = receive_poses(subscriber, 120, timeout=90)  # more than the first half holds
        assert len(poses) == 120, run.log
        assert handler.stalled == 1
        assert re.search(r"web: lost http://\S+: no data for 2 s \(read timeout\); reconnecting", run.log), run.log
        assert run.stop(signal.SIGINT) == 0
    finally:
        handler.release.set()
        server.shutdown()


def test_a_live_paced_run_that_cannot_keep_up_accounts_for_every_frame(pipeline, tmp_path):
    """A 240 frames/s clip is far faster than the bundled model on one thread: frames are skipped for
    newer ones. Every frame of the file is either received by the subscriber or counted as dropped."""
    clip = democlip.write_clip(tmp_path / "fast.mp4", frames=48, fps=240)
    run = pipeline("--source", f"walker={clip}", "--detector", "none", "--threads", "1", "--wait-subscribers", "1")
    poses, stats = everything_published(run)
    assert run.wait() == 0, run.log
    final = stats[-1]
    seqs = [p.seq for p in poses]
    assert seqs == sorted(set(seqs))
    assert final.totals["captured"] == 48
    assert final.drops["stale"] > 0  # it could not keep up
    assert len(poses) + sum(final.drops.values()) == 48, (len(poses), final.drops)
