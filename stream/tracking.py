"""Where to crop each frame: the previous pose's region while the track holds, a detection otherwise.

Single person for now (the crowds issue makes it many): one track per stream with a stable integer id.
A detection that overlaps the current track keeps its id; a track whose pose confidence falls below
the threshold is dropped, and the next frame is searched by the detector again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wildpose.stream import crop
from wildpose.stream.config import TrackingConfig
from wildpose.stream.detect import Detection
from wildpose.stream.frames import PersonRegion

SAME_PERSON_IOU = 0.3  # a detection overlapping the track this much is the same person


@dataclass
class _Track:
    track_id: int
    box: np.ndarray
    score: float
    last_feedback_seq: int = -1


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two x0, y0, x1, y1 boxes."""
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def pose_box(joints2d: np.ndarray) -> np.ndarray:
    """Tight x0, y0, x1, y1 box around `(J, 2)` joints."""
    return np.concatenate([joints2d.min(axis=0), joints2d.max(axis=0)]).astype(np.float64)


class RegionTracker:
    """Decides the person regions of each frame of one stream."""

    def __init__(self, detector, config: TrackingConfig, input_size: int) -> None:
        self.detector = detector
        self.config = config
        self.input_size = input_size
        self.track: _Track | None = None
        self.next_id = 1
        self.frames_since_detection = 0
        self.detections_run = 0

    def regions(self, frame: np.ndarray) -> list[PersonRegion]:
        """The regions to crop from `frame` (`(H, W, 3)` uint8 RGB); empty when no one is found."""
        every = self.config.detect_every
        if self.detector.name == "none":
            return [self._region(self._detect_one(frame), tracked=False)]
        if self.track is None or (every and self.frames_since_detection >= every):
            detection = self._detect_one(frame)
            if detection is None:
                self.track = None
                return []
            if self.track is None or iou(self.track.box, detection.box) < SAME_PERSON_IOU:
                self.track = _Track(self.next_id, detection.box, detection.score)
                self.next_id += 1
            else:
                self.track.box, self.track.score = detection.box, detection.score
            self.frames_since_detection = 1
            return [self._region(detection, tracked=False)]
        self.frames_since_detection += 1
        return [self._region(Detection(self.track.box, self.track.score), tracked=True)]

    def on_pose(self, track_id: int, seq: int, box: np.ndarray | None, confidence: float) -> None:
        """Feedback from smoothing: the pose found for `track_id` in frame `seq` (box None: lost)."""
        track = self.track
        if track is None or track.track_id != track_id or seq <= track.last_feedback_seq:
            return
        track.last_feedback_seq = seq
        if box is None or confidence < self.config.min_confidence:
            self.track = None
        else:
            track.box, track.score = box, confidence

    def _detect_one(self, frame: np.ndarray) -> Detection | None:
        self.detections_run += 1
        found = self.detector.detect(frame)
        return found[0] if found else None

    def _region(self, detection: Detection, tracked: bool) -> PersonRegion:
        region = (detection.region if detection.region is not None
                  else crop.square_box(detection.box, self.config.box_padding))
        track_id = self.track.track_id if self.track is not None else 1
        return PersonRegion(track_id=track_id, box=np.asarray(detection.box, np.float64),
                            score=float(detection.score), tracked=tracked,
                            affine=crop.box_to_affine(region, self.input_size))
