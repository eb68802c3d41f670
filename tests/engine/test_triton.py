"""Triton: the exported model repository, `wildpose serve` (a real Triton server through PyTriton) and
the `triton` engine a pipeline uses with `--engine triton://HOST:PORT[,HOST2:PORT]`."""

import os
import re
import signal
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from google.protobuf import text_format
from support import RunningCommand, assert_one_error_line, free_port, receive_poses, wildpose
from tritonclient.grpc import model_config_pb2

from wildpose.engine import load
from wildpose.engine.triton_backend import parse_url
from wildpose.errors import ConfigError
from wildpose.stream.client import PoseSubscriber
from wildpose.tools import serve_cli

SQUATS_FRAMES = 65  # ../shared/data/video/pose_squats.mp4: one woman, 720x1280
HEATMAP_STRIDE, INPUT_SIZE, FRAME_SIDE = 4, 192, 1280  # whole-frame crops of the squats clip (detector none)
MAX_2D_ERROR_HEATMAP_PX = 0.05  # the foundation issue's parity tolerance
MAX_DEPTH_RELATIVE_ERROR = 1e-3


@pytest.mark.parametrize("url, servers", [
    ("triton://127.0.0.1:8001", ("127.0.0.1:8001",)),
    ("triton://gpu-a:9001,gpu-b:9001", ("gpu-a:9001", "gpu-b:9001")),
    ("triton://gpu-a", ("gpu-a:8001",)),  # Triton's gRPC port by default
    ("triton://gpu-a:9001,triton://gpu-b:9002", ("gpu-a:9001", "gpu-b:9002")),
])
def test_triton_urls_list_servers_in_fail_over_order(url, servers):
    assert parse_url(url) == servers


@pytest.mark.parametrize("url", ["127.0.0.1:8001", "triton://", "triton://host:port", "triton://host:70000",
                                 "triton://user@host:8001", "http://host:8001"])
def test_a_bad_triton_url_is_a_config_error(url):
    with pytest.raises(ConfigError, match="Triton"):
        parse_url(url)


# -- the model repository for an official Triton server ----------------------------------------------


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    repo = tmp_path_factory.mktemp("triton") / "models"
    result = wildpose("export", "--triton-repo", str(repo), "--triton-max-batch", "16")
    assert result.returncode == 0, result.stderr
    assert "docker run" in result.stdout and "tritonserver --model-repository=/models" in result.stdout
    return repo


def test_the_repository_model_takes_uint8_crops_and_answers_what_the_local_engine_does(repository):
    crops = np.random.default_rng(0).integers(0, 256, (3, INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8)
    session = ort.InferenceSession(str(repository / "wildpose" / "1" / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    served = session.run(["joints2d_crop", "conf", "depth"], {"crops": crops})
    with load(None, "onnxruntime", device="cpu") as engine:
        local = engine.infer_crops(crops)
    for name, a, b in zip(("joints2d_crop", "conf", "depth"), served, local, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5, err_msg=name)


def test_the_repository_metadata_model_returns_the_models_record(repository):
    session = ort.InferenceSession(str(repository / "wildpose_metadata" / "1" / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    (record,) = session.run(["metadata"], {"request": np.zeros(1, np.int32)})[0]
    with load(None, "onnxruntime", device="cpu") as engine:
        assert record == engine.metadata.to_json()


def test_the_repository_configs_are_valid_triton_model_configs(repository):
    config = text_format.Parse((repository / "wildpose" / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert (config.name, config.backend, config.max_batch_size) == ("wildpose", "onnxruntime", 16)
    (crops,) = config.input
    assert (crops.name, crops.data_type, list(crops.dims)) == ("crops", model_config_pb2.TYPE_UINT8,
                                                               [INPUT_SIZE, INPUT_SIZE, 3])
    assert {o.name: list(o.dims) for o in config.output} == {"joints2d_crop": [16, 2], "conf": [16], "depth": [16]}
    assert config.dynamic_batching.max_queue_delay_microseconds == 2000
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    info = text_format.Parse((repository / "wildpose_metadata" / "config.pbtxt").read_text(),
                             model_config_pb2.ModelConfig())
    assert (info.name, info.max_batch_size, info.output[0].data_type) == ("wildpose_metadata", 0,
                                                                          model_config_pb2.TYPE_STRING)


# -- wildpose serve: a real Triton server -------------------------------------------------------------

SERVE_PYTHON = Path(sys.prefix).with_name(Path(sys.prefix).name + "-serve") / "bin" / "python"
needs_serve_env = pytest.mark.skipif(
    not SERVE_PYTHON.is_file() and not os.environ.get(serve_cli.SERVE_PYTHON_ENV),
    reason=f"no serve environment ({SERVE_PYTHON}): `make serve-env` builds it (PyTriton needs NumPy 1)")


class RunningServer(RunningCommand):
    """`wildpose serve` on free loopback ports, in its own process group (Triton runs as a child, so
    killing the group is what losing the machine looks like)."""

    def __init__(self, *args: str) -> None:
        self.grpc, self.http, self.metrics = free_port(), free_port(), free_port()
        self.args = args
        self.start()

    def start(self) -> None:
        """Start (or start again, on the same ports) and wait until Triton serves the models."""
        super().__init__("serve", "--grpc-port", str(self.grpc), "--http-port", str(self.http),
                         "--metrics-port", str(self.metrics), "--max-batch", "16", *self.args, new_session=True)
        self.wait_for_log(r"serving .* on grpc", timeout=90)

    @property
    def url(self) -> str:
        return f"triton://127.0.0.1:{self.grpc}"

    def kill(self) -> None:
        if self.process.poll() is None or self._group_alive():
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()
            deadline = time.monotonic() + 10
            while self._group_alive() and time.monotonic() < deadline:
                time.sleep(0.05)

    def _group_alive(self) -> bool:
        try:
            os.killpg(self.process.pid, 0)
            return True
        except ProcessLookupError:
            return False

    def metric(self, name: str, model: str = "wildpose") -> float:
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics}/metrics", timeout=5).read().decode()
        match = re.search(rf'^{name}{{model="{model}",version="1"}} (\S+)$', text, re.MULTILINE)
        assert match, f"no {name} for {model} in Triton's metrics"
        return float(match.group(1))


@pytest.fixture(scope="module")
def module_server():
    if not SERVE_PYTHON.is_file() and not os.environ.get(serve_cli.SERVE_PYTHON_ENV):
        pytest.skip(f"no serve environment ({SERVE_PYTHON}): `make serve-env` builds it")
    running = RunningServer()
    yield running
    running.kill()


@pytest.fixture()
def server(module_server):
    """The module's server, started again first if an earlier test killed it and failed before
    restarting it (starting one costs seconds: the tests that kill it start it again on its ports)."""
    if not module_server._group_alive():
        module_server.start()
    return module_server


def squats_run(shared_data, *engine_args: str, name: str = "") -> tuple[RunningCommand, str]:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    command = RunningCommand("run", "--source", f"squats={shared_data / 'video' / 'pose_squats.mp4'}",
                             "--every-frame", "--detector", "none", "--no-smoothing", "--publish", endpoint,
                             "--wait-subscribers", "1", *(("--name", name) if name else ()), *engine_args)
    return command, endpoint


def all_poses(shared_data, *engine_args: str) -> dict:
    command, endpoint = squats_run(shared_data, *engine_args)
    try:
        with PoseSubscriber(endpoint) as subscriber:
            poses = receive_poses(subscriber, SQUATS_FRAMES, timeout=120)
        assert command.wait(timeout=60) == 0, command.log
    finally:
        command.kill()
    return {pose.seq: pose for pose in poses}


@needs_serve_env
def test_a_pipeline_on_triton_publishes_every_frame_with_the_joints_of_the_local_engine(server, shared_data):
    remote = all_poses(shared_data, "--engine", server.url)
    local = all_poses(shared_data, "--backend", "onnxruntime")
    assert sorted(remote) == sorted(local) == list(range(SQUATS_FRAMES))
    crop_px_per_frame_px = INPUT_SIZE / FRAME_SIDE
    for seq in range(SQUATS_FRAMES):
        (a,), (b,) = remote[seq].people, local[seq].people
        error_2d = np.abs(a.joints2d - b.joints2d).max() * crop_px_per_frame_px / HEATMAP_STRIDE
        assert error_2d <= MAX_2D_ERROR_HEATMAP_PX, f"frame {seq}: 2D differs by {error_2d:.3f} heatmap px"
        depth_error = np.abs(a.joints3d - b.joints3d).max() / np.abs(b.joints3d).max()
        assert depth_error <= MAX_DEPTH_RELATIVE_ERROR, f"frame {seq}: 3D differs by {depth_error:.2e}"


@needs_serve_env
def test_two_pipelines_share_one_server_and_triton_batches_their_requests(shared_data):
    # Each pipeline has one request in flight, so two pipelines alternate on one model instance unless a
    # request waits in Triton's queue longer than an execution takes (here, a few crops on the CPU: up
    # to ~200 ms): a 300 ms queue delay (default 2 ms, for fleets with many cameras in flight)
    server = RunningServer("--queue-delay-us", "300000")
    requests, executions = server.metric("nv_inference_request_success"), server.metric("nv_inference_exec_count")
    runs = [squats_run(shared_data, "--engine", server.url, name=f"site{i}") for i in range(2)]
    try:
        subscribers = [PoseSubscriber(endpoint) for _, endpoint in runs]
        for command, _ in runs:
            assert command.wait(timeout=120) == 0, command.log
        for subscriber in subscribers:
            subscriber.close()
        requests = server.metric("nv_inference_request_success") - requests
        executions = server.metric("nv_inference_exec_count") - executions
    finally:
        for command, _ in runs:
            command.kill()
        server.kill()
    for command, _ in runs:
        assert re.search(r"published 65, dropped 0", command.log), command.log
    print(f"two pipelines: {requests:.0f} requests ran as {executions:.0f} Triton executions")
    # Triton's own counters: fewer model executions than requests means requests from the two
    # pipelines were merged into larger batches by its dynamic batcher.
    assert requests >= 2 and executions < requests, f"{requests} requests ran as {executions} executions"


@pytest.mark.faults
@needs_serve_env
def test_a_killed_server_is_logged_its_frames_counted_and_the_pipeline_resumes_when_it_returns(server, shared_data):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    pipeline = RunningCommand("run", "--source", f"squats={shared_data / 'video' / 'pose_squats.mp4'}", "--loop",
                              "--detector", "none", "--engine", server.url, "--engine-timeout", "2",
                              "--publish", endpoint, "--stats-interval", "1")
    try:
        with PoseSubscriber(endpoint) as subscriber:
            assert len(receive_poses(subscriber, 5, timeout=60)) == 5, pipeline.log
            lost_at = len(pipeline.lines)
            server.kill()
            pipeline.wait_for_log(r"inference engine lost: no Triton server answers", timeout=30, after=lost_at)
            server.start()  # same ports
            pipeline.wait_for_log(r"inference engine back after [\d.]+ s; [1-9]\d* frames lost", timeout=60,
                                  after=lost_at)
            assert len(receive_poses(subscriber, 5, timeout=60)) == 5, pipeline.log
        assert pipeline.stop() == 0, pipeline.log
    finally:
        pipeline.kill()
    final = re.search(r"final stats squats: captured (\d+), published (\d+), dropped (\d+)", pipeline.log)
    assert final, pipeline.log
    assert int(final.group(3)) > 0 and "engine_unreachable" in pipeline.log


@pytest.mark.faults
@needs_serve_env
def test_an_every_frame_run_waits_for_a_killed_server_and_loses_no_frame(server, shared_data):
    command, endpoint = squats_run(shared_data, "--engine", server.url)
    try:
        with PoseSubscriber(endpoint) as subscriber:
            head = receive_poses(subscriber, 1, timeout=60)
            server.kill()
            command.wait_for_log(r"inference engine lost: .*every-frame streams wait for it", timeout=30)
            server.start()
            tail = receive_poses(subscriber, SQUATS_FRAMES - len(head), timeout=120)
        assert command.wait(timeout=60) == 0, command.log
    finally:
        command.kill()
    assert [p.seq for p in head + tail] == list(range(SQUATS_FRAMES)), command.log
    assert re.search(r"inference engine back after [\d.]+ s; 0 frames lost", command.log), command.log
    assert re.search(r"published 65, dropped 0", command.log), command.log


@pytest.mark.faults
@needs_serve_env
def test_with_two_servers_listed_the_pipeline_fails_over_without_losing_a_frame(server, shared_data):
    first, second = RunningServer(), server
    command, endpoint = squats_run(shared_data, "--engine", f"{first.url},{second.url}")
    try:
        with PoseSubscriber(endpoint) as subscriber:
            head = receive_poses(subscriber, 1, timeout=60)
            first.kill()  # while the pipeline still has most of the clip to infer
            tail = receive_poses(subscriber, SQUATS_FRAMES - len(head), timeout=120)
        assert command.wait(timeout=60) == 0, command.log
    finally:
        command.kill()
        first.kill()
    assert [p.seq for p in head + tail] == list(range(SQUATS_FRAMES)), command.log
    assert re.search(rf"triton: now using 127.0.0.1:{second.grpc}", command.log), command.log
    assert re.search(r"published 65, dropped 0", command.log), command.log


# -- errors -------------------------------------------------------------------------------------------


def test_a_pipeline_whose_servers_do_not_answer_fails_in_one_line(walker_clip):
    port = free_port()
    result = wildpose("run", "--source", str(walker_clip), "--detector", "none",
                      "--engine", f"triton://127.0.0.1:{port}", "--engine-timeout", "1")
    assert_one_error_line(result, "no Triton server answers", f"127.0.0.1:{port}", "wildpose serve")


@pytest.mark.parametrize("args, fragments", [
    (["--engine", "triton://127.0.0.1:8001", "--model", "model.onnx"], ["--engine", "--model", "not both"]),
    (["--engine", "triton://host:notaport"], ["bad Triton server", "HOST:PORT"]),
    (["--engine", "triton://127.0.0.1:8001", "--backend", "torch"], ["triton backend", "--engine"]),
])
def test_a_wrong_engine_flag_fails_in_one_line(walker_clip, args, fragments):
    assert_one_error_line(wildpose("run", "--source", str(walker_clip), "--detector", "none", *args), *fragments)


@needs_serve_env
def test_serve_on_a_port_in_use_fails_in_one_line(server):
    result = wildpose("serve", "--grpc-port", str(server.grpc), "--http-port", str(free_port()),
                      "--metrics-port", str(free_port()))
    assert_one_error_line(result, f"127.0.0.1:{server.grpc}", "--grpc-port")
