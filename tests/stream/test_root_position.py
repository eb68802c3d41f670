"""Each person's place in camera space (`root_cam`) from the real pipeline, against the rendered
truth; the intrinsics in use announced in meta; the camera following the frame size; bad camera
settings refused in one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support import assert_one_error_line, wildpose

from wildpose.stream import crop
from wildpose.stream.client import MetaMessage, PoseMessage, PoseSubscriber
from wildpose.stream.config import SmoothingConfig, SourceConfig
from wildpose.stream.frames import FrameTicket, PersonRegion
from wildpose.stream.smooth import SmoothArgs, StreamSmoother
from wildpose.tools import democlip
from wildpose.training import joints
from wildpose.training.synthpose import clip


@pytest.fixture(scope="module")
def demo_truth(shared_data):
    """The bundled demo clip's camera matrix and the pelvis of every frame in camera space (mm)."""
    config = clip.ClipConfig(mocap_dir=str(shared_data / "cmu_mocap"))
    samples = list(clip.render_clip(democlip.RENDERED_FRAMES, config))
    return samples[0].intrinsics, np.array([s.joints3d_cam[joints.ROOT] for s in samples])


def test_the_root_depth_is_within_ten_percent_with_the_true_camera(pipeline, shared_data, demo_truth, tmp_path):
    matrix, truth = demo_truth
    calibration = tmp_path / "camera.json"
    calibration.write_text(json.dumps({"camera_matrix": matrix.tolist(), "image_width": 640, "image_height": 360}))
    run = pipeline("--source", f"demo={democlip.BUNDLED_CLIP}", "--every-frame", "--calibration", str(calibration),
                   "--detector", str(shared_data / "models" / "yolox_nano.onnx"), "--joints3d-cam",
                   "--wait-subscribers", "2")
    placed, meta = {}, None
    with PoseSubscriber(run.endpoint, topics=["pose", "meta"]) as subscriber:
        while True:
            message = subscriber.recv(timeout=1.0)
            if message is None and run.process.poll() is not None:
                break
            if isinstance(message, MetaMessage):
                meta = message
            elif isinstance(message, PoseMessage) and message.people and message.people[0].root_cam is not None:
                person = message.people[0]
                assert np.allclose(person.joints3d_cam, person.joints3d + person.root_cam, atol=1e-3)
                placed[message.seq] = person.root_cam
    assert run.wait() == 0, run.log
    assert meta.streams["demo"]["intrinsics"]["fx"] == pytest.approx(matrix[0, 0])
    assert meta.streams["demo"]["intrinsics"]["source"] == "calibration camera.json"
    assert len(placed) >= 0.9 * len(truth)
    seqs = sorted(placed)
    depth_error = np.abs(np.array([placed[s][2] for s in seqs]) - truth[seqs, 2]) / truth[seqs, 2]
    print(f"root depth: median error {100 * np.median(depth_error):.1f} % at {truth[:, 2].mean() / 1000:.1f} m")
    assert np.median(depth_error) < 0.10


@pytest.mark.parametrize("args, fragment", [
    (["--focal", "0"], "focal_px must be a positive"),
    (["--focal", "1e9"], "is not plausible"),
    (["--fov", "200"], "fov_deg must be 1..179"),
    (["--focal", "500", "--fov", "60"], "give one of focal_px"),
    (["--calibration", "/nowhere/camera.yml"], "not found"),
])
def test_bad_camera_settings_get_one_clear_line(walker_clip, args, fragment):
    assert_one_error_line(wildpose("run", "--source", str(walker_clip), *args), fragment)


def test_a_malformed_calibration_file_gets_one_clear_line(walker_clip, tmp_path):
    path = tmp_path / "camera.yml"
    path.write_text("%YAML:1.0\ncamera_matrix: [1, 2\n")
    assert_one_error_line(wildpose("run", "--source", str(walker_clip), "--calibration", str(path)), str(path))


def standing_person(scale: float) -> PersonRegion:
    """A person standing upright in the middle of a 640x360 frame (`scale` 1), or of the same view
    sent at `scale` times the resolution: network outputs in crop pixels and the crop's map."""
    size = 192
    x = [80, 84, 88, 104, 108, 112, 96, 96, 96, 96, 70, 76, 84, 108, 116, 122]  # MPII order, crop pixels
    y = [180, 140, 100, 100, 140, 180, 100, 50, 40, 15, 100, 75, 50, 50, 75, 100]
    affine = crop.box_to_affine(np.array([220.0, 0.0, 420.0, 360.0]) * scale, size)
    return PersonRegion(track_id=1, box=np.array([220.0, 0.0, 420.0, 360.0]) * scale, score=1.0, tracked=False,
                        affine=affine, joints2d_crop=np.stack([x, y], axis=1).astype(np.float32),
                        conf=np.ones(16, np.float32), depth=np.zeros(16, np.float32))


def test_a_camera_back_at_another_resolution_places_people_with_its_camera_for_that_size():
    """The same view at twice the resolution (a camera reconnecting with another stream profile, or
    one that was down at start): with the camera given by its field of view, the person stays where
    it was; with the camera of the first size kept, it would be placed at half the distance."""
    source = SourceConfig(url="rtsp://camera/stream", stream_id="door", fov_deg=70.0)
    smoother = StreamSmoother(SmoothArgs(("door",), 192, SmoothingConfig(enabled=False), 4296.99,
                                         {"door": source}), source)
    roots = []
    for scale in (1, 2, 1):
        ticket = FrameTicket("door", len(roots), 0.0, len(roots) / 30, (640 * scale, 360 * scale),
                             people=[standing_person(scale)])
        smoother.process(ticket)
        roots.append(ticket.people[0].root_cam)
    assert 1000 < roots[0][2] < 20000, roots[0]
    np.testing.assert_allclose(roots[1], roots[0], atol=5.0)  # mm; a frame twice as large shifts by half a pixel
    np.testing.assert_allclose(roots[2], roots[0], rtol=1e-6)


def test_a_focal_length_that_does_not_fit_a_new_frame_size_leaves_roots_unplaced():
    """`--focal` is checked at start for the size the source had; frames of a size it is absurd for
    keep their poses and get no root (nil), rather than a crashed stage."""
    source = SourceConfig(url="rtsp://camera/stream", stream_id="door", focal_px=600.0)
    smoother = StreamSmoother(SmoothArgs(("door",), 192, SmoothingConfig(enabled=False), 4296.99,
                                         {"door": source}), source)
    ticket = FrameTicket("door", 0, 0.0, 0.0, (8, 6), people=[standing_person(1)])
    smoother.process(ticket)
    assert ticket.people[0].root_cam is None and ticket.people[0].joints3d is not None
