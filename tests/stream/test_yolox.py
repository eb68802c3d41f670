"""The YOLOX-Nano person detector: real people in real frames, and getting its file safely."""

import functools
import hashlib
import http.server
import logging
import threading

import av
import pytest

from wildpose.errors import DetectorError
from wildpose.stream import detect, yolox


def frame_at(path, index):
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == index:
                return frame.to_ndarray(format="rgb24")


@pytest.fixture(scope="module")
def detector(shared_data):
    return yolox.YoloxDetector(shared_data / "models" / "yolox_nano.onnx")


def test_it_finds_the_crowd_of_a_street(detector, shared_data):
    found = detector.detect(frame_at(shared_data / "video" / "street_people_720p50.avi", 100))
    assert len(found) >= 5
    assert all(0 < d.score <= 1 for d in found) and [d.score for d in found] == sorted(
        (d.score for d in found), reverse=True)
    for d in found:
        x0, y0, x1, y1 = d.box
        assert 0 <= x0 < x1 <= 1279 and 0 <= y0 < y1 <= 719 and (y1 - y0) > (x1 - x0)  # upright people


def test_it_finds_the_one_person_and_no_one_in_an_empty_room(detector, shared_data):
    (woman,) = detector.detect(frame_at(shared_data / "video" / "pose_squats.mp4", 10))
    assert woman.box[3] - woman.box[1] > 0.4 * 1280
    assert detector.detect(frame_at(shared_data / "video" / "one-by-one-person-detection.mp4", 30)) == []


def test_a_corrupt_or_foreign_model_file_is_refused(tmp_path, shared_data):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x01garbage" * 100)
    with pytest.raises(DetectorError, match="cannot load the person detector"):
        yolox.YoloxDetector(corrupt)


def test_a_pose_model_is_not_taken_for_a_detector(preset_onnx):
    with pytest.raises(DetectorError, match="is not a YOLOX detector"):
        yolox.YoloxDetector(preset_onnx)


@pytest.fixture()
def file_server(tmp_path):
    """A local HTTP server over tmp_path/served; yields its base URL."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_a_download_is_hash_checked_and_cached(file_server, shared_data):
    folder, base = file_server
    data = (shared_data / "models" / "yolox_nano.onnx").read_bytes()
    (folder / "yolox_nano.onnx").write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    path = yolox.fetch(f"{base}/yolox_nano.onnx", sha256=digest)
    assert path.read_bytes() == data
    assert yolox.fetch(f"{base}/missing.onnx", sha256=digest) == path  # cached: no second download


def test_a_download_with_the_wrong_hash_is_refused_and_not_kept(file_server):
    folder, base = file_server
    (folder / "yolox_nano.onnx").write_bytes(b"not the detector")
    with pytest.raises(DetectorError, match="sha256 .* expected"):
        yolox.fetch(f"{base}/yolox_nano.onnx", sha256="ab" * 32)
    assert not list((yolox.cache_dir("detectors")).glob("*ababab*"))


def test_offline_the_default_detector_falls_back_to_the_whole_frame(monkeypatch, unused_port, caplog):
    monkeypatch.setenv(yolox.URL_ENV, f"http://127.0.0.1:{unused_port}/yolox_nano.onnx")
    with caplog.at_level(logging.WARNING):
        spec = detect.resolve("yolox", 0.35, 480)
    assert spec.kind == "none"
    assert "cannot download the person detector" in caplog.text and "whole frame" in caplog.text
