"""The run configuration: sources by kind, ids, file and flags merged, everything checked."""

import dataclasses
import errno

import pytest

from wildpose.errors import ConfigError
from wildpose.stream import config


@pytest.mark.parametrize("url, kind, live", [
    ("video.mp4", "file", False),
    ("/data/clip.avi", "file", False),
    ("rtsp://10.0.0.5/stream", "rtsp", True),
    ("RTSP://10.0.0.5/stream", "rtsp", True),
    ("https://example.org/live.m3u8", "http", True),
    ("/dev/video2", "camera", True),
    ("0", "camera", True),
])
def test_sources_are_classified_by_their_url(url, kind, live):
    source = config.SourceConfig(url=url, stream_id="s")
    assert source.kind == kind and source.is_live == live


def test_a_camera_index_means_its_v4l2_device():
    assert config.SourceConfig(url="3", stream_id="s").device == "/dev/video3"


@pytest.mark.parametrize("spec, index, expected_id, expected_url", [
    ("door=rtsp://10.0.0.5/s", 0, "door", "rtsp://10.0.0.5/s"),
    ("rtsp://10.0.0.5/s?a=b", 1, "cam1", "rtsp://10.0.0.5/s?a=b"),
    ("videos/street scene.mp4", 0, "street_scene", "videos/street scene.mp4"),
    ("0", 2, "cam2", "0"),
])
def test_stream_ids_are_given_or_derived(spec, index, expected_id, expected_url):
    source = config.parse_source(spec, index)
    assert (source.stream_id, source.url) == (expected_id, expected_url)


def test_passwords_never_appear_in_what_is_displayed():
    source = config.SourceConfig(url="rtsp://admin:secret@cam.local:554/h264", stream_id="s")
    assert source.display == "rtsp://admin:***@cam.local:554/h264"


def test_flags_override_the_file_and_the_file_overrides_defaults(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[[source]]\nurl = "a.mp4"\nid = "left"\n\n[[source]]\nurl = "b.mp4"\n\n'
                    '[engine]\nmax_batch = 3\nthreads = 1\n\n[publish]\nendpoint = "ipc:///tmp/x"\n')
    built = config.build(config.load_toml(path), {"engine": {"threads": 2}}, [], {"loop": True})
    assert [s.stream_id for s in built.sources] == ["left", "b"]
    assert all(s.loop for s in built.sources)
    assert (built.engine.max_batch, built.engine.threads) == (3, 2)
    assert built.publish.endpoint == "ipc:///tmp/x" and built.tracking == config.TrackingConfig()


def test_sources_on_the_command_line_replace_those_of_the_file(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[[source]]\nurl = "a.mp4"\n')
    built = config.build(config.load_toml(path), {}, ["cam=0"], {})
    assert [(s.stream_id, s.url) for s in built.sources] == [("cam", "0")]


def test_a_config_saved_with_a_byte_order_mark_reads_like_any_other(tmp_path):
    """Windows editors save UTF-8 with a BOM; TOML parsers call it an invalid statement at line 1."""
    path = tmp_path / "run.toml"
    path.write_bytes(b"\xef\xbb\xbf" + '[[source]]\nurl = "caf\u00e9.mp4"\n'.encode())
    assert config.load_toml(path)["source"] == [{"url": "caf\u00e9.mp4"}]


def test_a_folder_given_as_the_config_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=f"cannot read config file {tmp_path}: Is a directory"):
        config.load_toml(tmp_path)


def test_configs_are_frozen():
    with pytest.raises(AttributeError):
        config.EngineConfig().max_batch = 3


@pytest.mark.parametrize("make, message", [
    (lambda: config.SourceConfig(url="", stream_id="s"), "source url must be a non-empty string"),
    (lambda: config.SourceConfig(url="a.mp4", stream_id="a/b"), "stream id 'a/b'"),
    (lambda: config.SourceConfig(url="a.mp4", stream_id="s", read_timeout_s=0), "read_timeout_s must be a positive"),
    (lambda: config.SourceConfig(url="0", stream_id="s", loop=True), "--loop applies to files only"),
    (lambda: config.EngineConfig(batch_wait_ms=-1), "batch_wait_ms must be a non-negative"),
    (lambda: config.EngineConfig(compile=False, freeze=True), "engine.freeze applies to the compiled path"),
    (lambda: config.EngineConfig(branch_streams=-1), "engine.branch_streams must be a non-negative integer"),
    (lambda: config.EngineConfig(device_crops=True, backend="tensorrt"), "device_crops cuts crops with the torch"),
    # `auto` is checked again once it is resolved (on a machine without a GPU, to onnxruntime)
    (lambda: dataclasses.replace(config.EngineConfig(device_crops=True), backend="onnxruntime"), "not onnxruntime"),
    (lambda: config.TrackingConfig(box_padding=5), "box_padding must be between 1.0 and 3.0"),
    (lambda: config.SmoothingConfig(min_cutoff_2d=0), "min_cutoff_2d must be a positive"),
    (lambda: config.SmoothingConfig(processes=1.5), "smoothing.processes must be a non-negative integer"),
    (lambda: config.PublishConfig(send_hwm=True), "send_hwm must be a positive integer"),
    (lambda: config.RunConfig(sources=()), "no source given"),
])
def test_invalid_values_name_the_field_and_what_is_allowed(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


@pytest.mark.parametrize("code, says", [
    (errno.EADDRINUSE, "another program is using it; choose another port with --metrics"),
    # a privileged port as an ordinary user (as root these tests cannot make the kernel refuse one)
    (errno.EACCES, "ports below 1024 need root (or CAP_NET_BIND_SERVICE); choose one above 1023 with --metrics"),
    (errno.EADDRNOTAVAIL, "give an address of this machine (0.0.0.0 for all of them) with --metrics"),
])
def test_a_port_that_cannot_be_bound_says_what_to_do(code, says):
    assert config.port_hint(code, "--metrics") == says
