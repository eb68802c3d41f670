"""Bad input to `wildpose run` gets one clear error line and a non-zero exit, never a traceback."""

from __future__ import annotations

import socket
import subprocess

import pytest
from support import assert_one_error_line, wildpose

from wildpose.tools import democlip


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return wildpose("run", *args, timeout=timeout)


@pytest.fixture(scope="module")
def truncated_clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("truncated")
    whole = democlip.write_clip(folder / "whole.mp4", frames=48)
    index_last = folder / "index_last.mp4"  # the usual MP4 layout: the index is written at the end
    index_last.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    faststart = democlip.write_clip(folder / "faststart.mp4", frames=48, faststart=True)
    cut = folder / "cut_faststart.mp4"  # the index is complete, the frames stop half way
    cut.write_bytes(faststart.read_bytes()[: int(faststart.stat().st_size * 0.6)])
    return {"index_last": index_last, "cut_faststart": cut}


def test_a_missing_file(tmp_path):
    assert_one_error_line(run_cli("--source", str(tmp_path / "nope.mp4")), "source file not found", "nope.mp4")


@pytest.mark.parametrize("name, fragment", [
    ("notes.mp4", "cannot open"),
    ("notes.txt", "is a text file, not a video"),  # FFmpeg's tty demuxer would draw it as frames
])
def test_a_file_that_is_not_a_video(tmp_path, name, fragment):
    text = tmp_path / name
    text.write_text("these are not frames\n" * 100)
    assert_one_error_line(run_cli("--source", str(text)), fragment, name)


@pytest.mark.faults
def test_a_truncated_video_without_its_index(truncated_clips):
    assert_one_error_line(run_cli("--source", str(truncated_clips["index_last"])), "index_last.mp4")


@pytest.mark.faults
def test_a_video_truncated_mid_stream_publishes_what_it_has_then_fails(truncated_clips):
    result = run_cli("--source", f"cut={truncated_clips['cut_faststart']}", "--every-frame", "--detector", "none")
    assert_one_error_line(result, "truncated or corrupt", "of 48 frames")
    assert "final stats cut:" in result.stderr


@pytest.mark.parametrize("scheme", ["rtsp", "http"])
def test_an_unreachable_url(unused_port, scheme):
    url = f"{scheme}://127.0.0.1:{unused_port}/stream"
    assert_one_error_line(run_cli("--source", url, "--open-timeout", "3"), "cannot open", url)


@pytest.mark.parametrize("scheme", ["rtsp", "http"])
def test_a_server_that_accepts_but_never_answers_is_reported_as_an_open_timeout(scheme):
    """FFmpeg alone would say "Invalid data found when processing input" for RTSP."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"{scheme}://127.0.0.1:{silent.getsockname()[1]}/stream"
        result = run_cli("--source", url, "--open-timeout", "1")
    assert_one_error_line(result, f"cannot open {url}: no answer within 1 s (open timeout)", "--open-timeout")


def test_credentials_in_a_url_are_never_printed(unused_port):
    result = run_cli("--source", f"rtsp://admin:hunter2@127.0.0.1:{unused_port}/s", "--open-timeout", "3")
    assert_one_error_line(result, "admin:***@")
    assert "hunter2" not in result.stderr + result.stdout


def test_a_camera_that_does_not_exist():
    assert_one_error_line(run_cli("--source", "/dev/video99"), "camera /dev/video99 does not exist")


def test_a_port_already_in_use(walker_clip):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("--source", str(walker_clip), "--publish", f"tcp://127.0.0.1:{port}")
    assert_one_error_line(result, f"cannot publish on tcp://127.0.0.1:{port}", "another program is using it",
                          "--publish")


@pytest.mark.parametrize("endpoint, reason", [
    ("tcp://192.0.2.1:5555", "Cannot assign requested address"),  # TEST-NET-1: no machine's own address
    ("ipc:///nonexistent-folder/poses.sock", "No such file or directory"),
])
def test_an_address_this_machine_cannot_publish_on_says_what_to_give(walker_clip, endpoint, reason):
    """Not "is another program using it?", which sent users looking for a program that was not there."""
    result = run_cli("--source", str(walker_clip), "--publish", endpoint)
    line = assert_one_error_line(result, f"cannot publish on {endpoint}: {reason}", "an address of this machine",
                                 "an ipc:// path in a folder that exists")
    assert "another program" not in line and "(addr=" not in line


@pytest.mark.parametrize("args, fragments", [
    (["--max-batch", "0"], ["engine.max_batch must be a positive integer"]),
    (["--detector", "yolo9000"], ["tracking.detector must be one of ['yolox', 'hog', 'none'] or a path"]),
    (["--detector", "/no/such/detector.onnx"], ["tracking.detector file not found: /no/such/detector.onnx"]),
    (["--max-people", "0"], ["tracking.max_people must be a positive integer"]),
    (["--min-confidence", "1.5"], ["tracking.min_confidence must be between 0.0 and 1.0"]),
    (["--publish", "udp://1.2.3.4:5"], ["publish.endpoint must be tcp://HOST:PORT or ipc://PATH"]),
    (["--rtsp-transport", "carrier-pigeon"], ["source.rtsp_transport must be one of"]),
    (["--backend", "tensorflow"], ["engine.backend must be one of"]),
    (["--threads", "x"], ["--threads", "invalid int value"]),
])
def test_invalid_values_are_named_with_what_is_allowed(walker_clip, args, fragments):
    assert_one_error_line(run_cli("--source", str(walker_clip), *args), *fragments)


def test_live_only_and_file_only_options_are_not_mixed(unused_port):
    assert_one_error_line(run_cli("--source", f"rtsp://127.0.0.1:{unused_port}/s", "--every-frame"),
                          "--every-frame applies to files only")


@pytest.mark.faults
def test_a_corrupt_detector_file(tmp_path, walker_clip):
    corrupt = tmp_path / "detector.onnx"
    corrupt.write_bytes(b"\x08\x01garbage" * 100)
    assert_one_error_line(run_cli("--source", str(walker_clip), "--detector", str(corrupt)),
                          "cannot load the person detector", "detector.onnx")


def test_duplicate_stream_ids(walker_clip):
    assert_one_error_line(run_cli("--source", f"a={walker_clip}", "--source", f"a={walker_clip}"),
                          "stream ids must be unique")


@pytest.mark.parametrize("text, fragments", [
    ('[engine]\nmax_batch = 4\nturbo = true\n', ["unknown keys ['turbo'] in [engine]"]),
    ('[[source]]\nurl = "x.mp4"\nfps = 3\n', ["unknown keys ['fps'] in [[source]]"]),
    ('[speed]\nfast = 1\n', ["unknown keys ['speed']"]),
    ('[engine\n', ["not valid TOML"]),
    ('[tracking]\ndetect_every = -1\n', ["tracking.detect_every must be a non-negative integer"]),
])
def test_invalid_config_files(tmp_path, walker_clip, text, fragments):
    config = tmp_path / "run.toml"
    config.write_text(text)
    assert_one_error_line(run_cli("--config", str(config), "--source", str(walker_clip)), *fragments)


def test_no_source_at_all():
    assert_one_error_line(run_cli(), "no source given")


def test_when_no_source_opens_the_run_does_not_start(unused_port):
    """A live source that is down at start is retried while the others run; with none up there is nothing to run."""
    first, second = f"rtsp://127.0.0.1:{unused_port}/a", f"http://127.0.0.1:{unused_port}/b"
    result = run_cli("--source", first, "--source", second, "--open-timeout", "3")
    assert_one_error_line(result, "cannot open", first, "--wait-for-sources starts anyway")


def test_wait_for_sources_is_for_live_sources_only(walker_clip, unused_port):
    result = run_cli("--source", str(walker_clip), "--source", f"rtsp://127.0.0.1:{unused_port}/a",
                     "--wait-for-sources")
    assert_one_error_line(result, "--wait-for-sources waits for live sources", "is a file")


def test_a_file_that_cannot_be_read_stops_the_start_even_beside_a_live_source(tmp_path, unused_port):
    result = run_cli("--source", str(tmp_path / "nope.mp4"), "--source", f"rtsp://127.0.0.1:{unused_port}/a")
    assert_one_error_line(result, "source file not found", "nope.mp4")
