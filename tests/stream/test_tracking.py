"""Where each frame is cropped: detection at start and after a loss, the previous pose in between."""

import numpy as np
import pytest

from wildpose.stream.config import TrackingConfig
from wildpose.stream.detect import Detection, WholeFrameDetector
from wildpose.stream.tracking import RegionTracker, iou, pose_box

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


def test_the_first_frame_is_detected_and_the_next_follows_the_pose():
    detector = ScriptedDetector([person(100, 100, 200, 400)])
    tracker = RegionTracker(detector, TrackingConfig(detect_every=0), input_size=192)
    first = tracker.regions(FRAME)
    assert len(first) == 1 and not first[0].tracked and first[0].track_id == 1
    tracker.on_pose(1, seq=0, box=np.array([110.0, 90, 210, 390]), confidence=0.8)
    second = tracker.regions(FRAME)
    assert second[0].tracked and second[0].track_id == 1 and detector.calls == 1
    assert np.allclose(second[0].box, [110, 90, 210, 390])


def test_a_low_confidence_pose_loses_the_track_and_the_next_detection_gets_a_new_id():
    detector = ScriptedDetector([person(100, 100, 200, 400)], [person(400, 100, 500, 400)])
    tracker = RegionTracker(detector, TrackingConfig(detect_every=0, min_confidence=0.3), input_size=192)
    tracker.regions(FRAME)
    tracker.on_pose(1, seq=0, box=np.array([100.0, 100, 200, 400]), confidence=0.1)
    regions = tracker.regions(FRAME)
    assert detector.calls == 2 and regions[0].track_id == 2 and not regions[0].tracked


def test_no_detection_means_no_one_in_the_frame():
    tracker = RegionTracker(ScriptedDetector([]), TrackingConfig(), input_size=192)
    assert tracker.regions(FRAME) == []


def test_periodic_detection_keeps_the_id_of_the_same_person():
    detector = ScriptedDetector([person(100, 100, 200, 400)], [person(105, 100, 205, 400)])
    tracker = RegionTracker(detector, TrackingConfig(detect_every=2), input_size=192)
    tracker.regions(FRAME)
    tracker.on_pose(1, 0, np.array([100.0, 100, 200, 400]), 0.9)
    assert tracker.regions(FRAME)[0].tracked
    third = tracker.regions(FRAME)
    assert detector.calls == 2 and third[0].track_id == 1 and not third[0].tracked


def test_stale_feedback_is_ignored():
    tracker = RegionTracker(ScriptedDetector([person(100, 100, 200, 400)]), TrackingConfig(), input_size=192)
    tracker.regions(FRAME)
    tracker.on_pose(1, 5, np.array([100.0, 100, 200, 400]), 0.9)
    tracker.on_pose(1, 4, None, 0.0)  # older than what we know
    tracker.on_pose(7, 6, None, 0.0)  # another track
    assert tracker.regions(FRAME)[0].tracked


def test_the_crop_is_the_padded_square_around_the_person():
    tracker = RegionTracker(ScriptedDetector([person(100, 100, 200, 400)]),
                            TrackingConfig(box_padding=1.25), input_size=100)
    affine = tracker.regions(FRAME)[0].affine
    assert affine[0, 0] == pytest.approx(100 / (300 * 1.25))  # the 300 px tall person, padded


def test_the_whole_frame_detector_crops_the_letterboxed_frame():
    tracker = RegionTracker(WholeFrameDetector(), TrackingConfig(detector="none"), input_size=64)
    region = tracker.regions(FRAME)[0]
    assert region.affine[0, 0] == pytest.approx(64 / 640)


@pytest.mark.parametrize("a, b, expected", [
    ([0, 0, 10, 10], [0, 0, 10, 10], 1.0),
    ([0, 0, 10, 10], [5, 0, 15, 10], 1 / 3),
    ([0, 0, 10, 10], [20, 20, 30, 30], 0.0),
])
def test_iou(a, b, expected):
    assert iou(np.array(a, float), np.array(b, float)) == pytest.approx(expected)


def test_pose_box_is_tight():
    joints = np.array([[3.0, 4.0], [10.0, -2.0], [5.0, 9.0]])
    assert pose_box(joints).tolist() == [3.0, -2.0, 10.0, 9.0]
