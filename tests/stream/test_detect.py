"""The people detector on real frames."""

import av
import numpy as np

from wildpose.stream.detect import HogDetector, WholeFrameDetector


def first_frame(path, index=0):
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == index:
                return frame.to_ndarray(format="rgb24")


def test_hog_finds_the_person_in_a_real_frame(shared_data):
    frame = first_frame(shared_data / "video" / "pose_squats.mp4", 10)  # 720x1280, one woman
    found = HogDetector(max_side=320).detect(frame)
    assert found, "no one found"
    x0, y0, x1, y1 = found[0].box
    assert 0 < found[0].score <= 1
    assert 0.25 * 1280 < y1 - y0 < 1280 and x1 > x0  # a person-sized box, tall not wide
    assert (x0 + x1) / 2 > 0.1 * 720 and (x0 + x1) / 2 < 0.9 * 720


def test_hog_finds_no_one_in_an_empty_frame():
    assert HogDetector().detect(np.full((360, 640, 3), 127, np.uint8)) == []


def test_the_whole_frame_detector_returns_the_frame():
    (detection,) = WholeFrameDetector().detect(np.zeros((360, 640, 3), np.uint8))
    assert detection.box.tolist() == [-0.5, -0.5, 639.5, 359.5] and detection.score == 1.0
