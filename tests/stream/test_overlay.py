"""The overlay's drawing functions, the video writer and the frame message, on synthetic input."""

from __future__ import annotations

import os
import time
from contextlib import nullcontext as does_not_raise

import av
import numpy as np
import pytest

from wildpose.errors import ConfigError
from wildpose.stream import overlay, schema, video_out
from wildpose.stream.client import FrameMessage, MetaMessage, Person, PoseSubscriber, SchemaError, decode
from wildpose.stream.config import PublishConfig
from wildpose.training import joints


def a_person(person_id: int = 1, seed: int = 0, width: int = 640, height: int = 480) -> Person:
    rng = np.random.default_rng(seed)
    joints2d = np.column_stack([rng.uniform(40, width - 40, 16), rng.uniform(60, height - 40, 16)])
    joints3d = rng.normal(0, 300, (16, 3))
    joints3d[joints.ROOT] = 0
    return Person(id=person_id, bbox=(*joints2d.min(axis=0), *joints2d.max(axis=0)), score=0.9, joints2d=joints2d,
                  joints3d=joints3d, conf=rng.uniform(0, 1, 16), tracked=True)


@pytest.mark.parametrize("conf, colour", [
    (0.0, (255, 0, 0)), (0.25, (255, 128, 0)), (0.5, (255, 255, 0)), (0.75, (128, 255, 0)), (1.0, (0, 255, 0)),
    (-3.0, (255, 0, 0)), (7.0, (0, 255, 0)),
])
def test_joint_colour_goes_from_red_through_yellow_to_green_with_confidence(conf, colour):
    assert overlay.confidence_colour(conf) == colour


@pytest.mark.parametrize("edge, colour", [
    ((0, 1), overlay.RIGHT), ((4, 5), overlay.LEFT), ((6, 8), overlay.CENTRE), ((12, 8), overlay.RIGHT),
    ((8, 13), overlay.LEFT), ((8, 9), overlay.CENTRE),
])
def test_bones_are_coloured_by_side(edge, colour):
    assert overlay.BONE_COLOURS[joints.EDGES.index(edge)] == colour


def test_each_bone_is_drawn_in_its_colour_along_its_segment():
    person = a_person()
    image = np.zeros((480, 640, 3), np.uint8)
    overlay.draw_people_2d(image, [person])
    radius = overlay.joint_radius(640, 480)
    hits = total = 0
    for (a, b), colour in zip(joints.EDGES, overlay.BONE_COLOURS, strict=True):
        start, end = person.joints2d[a], person.joints2d[b]
        if np.linalg.norm(end - start) < 6 * radius:
            continue
        for t in (0.4, 0.5, 0.6):
            x, y = np.rint(start + t * (end - start)).astype(int)
            total += 1
            hits += np.abs(image[y, x].astype(int) - colour).max() <= 40 or tuple(image[y, x]) in overlay.BONE_COLOURS
    assert total > 10 and hits / total > 0.85


def test_drawing_scales_joints_for_thumbnails():
    person = a_person()
    small = np.zeros((240, 320, 3), np.uint8)
    overlay.draw_people_2d(small, [person], scale=0.5)
    at_joints = [small[y, x] for x, y in np.rint(person.joints2d * 0.5).astype(int)]
    matches = [np.abs(pixel.astype(int) - overlay.confidence_colour(c)).max() <= 40
               for pixel, c in zip(at_joints, person.conf, strict=True)]
    assert sum(matches) >= 12  # a joint's disc may lie under a later one


def test_the_3d_panel_keeps_fixed_axes_so_a_metre_is_always_the_same_length():
    centre = (100.0, 100.0)
    points = overlay.project_3d(np.array([[0, 0, 0], [1000, 0, 0]]), centre, 0.1, azimuth_deg=0, elevation_deg=0)
    np.testing.assert_allclose(points, [[100, 100], [200, 100]])
    down = overlay.project_3d(np.array([[0, 500, 0]]), centre, 0.1, azimuth_deg=30, elevation_deg=0)
    np.testing.assert_allclose(down, [[100, 150]])  # camera y is down, as on screen


@pytest.mark.parametrize("size, people", [((640, 480), 1), ((721, 405), 3), ((320, 180), 0)])
def test_a_composed_frame_is_even_sized_with_the_frame_unscaled_at_its_top_left(size, people):
    width, height = size
    frame = np.full((height, width, 3), 77, np.uint8)
    out = overlay.compose(frame, [a_person(i, i, width, height) for i in range(people)], "cam", 29.97, 41.0)
    assert out.shape == (height + height % 2, width + width % 2 + overlay.panel_width(height), 3)
    assert out.shape[0] % 2 == 0 and out.shape[1] % 2 == 0
    assert np.all(out[height - 1, 0] == 77) and np.all(frame == 77)  # the input is not drawn on
    panel = out[:height, -overlay.panel_width(height):]
    assert np.any(np.all(panel == overlay.PANEL_BACKGROUND, axis=-1))


def test_thumbnails_are_jpeg_no_wider_than_asked_and_keep_the_aspect():
    frame = np.random.default_rng(0).integers(0, 255, (720, 1280, 3), np.uint8)
    jpeg, size = overlay.encode_thumbnail(frame, 320)
    assert jpeg[:2] == b"\xff\xd8" and size == (320, 180)
    assert overlay.decode_thumbnail(jpeg).shape == (180, 320, 3)
    assert overlay.encode_thumbnail(frame[:100, :200], 320)[1] == (200, 100)  # never scaled up


def test_a_thumbnail_drops_its_quality_to_fit_the_message_limit_or_is_not_made():
    """A 4K thumbnail of a detailed scene can make a JPEG over the 4 MiB a subscriber accepts."""
    frame = np.random.default_rng(0).integers(0, 255, (2160, 3840, 3), np.uint8)  # noise: the worst case
    best, size = overlay.encode_thumbnail(frame, 3840)
    assert len(best) > schema.MAX_MESSAGE_BYTES and size == (3840, 2160)
    fitted, size = overlay.encode_thumbnail(frame, 3840, schema.MAX_MESSAGE_BYTES)
    assert len(fitted) <= schema.MAX_MESSAGE_BYTES and overlay.decode_thumbnail(fitted).shape == (2160, 3840, 3)
    assert overlay.encode_thumbnail(frame, 3840, 1000) == (None, (3840, 2160))


def test_a_frame_message_decodes_with_its_scale_and_is_refused_when_not_jpeg():
    jpeg, size = overlay.encode_thumbnail(np.zeros((360, 640, 3), np.uint8), 320)
    message = decode(b"frame/cam", schema.pack(schema.frame("cam", 7, 100.0, (640, 360), size, jpeg)))
    assert isinstance(message, FrameMessage) and message.seq == 7 and message.scale == 0.5
    with pytest.raises(SchemaError, match="jpeg must be JPEG bytes"):
        decode(b"frame/cam", schema.pack(schema.frame("cam", 7, 100.0, (640, 360), size, b"GIF89a")))


def test_meta_without_the_frames_key_still_decodes_for_older_publishers():
    values = schema.meta({"weights": "w"}, {"cam": {}}, "prior")
    del values["frames"]
    message = decode(b"meta", schema.pack(values))
    assert isinstance(message, MetaMessage) and message.frames is None


def test_frames_come_only_to_subscribers_that_ask_for_them():
    assert PoseSubscriber("tcp://127.0.0.1:1")._prefixes(("pose", "stats", "meta")) == ["pose/", "stats/", "meta"]
    with PoseSubscriber("tcp://127.0.0.1:1", topics=("frame",), streams=["a"]) as subscriber:
        assert subscriber._prefixes(("frame",)) == ["frame/a"]


@pytest.mark.parametrize("streams, expected", [
    (("cam",), {"cam": "out.mp4"}),
    (("left", "right"), {"left": "out.left.mp4", "right": "out.right.mp4"}),
])
def test_several_streams_get_one_overlay_file_each(tmp_path, streams, expected):
    paths = video_out.stream_paths(tmp_path / "out.mp4", streams)
    assert {s: p.name for s, p in paths.items()} == expected


@pytest.mark.parametrize("changes, expectation", [
    ({}, does_not_raise()),
    ({"frames_hz": 5.0, "frames_width": 320}, does_not_raise()),
    ({"frames_hz": -1.0}, pytest.raises(ConfigError, match="frames_hz must be between 0 .off. and 60")),
    ({"frames_hz": 61}, pytest.raises(ConfigError, match="frames_hz must be between")),
    ({"frames_width": 8}, pytest.raises(ConfigError, match="frames_width must be an integer between 16 and 3840")),
    ({"frames_width": 320.5}, pytest.raises(ConfigError, match="frames_width must be an integer")),
    ({"overlay": "out.avi"}, pytest.raises(ConfigError, match=r"overlay must end in one of \['.mp4', '.mkv'")),
    ({"overlay": "/no/such/dir/out.mp4"}, pytest.raises(ConfigError, match="folder '/no/such/dir' does not exist")),
])
def test_publish_config_checks_the_viewer_options(changes, expectation):
    with expectation:
        PublishConfig(**changes)


def test_the_overlay_video_is_h264_at_the_frames_own_times(tmp_path):
    video = video_out.OverlayVideo(tmp_path / "v.mp4")
    frames = [np.full((120, 160, 3), value, np.uint8) for value in (0, 128, 255)]
    for frame, seconds in zip(frames, (0.0, 0.1, 0.35), strict=True):
        video.write(frame, seconds)
    video.close()
    with av.open(str(tmp_path / "v.mp4")) as container:
        stream = container.streams.video[0]
        decoded = [(round(float(f.time), 3), int(f.to_ndarray(format="rgb24").mean()))
                   for f in container.decode(stream)]
        assert stream.codec_context.name == "h264"
    assert [t for t, _ in decoded] == [0.0, 0.1, 0.35]
    assert [abs(v - e) <= 3 for (_, v), e in zip(decoded, (0, 128, 255), strict=True)] == [True] * 3


def test_an_overlay_video_in_a_missing_folder_is_refused_with_the_fix(tmp_path):
    with pytest.raises(video_out.VideoWriteError, match="check that the folder exists"):
        video_out.OverlayVideo(tmp_path / "missing" / "v.mp4")


def frame_views(config: PublishConfig, frames: list[np.ndarray], seqs: list[int], pause_s: float = 0.0):
    """Publish's frame views over a ring that holds `frames` (frame i as seq i, 64x48), after the pose
    of each of `seqs` in turn: what each returned (a frame message or None), and the stream's counters."""
    from wildpose.stream import publish
    from wildpose.stream.frames import FrameTicket
    from wildpose.stream.shm import SlotRing
    from wildpose.stream.stats import Counters

    ring = SlotRing.create(f"wp_test_views_{os.getpid()}", 2, 64 * 48 * 3)
    counters, payloads = Counters(), []
    try:
        for seq, frame in enumerate(frames):
            ring.write(seq, frame)
        views = publish._FrameViews(publish.PublishArgs(config, ("cam",), {}, {"cam": ring.spec}),
                                    {"cam": counters.array})
        try:
            for seq in seqs:
                payloads.append(views.after_pose(FrameTicket("cam", seq, 100.0 + seq / 10, 1.0 + seq / 10, (64, 48)),
                                                 [], 100.01 + seq / 10))
                time.sleep(pause_s)
        finally:
            views.close()
    finally:
        ring.close()
    return payloads, counters


def test_publish_counts_a_frame_whose_slot_was_overwritten_and_sends_a_thumbnail_of_a_current_one():
    frames = [np.full((48, 64, 3), 40 * seq, np.uint8) for seq in range(4)]  # seq 0 and 1 are lapped by 2 and 3
    (lapped, current), counters = frame_views(PublishConfig(frames_hz=5.0, frames_width=32), frames, [1, 3])
    assert lapped is None and counters.get("frames_lapped") == 1
    message = decode(b"frame/cam", current)
    assert isinstance(message, FrameMessage) and message.seq == 3 and message.jpeg_size == (32, 24)
    assert abs(int(overlay.decode_thumbnail(message.jpeg).mean()) - 120) <= 3
    assert counters.get("thumbnails") == 1


def test_publish_sends_no_thumbnail_over_the_message_limit_and_counts_it(monkeypatch, caplog):
    """A subscriber sent a message over its limit would lose the stream; publish keeps it under."""
    from wildpose.stream import publish

    monkeypatch.setattr(publish, "_THUMBNAIL_MAX_BYTES", 1000)
    frames = [np.random.default_rng(0).integers(0, 255, (48, 64, 3), np.uint8),  # noise: never under 1000 bytes
              np.zeros((48, 64, 3), np.uint8)]  # flat: under 1000 bytes
    (too_big, fits), counters = frame_views(PublishConfig(frames_hz=60.0), frames, [0, 1], pause_s=0.02)
    assert too_big is None and counters.get("thumbnails_too_big") == 1
    assert "over the 4 MiB message limit" in caplog.text and "lower --frames-width" in caplog.text
    assert isinstance(decode(b"frame/cam", fits), FrameMessage) and counters.get("thumbnails") == 1
