"""`wildpose proxy`: named pipelines behind one endpoint; a subscriber there gets every stream whole."""

import json
import re
import signal
import socket
import time

import pytest
from support import (
    RunningCommand,
    assert_one_error_line,
    free_port,
    http_get,
    ipv6_loopback,
    receive_poses,
    scrape_metrics,
    wildpose,
)

from wildpose.stream import auth
from wildpose.stream.client import MetaMessage, PoseMessage, PoseSubscriber

FRAMES = 48  # the walker clip


def test_three_pipelines_reach_one_subscriber_through_the_proxy_every_frame_in_order(walker_clip):
    upstreams = [f"tcp://127.0.0.1:{free_port()}" for _ in range(3)]
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    proxy = RunningCommand("proxy", *(a for e in upstreams for a in ("--upstream", e)), "--bind", endpoint)
    pipelines = []
    try:
        proxy.wait_for_log(r"proxy: 3 pipeline")
        with PoseSubscriber(endpoint, topics=["pose", "meta"]) as subscriber:
            # every pipeline holds its first frame until the subscription has come up through the proxy
            pipelines = [RunningCommand("run", "--name", f"site{i}", "--source", f"cam={walker_clip}", "--every-frame",
                                        "--detector", "none", "--publish", upstream, "--wait-subscribers", "1")
                         for i, upstream in enumerate(upstreams)]
            poses, metas = [], []
            deadline = time.monotonic() + 120
            while len(poses) < 3 * FRAMES and time.monotonic() < deadline:
                message = subscriber.recv(timeout=1.0)
                if isinstance(message, PoseMessage):
                    poses.append(message)
                elif isinstance(message, MetaMessage):
                    metas.append(message)
        for pipeline in pipelines:
            assert pipeline.wait(timeout=60) == 0, pipeline.log
        assert proxy.stop(signal.SIGTERM) == 0, proxy.log
    finally:
        for command in [*pipelines, proxy]:
            command.kill()
    by_stream = {}
    for pose in poses:
        by_stream.setdefault(pose.stream, []).append(pose.seq)
    assert sorted(by_stream) == ["site0.cam", "site1.cam", "site2.cam"]  # ids stay unique across the fleet
    for stream, seqs in by_stream.items():
        assert seqs == list(range(FRAMES)), f"{stream}: {seqs}"
    assert {stream for meta in metas for stream in meta.streams} == set(by_stream)  # each pipeline's meta


def test_a_subscriber_joining_later_through_the_proxy_still_gets_meta(walker_clip):
    upstream, endpoint = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    proxy = RunningCommand("proxy", "--upstream", upstream, "--bind", endpoint)
    pipeline = None
    try:
        proxy.wait_for_log(r"proxy: 1 pipeline")
        with PoseSubscriber(endpoint, topics=["pose", "meta"]) as first:
            pipeline = RunningCommand("run", "--name", "lobby", "--source", f"cam={walker_clip}", "--loop",
                                      "--detector", "none", "--publish", upstream, "--wait-subscribers", "1")
            assert receive_poses(first, 5), pipeline.log  # the pipeline runs and has sent its meta once
            with PoseSubscriber(endpoint, topics=["meta"]) as later:
                message, deadline = None, time.monotonic() + 20
                while not isinstance(message, MetaMessage) and time.monotonic() < deadline:
                    message = later.recv(timeout=1.0)
        assert isinstance(message, MetaMessage), "the later subscriber got no meta through the proxy"
        assert list(message.streams) == ["lobby.cam"]
    finally:
        for command in (pipeline, proxy):
            if command is not None:
                command.kill()


def test_the_proxy_carries_an_encrypted_pipeline_to_an_encrypted_subscriber(walker_clip, tmp_path):
    pipeline_key, pipeline_secret = auth.generate_keys(tmp_path, "pipeline")
    _, proxy_client_secret = auth.generate_keys(tmp_path / "pipeline-clients", "proxy")
    proxy_key, proxy_secret = auth.generate_keys(tmp_path, "proxy-server")
    _, viewer_secret = auth.generate_keys(tmp_path / "proxy-clients", "viewer")
    upstream, endpoint = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    proxy = RunningCommand("proxy", "--upstream", upstream, "--bind", endpoint,
                           "--upstream-server-key", str(pipeline_key), "--upstream-secret", str(proxy_client_secret),
                           "--curve-secret", str(proxy_secret), "--curve-clients", str(tmp_path / "proxy-clients"))
    pipeline = None
    try:
        proxy.wait_for_log(r"proxy: 1 pipeline")
        with PoseSubscriber(endpoint, topics=["pose"], curve_server_key=str(proxy_key),
                            curve_secret=str(viewer_secret)) as viewer, PoseSubscriber(endpoint) as plain:
            pipeline = RunningCommand("run", "--name", "vault", "--source", f"cam={walker_clip}", "--every-frame",
                                      "--detector", "none", "--publish", upstream, "--wait-subscribers", "1",
                                      "--curve-secret", str(pipeline_secret),
                                      "--curve-clients", str(tmp_path / "pipeline-clients"))
            poses = receive_poses(viewer, FRAMES, timeout=60)
            assert plain.recv(timeout=0.5) is None  # the proxy's side is encrypted too
        assert [p.seq for p in poses] == list(range(FRAMES)) and {p.stream for p in poses} == {"vault.cam"}
    finally:
        for command in (pipeline, proxy):
            if command is not None:
                command.kill()


def test_the_proxy_refuses_a_malformed_endpoint_in_one_line():
    assert_one_error_line(wildpose("proxy", "--upstream", "localhost:5555"), "not a ZeroMQ endpoint")
    assert_one_error_line(wildpose("proxy", "--upstream", "tcp://127.0.0.1:1", "--upstream-secret", "x.key_secret"),
                          "need both --upstream-server-key")


def test_a_pipeline_name_that_cannot_prefix_stream_ids_is_refused(walker_clip):
    assert_one_error_line(wildpose("run", "--name", "a.b", "--source", str(walker_clip)), "pipeline name 'a.b'")


def test_a_pipeline_the_proxy_and_a_recorder_over_ipv6(walker_clip, tmp_path):
    """ZeroMQ sockets speak IPv6 only when asked: `--publish tcp://[::1]:PORT` once failed with "No such
    device", though ::1 is this machine's own address."""
    if not ipv6_loopback():
        pytest.skip("no IPv6 loopback (::1) on this machine")
    upstream, endpoint = (f"tcp://[::1]:{free_port()}" for _ in range(2))
    proxy = RunningCommand("proxy", "--upstream", upstream, "--bind", endpoint)
    recorder = RunningCommand("record", "--endpoint", endpoint, "--output", str(tmp_path / "v6.mcap"),
                              "--idle-timeout", "2")
    run = None
    try:
        proxy.wait_for_log(r"proxy: 1 pipeline")
        with PoseSubscriber(endpoint, topics=["pose"]) as subscriber:
            run = RunningCommand("run", "--source", f"cam={walker_clip}", "--every-frame", "--detector", "none",
                                 "--publish", upstream, "--wait-subscribers", "1")
            poses = receive_poses(subscriber, FRAMES)
        assert [p.seq for p in poses] == list(range(FRAMES)), run.log
        assert run.wait(timeout=60) == 0, run.log
        assert recorder.wait(timeout=60) == 0, recorder.log
        assert re.search(r"recorded \d+ messages", recorder.log), recorder.log
    finally:
        for command in (run, recorder, proxy):
            if command is not None:
                command.kill()


def test_the_proxy_counts_what_it_forwards_per_stream(walker_clip):
    """`wildpose proxy --metrics`: every frame of a pipeline's file, counted as it went through."""
    upstream, endpoint, port = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}", free_port()
    proxy = RunningCommand("proxy", "--upstream", upstream, "--bind", endpoint, "--metrics", str(port))
    pipeline = None
    try:
        proxy.wait_for_log(r"proxy: 1 pipeline")
        assert http_get(port, "/readyz")[0] == 200 and http_get(port, "/livez")[0] == 200
        with PoseSubscriber(endpoint, topics=["pose", "meta"]) as subscriber:
            pipeline = RunningCommand("run", "--name", "lobby", "--source", f"cam={walker_clip}", "--every-frame",
                                      "--detector", "none", "--publish", upstream, "--wait-subscribers", "1")
            poses = receive_poses(subscriber, FRAMES)
            assert pipeline.wait(timeout=60) == 0, pipeline.log
        assert len(poses) == FRAMES, pipeline.log
        deadline = time.monotonic() + 5  # the counting thread reads the capture a moment later
        while time.monotonic() < deadline:
            metrics = scrape_metrics(port)
            if metrics["wildpose_proxy_messages_total"].get(("lobby.cam", "pose")) == FRAMES:
                break
            time.sleep(0.1)
        assert metrics["wildpose_proxy_messages_total"][("lobby.cam", "pose")] == FRAMES
        assert metrics["wildpose_proxy_messages_total"][("", "meta")] >= 1  # meta names no stream in its topic
        assert metrics["wildpose_proxy_subscription_events_total"][("subscribe",)] >= 2  # pose/ and meta
        assert metrics["wildpose_proxy_last_message_age_seconds"][("lobby.cam",)] < 30
        status = json.loads(http_get(port, "/status")[1])
        assert status["streams"]["lobby.cam"]["messages"]["pose"] == FRAMES and status["upstreams"] == [upstream]
        assert proxy.stop(signal.SIGTERM) == 0, proxy.log
    finally:
        for command in (pipeline, proxy):
            if command is not None:
                command.kill()


def test_a_proxy_metrics_port_in_use_is_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = wildpose("proxy", "--upstream", f"tcp://127.0.0.1:{free_port()}", "--bind",
                          f"tcp://127.0.0.1:{free_port()}", "--metrics", str(port), timeout=30)
    assert_one_error_line(result, f"cannot serve metrics on {port}", "another program is using it")
