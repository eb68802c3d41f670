"""Every person in the frame, with identities that hold, on real clips (ids are asserted by count
and by change, never by timing)."""

from __future__ import annotations

import collections

from support import assert_valid_pose, receive_poses

from wildpose.stream.client import PoseSubscriber

# one-by-one-person-detection.mp4 (1394 frames, 10 frames/s): frame ranges checked by eye. The empty
# ranges start 1.5 s after the detector last sees a leaving person (frames 194, 447, 696, 865, 1196,
# 1358): until the next periodic detection (every 10 frames) the person's track goes on.
EMPTY = [(0, 50), (210, 225), (465, 500), (715, 740), (885, 915), (1215, 1230), (1375, 1393)]
# one person standing at the table, a different visit each:
VISITS = [(80, 180), (250, 430), (530, 680), (760, 850), (950, 1180), (1250, 1345)]


def run_clip(pipeline, shared_data, clip: str, frames: int, *extra: str):
    run = pipeline("--source", f"clip={shared_data / 'video' / clip}", "--every-frame", "--wait-subscribers", "1",
                   "--detector", str(shared_data / "models" / "yolox_nano.onnx"), *extra)
    with PoseSubscriber(run.endpoint, topics=["pose"]) as subscriber:
        poses = receive_poses(subscriber, frames, timeout=600)
        assert run.wait(timeout=120) == 0, run.log
    assert [p.seq for p in poses] == list(range(frames)), run.log
    assert f"captured {frames}, published {frames}, dropped 0" in run.log
    return poses


def test_people_come_and_go_one_by_one_with_one_id_per_visit(pipeline, shared_data):
    poses = run_clip(pipeline, shared_data, "one-by-one-person-detection.mp4", 1394)
    for first, last in EMPTY:
        crowded = [p.seq for p in poses[first:last + 1] if p.people]
        assert not crowded, f"people published in the empty room at frames {crowded[:10]}"
    visit_ids = []
    for first, last in VISITS:
        frames = poses[first:last + 1]
        seen = sum(len(p.people) == 1 for p in frames)
        assert seen >= 0.95 * len(frames), f"visit {first}-{last}: one person in only {seen} of {len(frames)} frames"
        ids = collections.Counter(person.id for p in frames for person in p.people)
        assert len(ids) == 1, f"visit {first}-{last}: ids {dict(ids)}"
        visit_ids.append(next(iter(ids)))
    assert len(set(visit_ids)) == len(VISITS), f"a visitor inherited an earlier visitor's id: {visit_ids}"


def test_a_street_gives_several_people_per_frame_with_lasting_ids(pipeline, shared_data):
    poses = run_clip(pipeline, shared_data, "street_people_720p50.avi", 205, "--max-people", "8")
    for message in poses:
        assert_valid_pose(message, (1280, 720))
    counts = [len(p.people) for p in poses]
    assert sorted(counts)[len(counts) // 2] >= 4, f"people per frame: {counts}"
    assert max(counts) <= 8
    for message in poses:
        ids = [person.id for person in message.people]
        assert len(ids) == len(set(ids)), f"frame {message.seq}: an id twice"
    # ids last: most person-frames belong to ids seen for at least a second (50 frames)
    lifetimes = collections.Counter(person.id for p in poses for person in p.people)
    lasting = sum(n for n in lifetimes.values() if n >= 50)
    assert lasting >= 0.7 * sum(lifetimes.values()), f"id lifetimes (frames): {sorted(lifetimes.values())}"
