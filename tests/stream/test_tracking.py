"""Where each frame is cropped and who is who: detection when needed, each person's previous pose
in between, identities kept by box overlap."""

import numpy as np
import pytest

from wildpose.stream.config import TrackingConfig
from wildpose.stream.detect import Detection, WholeFrameDetector
from wildpose.stream.tracking import PeopleTracker, iou, iou_matrix, pose_box

FRAME = np.zeros((480, 640, 3), np.uint8)


class ScriptedDetector:
    """Returns the detections it is given, one list per call, and counts its calls."""

    name = "scripted"

    def __init__(self, *results):
        self.results = list(results)
        self.calls = 0

    def detect(self, frame):
        self.calls += 1
        return self.results.pop(0) if self.results else []


def person(x0, y0, x1, y1, score=0.9):
    return Detection(box=np.array([x0, y0, x1, y1], float), score=score)


def confident(tracker, seq, regions, shift=0.0, confidence=0.8):
    """Feed back a confident pose for every region, its box moved by `shift` px."""
    tracker.on_poses(seq, [(r.track_id, r.box + shift, confidence) for r in regions])


def test_the_first_frame_is_detected_and_the_next_follows_each_pose():
    detector = ScriptedDetector([person(100, 100, 200, 400), person(300, 100, 400, 400, 0.8)])
    tracker = PeopleTracker(detector, TrackingConfig(detect_every=0), input_size=192)
    first = tracker.regions(FRAME)
    assert [(r.track_id, r.tracked) for r in first] == [(1, False), (2, False)]
    confident(tracker, 0, first, shift=5.0)
    second = tracker.regions(FRAME)
    assert [(r.track_id, r.tracked) for r in second] == [(1, True), (2, True)] and detector.calls == 1
    assert np.allclose(second[0].box, [105, 105, 205, 405])


def test_a_lost_track_triggers_detection_and_keeps_its_id_when_found_again():
    detector = ScriptedDetector([person(100, 100, 200, 400)], [person(110, 100, 210, 400)])
    tracker = PeopleTracker(detector, TrackingConfig(detect_every=0, min_confidence=0.3), input_size=192)
    first = tracker.regions(FRAME)
    tracker.on_poses(0, [(1, first[0].box, 0.1)])  # not confident: lost
    again = tracker.regions(FRAME)
    assert detector.calls == 2 and [(r.track_id, r.tracked) for r in again] == [(1, False)]


def test_a_person_far_from_every_track_gets_a_new_id():
    detector = ScriptedDetector([person(100, 100, 200, 400)], [person(400, 100, 500, 400)])
    tracker = PeopleTracker(detector, TrackingConfig(detect_every=0), input_size=192)
    tracker.on_poses(0, [(r.track_id, None, 0.0) for r in tracker.regions(FRAME)])
    assert [r.track_id for r in tracker.regions(FRAME)] == [2]


def test_identities_follow_overlap_not_detection_order():
    detector = ScriptedDetector([person(100, 100, 200, 400, 0.9), person(300, 100, 400, 400, 0.8)],
                                [person(305, 100, 405, 400, 0.95), person(95, 100, 195, 400, 0.7)])
    tracker = PeopleTracker(detector, TrackingConfig(detect_every=1), input_size=192)
    tracker.regions(FRAME)
    second = tracker.regions(FRAME)  # detect_every=1: detected again
    by_id = {r.track_id: r.box[0] for r in second}
    assert by_id == {1: 95.0, 2: 305.0}


def test_no_detection_means_no_one_in_the_frame():
    tracker = PeopleTracker(ScriptedDetector([]), TrackingConfig(), input_size=192)
    assert tracker.regions(FRAME) == []


def test_periodic_detection_keeps_ids_and_refreshes_boxes():
    detector = ScriptedDetector([person(100, 100, 200, 400)], [person(105, 100, 205, 400)])
    tracker = PeopleTracker(detector, TrackingConfig(detect_every=2), input_size=192)
    confident(tracker, 0, tracker.regions(FRAME))
    assert tracker.regions(FRAME)[0].tracked
    third = tracker.regions(FRAME)
    assert detector.calls == 2 and [(r.track_id, r.tracked) for r in third] == [(1, False)]


def test_a_track_nothing_confirms_ends_after_max_missed_frames():
    detector = ScriptedDetector([person(100, 100, 200, 400)])
    tracker = PeopleTracker(detector, TrackingConfig(detect_every=1, max_missed=3), input_size=192)
    tracker.regions(FRAME)
    for _ in range(3):
        tracker.regions(FRAME)  # the detector finds no one; the track is kept (missed by detection)
        assert [t.track_id for t in tracker.tracks] == [1]
    tracker.regions(FRAME)
    assert tracker.tracks == []


def test_at_most_max_people_are_tracked_most_confident_first():
    crowd = [person(50 * i, 100, 50 * i + 40, 300, score=0.5 + 0.05 * i) for i in range(6)]
    crowd.sort(key=lambda d: d.score, reverse=True)  # as detectors return them
    tracker = PeopleTracker(ScriptedDetector(crowd), TrackingConfig(max_people=3), input_size=192)
    regions = tracker.regions(FRAME)
    assert [r.score for r in regions] == pytest.approx([0.75, 0.70, 0.65])


def test_stale_feedback_is_ignored():
    tracker = PeopleTracker(ScriptedDetector([person(100, 100, 200, 400)]), TrackingConfig(), input_size=192)
    regions = tracker.regions(FRAME)
    confident(tracker, 5, regions)
    tracker.on_poses(4, [(1, None, 0.0)])  # older than what we know
    tracker.on_poses(6, [(7, None, 0.0)])  # a track that does not exist
    assert tracker.regions(FRAME)[0].tracked


def test_the_crop_is_the_padded_square_around_the_person():
    tracker = PeopleTracker(ScriptedDetector([person(100, 100, 200, 400)]),
                            TrackingConfig(box_padding=1.25), input_size=100)
    affine = tracker.regions(FRAME)[0].affine
    assert affine[0, 0] == pytest.approx(100 / (300 * 1.25))  # the 300 px tall person, padded


def test_the_whole_frame_detector_crops_the_letterboxed_frame():
    tracker = PeopleTracker(WholeFrameDetector(), TrackingConfig(detector="none"), input_size=64)
    region = tracker.regions(FRAME)[0]
    assert region.affine[0, 0] == pytest.approx(64 / 640) and region.track_id == 1


@pytest.mark.parametrize("a, b, expected", [
    ([0, 0, 10, 10], [0, 0, 10, 10], 1.0),
    ([0, 0, 10, 10], [5, 0, 15, 10], 1 / 3),
    ([0, 0, 10, 10], [20, 20, 30, 30], 0.0),
])
def test_iou(a, b, expected):
    assert iou(np.array(a, float), np.array(b, float)) == pytest.approx(expected)


def test_iou_matrix_pairs_every_box():
    matrix = iou_matrix(np.array([[0, 0, 10, 10], [20, 20, 30, 30]]), np.array([[0, 0, 10, 10]] * 3))
    assert matrix.shape == (2, 3) and matrix[0].tolist() == [1.0] * 3 and matrix[1].tolist() == [0.0] * 3


def test_pose_box_is_tight():
    joints = np.array([[3.0, 4.0], [10.0, -2.0], [5.0, 9.0]])
    assert pose_box(joints).tolist() == [3.0, -2.0, 10.0, 9.0]


def test_a_detector_that_finds_no_one_for_a_while_is_reported_and_the_stream_goes_on(caplog, monkeypatch):
    import logging

    from wildpose.stream import preprocess

    clock = [100.0]
    monkeypatch.setattr(preprocess.time, "monotonic", lambda: clock[0])
    watch = preprocess._QuietWatch("door", "yolox", interval_s=60.0)
    with caplog.at_level(logging.INFO):
        for _ in range(130):  # two minutes and ten seconds of empty frames, one a second
            clock[0] += 1.0
            watch.observe(False)
        watch.observe(True)
    quiet = [r.getMessage() for r in caplog.records if "no person found" in r.getMessage()]
    tail = "(detector yolox); frames are still published, with no one in them"
    assert quiet == [f"door: no person found for 60 s {tail}", f"door: no person found for 120 s {tail}"]
    assert "door: a person is in view again after 130 s" in caplog.text


def test_one_detector_miss_is_forgiven_two_in_a_row_stop_the_cropping():
    detector = ScriptedDetector([person(100, 100, 200, 400)], [], [])
    tracker = PeopleTracker(detector, TrackingConfig(detect_every=1), input_size=192)
    tracker.regions(FRAME)
    flicker = tracker.regions(FRAME)  # the detector misses once: still cropped from the last box
    assert [(r.track_id, r.tracked) for r in flicker] == [(1, True)]
    assert tracker.regions(FRAME) == []  # missed again: gone from the crops
    assert [t.track_id for t in tracker.tracks] == [1]  # the id waits for max_missed frames


def test_a_pose_box_inside_the_detectors_whole_body_box_is_the_same_person():
    detector = ScriptedDetector([person(100, 100, 200, 400)], [person(90, 60, 230, 460)])
    tracker = PeopleTracker(detector, TrackingConfig(detect_every=1), input_size=192)
    tracker.regions(FRAME)
    tracker.on_poses(0, [(1, np.array([130.0, 150, 170, 250]), 0.9)])  # a small pose box (IoU 0.07)
    assert [r.track_id for r in tracker.regions(FRAME)] == [1]


def test_a_person_refound_nearby_after_a_few_frames_keeps_their_id():
    detector = ScriptedDetector([person(100, 100, 200, 400)], [], [], [person(180, 100, 280, 400)])
    tracker = PeopleTracker(detector, TrackingConfig(detect_every=1), input_size=192)
    tracker.regions(FRAME)
    tracker.regions(FRAME)
    tracker.regions(FRAME)  # two misses: lost, not cropped
    refound = tracker.regions(FRAME)  # 80 px to the right (IoU 0.11): near for a 300 px tall person
    assert [r.track_id for r in refound] == [1]


def test_people_side_by_side_keep_apart():
    detector = ScriptedDetector([person(100, 100, 200, 400), person(400, 100, 500, 400)],
                                [person(410, 100, 510, 400), person(95, 100, 195, 400)])
    tracker = PeopleTracker(detector, TrackingConfig(detect_every=1), input_size=192)
    tracker.regions(FRAME)
    assert {r.track_id: r.box[0] for r in tracker.regions(FRAME)} == {1: 95.0, 2: 410.0}


def test_a_track_moves_on_at_its_velocity_between_detections():
    """Two detections 10 frames apart give the velocity; the next crop is where the person is heading."""
    detector = ScriptedDetector([person(100, 100, 200, 400)], [person(130, 100, 230, 400)])
    tracker = PeopleTracker(detector, TrackingConfig(detect_every=10), input_size=192)
    tracker.regions(FRAME, seq=0)
    for seq in range(1, 10):
        tracker.regions(FRAME, seq=seq)
    tracker.regions(FRAME, seq=10)  # detected again: 30 px in 10 frames
    ahead = tracker.regions(FRAME, seq=14)
    assert detector.calls == 2 and ahead[0].tracked
    assert np.allclose(ahead[0].box, [130 + 1.5 * 4, 100, 230 + 1.5 * 4, 400])  # half the new motion (smoothed)


def test_a_box_that_suddenly_grows_does_not_set_the_velocity():
    detector = ScriptedDetector([person(100, 100, 200, 400)], [person(100, 100, 400, 400)])
    tracker = PeopleTracker(detector, TrackingConfig(detect_every=1), input_size=192)
    tracker.regions(FRAME, seq=0)
    tracker.regions(FRAME, seq=1)  # three times as wide: two people merged, not one who moved
    assert np.allclose(tracker.tracks[0].velocity, 0)


def test_people_close_together_are_detected_on_every_frame_and_apart_only_every_n():
    apart = [person(100, 100, 200, 400), person(400, 100, 500, 400)]
    close = [person(100, 100, 200, 400), person(230, 100, 330, 400)]
    for found, calls in ((apart, 1), (close, 5)):
        detector = ScriptedDetector(*[found] * 5)
        tracker = PeopleTracker(detector, TrackingConfig(detect_every=30), input_size=192)
        for seq in range(5):
            regions = tracker.regions(FRAME, seq=seq)
            confident(tracker, seq, regions)
        assert detector.calls == calls


def test_crossing_people_keep_their_ids_by_where_they_were_heading():
    """A walks right, B walks left; as they pass, the detector's boxes alone would pair the wrong way."""
    def at(x):
        return person(x, 100, x + 100, 400)

    frames = [[at(100 + 10 * k), at(400 - 10 * k)] for k in range(13)]  # 60 px apart at k = 12
    frames += [[at(250 - 5 + 10 * k), at(250 + 5 - 10 * k)] for k in range(1, 3)]  # then just past each other
    detector = ScriptedDetector(*frames)
    tracker = PeopleTracker(detector, TrackingConfig(detect_every=1), input_size=192)
    for seq in range(len(frames)):
        regions = tracker.regions(FRAME, seq=seq)
    ids = {r.track_id: r.box[0] for r in regions}
    assert ids[1] > ids[2]  # A (id 1, from the left) is now on the right


def test_late_feedback_does_not_revive_a_person_the_detector_lost():
    """In a pipeline, poses of frames cropped before the detector gave up on a person arrive after it
    did; they must not bring the person back (a ghost on an empty crop)."""
    detector = ScriptedDetector([person(100, 100, 200, 400)], [], [])
    tracker = PeopleTracker(detector, TrackingConfig(detect_every=5), input_size=192)
    tracker.regions(FRAME, seq=0)
    for seq in range(1, 5):
        tracker.regions(FRAME, seq=seq)
    tracker.regions(FRAME, seq=5)  # periodic detection: missed once
    assert tracker.regions(FRAME, seq=6) == []  # missed twice: lost
    tracker.on_poses(3, [(1, np.array([100.0, 100, 200, 400]), 0.9)])  # a confident pose of frame 3
    assert tracker.regions(FRAME, seq=7) == []


def test_a_person_lost_by_pose_confidence_and_not_detected_stays_lost_whatever_feedback_comes_late():
    """A leaving person: the pose of frame 2 is unconfident (lost), the detector finds no one at frame 3,
    and only then do confident poses of frames 1 and 2 (cropped before) arrive. The person stays gone;
    before, each such pose brought the track back and it was published into the empty room."""
    detector = ScriptedDetector([person(100, 100, 200, 400)], [])
    tracker = PeopleTracker(detector, TrackingConfig(detect_every=10), input_size=192)
    tracker.regions(FRAME, seq=0)
    tracker.regions(FRAME, seq=1)
    tracker.regions(FRAME, seq=2)
    tracker.on_poses(2, [(1, np.array([100.0, 100, 200, 400]), 0.1)])  # unconfident: lost
    assert tracker.regions(FRAME, seq=3) == []  # the detector runs and finds no one
    tracker.on_poses(1, [(1, np.array([100.0, 100, 200, 400]), 0.9)])
    tracker.on_poses(3, [(1, np.array([100.0, 100, 200, 400]), 0.9)])  # not even a pose of frame 3
    for seq in range(4, 8):
        assert tracker.regions(FRAME, seq=seq) == []
