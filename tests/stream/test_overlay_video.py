"""`wildpose run --overlay` and `wildpose view` on a real clip: the skeletons in the decoded videos lie
where the published joints say, over the very frames of the source."""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest
from support import assert_one_error_line, receive_poses, wildpose

from wildpose.stream import overlay
from wildpose.stream.client import FrameMessage, PoseMessage, PoseSubscriber, StatsMessage
from wildpose.training import joints


def decode_rgb(path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def bone_samples(person, scale: float, size: tuple[int, int], margin: int) -> list[tuple[int, int]]:
    """Pixels along the middle of each bone that lies inside the image, away from the joints' discs."""
    width, height = size
    points = []
    for a, b in joints.EDGES:
        start, end = person.joints2d[a] * scale, person.joints2d[b] * scale
        if np.linalg.norm(end - start) < 6 * margin:
            continue
        for t in np.linspace(0.3, 0.7, 5):
            x, y = np.rint(start + t * (end - start)).astype(int)
            if margin <= x < width - margin and margin <= y < height - margin:
                points.append((x, y))
    return points


def drawing_mask(people, scale: float, shape: tuple[int, int], stream: str, reach: int) -> np.ndarray:
    """True wherever the overlay may have drawn (bones, joints, boxes, labels, header), widened by `reach`."""
    height, width = shape
    mask = np.zeros((height, width), np.uint8)
    for person in people:
        points = np.rint(person.joints2d * scale).astype(np.int64)
        for a, b in joints.EDGES:
            cv2.line(mask, tuple(map(int, points[a])), tuple(map(int, points[b])), 1, 2 * reach)
        x0, y0, x1, y1 = (int(round(v * scale)) for v in person.bbox)
        cv2.rectangle(mask, (x0, y0), (x1, y1), 1, 2 * reach)
        cv2.rectangle(mask, (x0 - 200, y0 - 80), (x0 + 200, y0 + 10), 1, -1)  # the id label
    cv2.rectangle(mask, (0, 0), (width, max(60, height // 12)), 1, -1)  # the header
    return mask.astype(bool)


def bone_colour_distance(pixels: np.ndarray) -> np.ndarray:
    colours = np.array(overlay.BONE_COLOURS, np.int16)
    return np.abs(pixels[:, None, :].astype(np.int16) - colours[None]).max(axis=-1).min(axis=-1)


def test_the_overlay_video_and_the_viewer_draw_each_skeleton_where_its_published_joints_are(
        pipeline, command, shared_data, tmp_path):
    clip = shared_data / "video" / "pose_squats.mp4"
    overlay_path, view_path = tmp_path / "squats.mp4", tmp_path / "view.mp4"
    source = decode_rgb(clip)
    # 3 subscriptions from the test's subscriber and 4 from the viewer's (pose, frame, stats, meta)
    run = pipeline("--source", f"squats={clip}", "--every-frame", "--overlay", str(overlay_path), "--publish-frames",
                   "--detector", str(shared_data / "models" / "yolox_nano.onnx"), "--wait-subscribers", "7")
    view = command("view", "--endpoint", run.endpoint, "--output", str(view_path), "--idle-timeout", "1.5")
    poses, thumbnails, stats = {}, [], []
    with PoseSubscriber(run.endpoint, topics=("pose", "frame", "stats")) as subscriber:
        while len(poses) < len(source):
            message = subscriber.recv(timeout=60)
            assert message is not None, run.log
            if isinstance(message, PoseMessage):
                poses[message.seq] = message
            elif isinstance(message, FrameMessage):
                thumbnails.append(message)
            elif isinstance(message, StatsMessage):
                stats.append(message)
        assert run.wait() == 0, run.log
        while (message := subscriber.recv(timeout=1)) is not None:  # the last thumbnail, the final stats
            (thumbnails if isinstance(message, FrameMessage) else stats).append(message)
    assert view.wait(timeout=60) == 0, view.log

    # every frame is in the overlay, and publish never lost a frame it had to draw
    written = decode_rgb(overlay_path)
    assert sorted(poses) == list(range(len(source))) and len(written) == len(source)
    totals = stats[-1].totals
    assert totals["overlay_written"] == len(source) and totals["frames_lapped"] == 0 and totals["overlay_skipped"] == 0
    height, width = source[0].shape[:2]
    radius = overlay.joint_radius(width, height)
    checked_people, on_bone, bone_coloured, elsewhere = 0, [], [], []
    for seq, frame in enumerate(source):
        out = written[seq][:height, :width].astype(np.int64)
        people = poses[seq].people
        checked_people += len(people)
        for person in people:
            samples = bone_samples(person, 1.0, (width, height), radius + 2)
            if samples:
                xs, ys = np.array(samples).T
                on_bone.extend(np.abs(out[ys, xs] - frame[ys, xs]).max(axis=-1))
                bone_coloured.extend(bone_colour_distance(out[ys, xs]))
        untouched = ~drawing_mask(people, 1.0, (height, width), "squats", reach=3 * radius)
        elsewhere.append(np.abs(out[untouched] - frame[untouched]).mean())
    assert checked_people > len(source) // 2, "the detector found almost no one in a video of one person"
    on_bone, bone_coloured = np.array(on_bone), np.array(bone_coloured)
    assert len(on_bone) > 100
    # skeleton pixels: changed from the source, in a bone's colour (some lie where another bone crossed)
    assert np.mean(on_bone > 60) > 0.9, np.percentile(on_bone, [5, 50])
    assert np.mean(bone_coloured < 70) > 0.8, np.percentile(bone_coloured, [50, 80])
    # everywhere else: the source frame itself, same frame, same place (H.264 noise only)
    assert max(elsewhere) < 4.0, max(elsewhere)
    with_people = [seq for seq in range(0, len(source), 8) if poses[seq].people]
    panels = [written[seq][:height:2, -overlay.panel_width(height)::2].reshape(-1, 3) for seq in with_people]
    assert panels and min(np.sum(bone_colour_distance(panel) < 40) for panel in panels) > 25  # 3D skeletons

    # thumbnails: after their pose, JPEG of at most 320 px wide, refer to the full frame's size
    assert thumbnails and all(t.seq in poses and t.size == (width, height) for t in thumbnails)
    assert {t.jpeg_size for t in thumbnails} == {(320, round(height * 320 / width))}
    assert totals["thumbnails"] == len(thumbnails)

    # the viewer drew one frame per thumbnail, with the skeleton scaled onto it
    viewed = decode_rgb(view_path)
    assert len(viewed) == len(thumbnails), view.log
    changed = []
    for thumbnail, image in zip(thumbnails, viewed, strict=True):
        base = overlay.decode_thumbnail(thumbnail.jpeg).astype(np.int64)
        h, w = base.shape[:2]
        for person in poses[thumbnail.seq].people:
            samples = bone_samples(person, thumbnail.scale, (w, h), 3)
            if samples:
                xs, ys = np.array(samples).T
                changed.extend(np.abs(image[ys, xs].astype(np.int64) - base[ys, xs]).max(axis=-1))
    assert len(changed) > 20 and np.mean(np.array(changed) > 40) > 0.8, np.percentile(changed, [10, 50])
    print(f"overlay: {overlay_path}, view: {view_path}")


@pytest.mark.parametrize("args, fragments", [
    (["--overlay", "out.avi"], ["publish.overlay must end in one of"]),
    (["--overlay", "/no/such/folder/out.mp4"], ["folder '/no/such/folder' does not exist"]),
    (["--publish-frames", "100"], ["publish.frames_hz must be between 0 (off) and 60"]),
    (["--frames-width", "8"], ["publish.frames_width must be an integer between 16 and 3840"]),
    (["--publish-frames", "fast"], ["--publish-frames", "invalid float value"]),
])
def test_bad_viewer_options_of_run_get_one_error_line(walker_clip, args, fragments):
    assert_one_error_line(wildpose("run", "--source", str(walker_clip), *args), *fragments)


def test_the_overlay_of_a_run_that_is_killed_plays_up_to_its_last_second(pipeline, walker_clip, tmp_path):
    """A plain MP4 is indexed only when it is closed: a run killed with SIGKILL (or out of memory, or
    out of disk) once left an overlay no player could open. It is written in one-second fragments."""
    overlay_path = tmp_path / "killed.mp4"
    run = pipeline("--source", f"walker={walker_clip}", "--loop", "--detector", "none", "--overlay", str(overlay_path))
    with PoseSubscriber(run.endpoint, topics=("pose",)) as subscriber:
        assert len(receive_poses(subscriber, 72)) == 72, run.log  # three seconds of the 24 frames/s clip
    run.kill()  # SIGKILL of the supervisor: every stage, the overlay's writer too, dies with it
    times = []
    with av.open(str(overlay_path)) as container:
        for packet in container.demux(video=0):
            try:
                times += [frame.time for frame in packet.decode()]
            except av.error.InvalidDataError:  # the fragment being written when the run was killed
                break
    assert len(times) >= 24 and times == sorted(times), times
