"""`wildpose run --metrics`: Prometheus metrics and health probes over HTTP, read off a real pipeline.

The metrics count what subscribers receive, readiness drops while the stages restart after a kill and
comes back, and a wrong address or a taken port is one line before anything starts.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time

import pytest
from support import (
    assert_one_error_line,
    free_port,
    http_get,
    receive_poses,
    scrape_metrics,
    wait_until_ready,
    wildpose,
)

from wildpose.errors import ConfigError
from wildpose.stream import config as run_config
from wildpose.stream import health
from wildpose.stream.client import PoseSubscriber
from wildpose.stream.stats import LatencyHistogram


def test_the_metrics_count_what_the_subscribers_receive(pipeline, walker_clip):
    port, walker = free_port(), ("walker",)
    run = pipeline("--source", f"walker={walker_clip}", "--loop", "--detector", "none", "--metrics", str(port),
                   "--wait-subscribers", "1")
    with PoseSubscriber(run.endpoint, topics=["pose"]) as subscriber:
        wait_until_ready(port, run)
        poses = receive_poses(subscriber, 30)
        assert len(poses) == 30, run.log
        first = scrape_metrics(port)
        more = receive_poses(subscriber, 10)
        assert len(more) == 10, run.log
        # A frame is counted just after it is sent, so the last one received may be counted a moment
        # after it arrived (once 39 published were scraped for 40 received).
        received, deadline = len(poses) + len(more), time.monotonic() + 5.0
        while True:
            second = scrape_metrics(port)
            if second["wildpose_frames_published_total"][walker] >= received or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert first["wildpose_stages_up"][()] == 1.0
    info = next(iter(first["wildpose_info"]))  # backend, model, pipeline, version
    assert info[0] == "onnxruntime" and info[1].endswith(".onnx")
    # the subscriber was there before the first frame (--wait-subscribers): all it got is counted
    published = second["wildpose_frames_published_total"][walker]
    assert published >= len(poses) + len(more) and published >= first["wildpose_frames_published_total"][walker]
    assert second["wildpose_frames_captured_total"][walker] >= max(more[-1].seq + 1, published)
    # the latency histogram has one sample per published frame (within a frame published while the two
    # were read, one after the other)
    count = second["wildpose_latency_seconds_count"][walker]
    assert published - 1 <= count <= published + 1
    assert second["wildpose_latency_seconds_bucket"][("+Inf", "walker")] == count
    buckets = [v for (le, _), v in second["wildpose_latency_seconds_bucket"].items()]
    assert buckets == sorted(buckets)  # cumulative
    measured = [(m.t_publish - m.t_capture) for m in poses + more]
    assert 0 < second["wildpose_latency_seconds_sum"][walker] / count < 10 * max(measured)
    assert second["wildpose_frames_dropped_total"][("stale", "walker")] >= 0
    assert second["wildpose_source_last_frame_age_seconds"][walker] < 5.0
    status = json.loads(http_get(port, "/status")[1])
    assert status["phase"] == "running" and status["streams"]["walker"]["state"] == "receiving"
    assert http_get(port, "/livez")[0] == 200 and http_get(port, "/nothing")[0] == 404
    assert run.stop(signal.SIGINT) == 0
    with pytest.raises(OSError):  # the endpoint goes with the run
        http_get(port, "/livez")


@pytest.mark.faults
def test_readiness_drops_while_the_stages_restart_and_comes_back(pipeline, walker_clip):
    """A killed inference process: /readyz says 503 until the stages run again, /livez stays 200."""
    port = free_port()
    run = pipeline("--source", f"walker={walker_clip}", "--loop", "--detector", "none", "--metrics", str(port))
    wait_until_ready(port, run)
    assert scrape_metrics(port)["wildpose_pipeline_restarts_total"][()] == 0
    os.kill(run.pid_of("infer"), signal.SIGKILL)
    seen, liveness = [], set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and seen[-2:] != [503, 200]:
        code = http_get(port, "/readyz")[0]
        if not seen or seen[-1] != code:
            seen.append(code)
        liveness.add(http_get(port, "/livez")[0])
        time.sleep(0.02)
    assert seen[-2:] == [503, 200], f"/readyz went {seen}; log:\n{run.log}"
    assert liveness == {200}
    assert scrape_metrics(port)["wildpose_pipeline_restarts_total"][()] == 1
    assert "stages restarted after infer died" in run.log
    assert run.stop(signal.SIGINT) == 0


def test_a_taken_port_and_a_bad_address_are_one_line_each(walker_clip):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = wildpose("run", "--source", str(walker_clip), "--detector", "none", "--metrics", str(port),
                          "--publish", f"tcp://127.0.0.1:{free_port()}")
    assert_one_error_line(result, f"cannot serve metrics on {port}", "another program is using it", "--metrics")
    assert "started publish" not in result.stderr  # refused before any process started
    assert_one_error_line(wildpose("run", "--source", str(walker_clip), "--metrics", "localhost:http"),
                          "metrics must be PORT, HOST:PORT or [IPv6]:PORT", "'localhost:http'")


@pytest.mark.parametrize("value, address", [("9100", ("127.0.0.1", 9100)), ("0.0.0.0:9100", ("0.0.0.0", 9100)),
                                            ("[::1]:9100", ("::1", 9100)), (9100, ("127.0.0.1", 9100))])
def test_a_metrics_address_is_a_port_with_an_optional_host(value, address):
    assert health.parse_address(value) == address


@pytest.mark.parametrize("value", ["", "http", "host:", ":9100", "0.0.0.0:70000", "::1:9100", True])
def test_a_malformed_metrics_address_is_refused(value):
    with pytest.raises(ConfigError, match="metrics must be PORT, HOST:PORT or"):
        health.parse_address(value)


def test_a_config_file_may_set_the_metrics_address(tmp_path, walker_clip):
    path = tmp_path / "site.toml"
    path.write_text(f'metrics = "0.0.0.0:9100"\n[[source]]\nurl = "{walker_clip}"\n')
    config = run_config.build(run_config.load_toml(path), {}, [], {})
    assert config.metrics == "0.0.0.0:9100"


def test_the_latency_histogram_buckets_each_frame_once():
    histogram = LatencyHistogram()
    for seconds in (0.005, 0.01, 0.03, 0.2, 7.0):
        histogram.add(seconds)
    buckets, total = histogram.cumulative()
    assert dict(buckets)[0.01] == 2 and dict(buckets)[0.035] == 3 and dict(buckets)[0.25] == 4
    assert buckets[-1] == (float("inf"), 5) and total == pytest.approx(7.245)
