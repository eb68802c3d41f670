"""Where to crop each frame: every tracked person's previous pose, and a detector to find people.

The detector runs at the first frame, every `detect_every` frames, whenever no one is tracked, and
as soon as a track is lost (its pose confidence fell below the threshold). Its people are matched to
the current tracks by box overlap with the Hungarian algorithm (SciPy's `linear_sum_assignment` on
1 - IoU), so a person keeps their integer id; unmatched detections start new tracks, and a track
that nothing confirms for `max_missed` frames ends. Between detections each person's region comes
from their own previous pose. At most `max_people` are tracked: the most confident first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from wildpose.stream import crop
from wildpose.stream.config import TrackingConfig
from wildpose.stream.detect import Detection
from wildpose.stream.frames import PersonRegion

SAME_PERSON_IOU = 0.3  # a detection overlapping a track this much can be the same person


@dataclass
class Track:
    track_id: int
    box: np.ndarray  # x0, y0, x1, y1 frame pixels: the person's latest known extent
    score: float
    last_seen: int  # frame counter when a detection or a confident pose last confirmed it
    lost: bool = False  # its last pose was not confident: not cropped again until re-detected
    last_feedback_seq: int = -1


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two x0, y0, x1, y1 boxes."""
    return float(iou_matrix(np.asarray(a)[None], np.asarray(b)[None])[0, 0])


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`(len(a), len(b))` IoU of every pair of boxes of `(N, 4)` and `(M, 4)`."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    low = np.maximum(a[:, None, :2], b[None, :, :2])
    high = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(high - low, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def pose_box(joints2d: np.ndarray) -> np.ndarray:
    """Tight x0, y0, x1, y1 box around `(J, 2)` joints."""
    return np.concatenate([joints2d.min(axis=0), joints2d.max(axis=0)]).astype(np.float64)


class PeopleTracker:
    """Decides the person regions of each frame of one stream and keeps their identities."""

    def __init__(self, detector, config: TrackingConfig, input_size: int) -> None:
        self.detector = detector
        self.config = config
        self.input_size = input_size
        self.tracks: list[Track] = []
        self.next_id = 1
        self.frame = -1
        self.last_detection = -1
        self.detections_run = 0

    def regions(self, frame: np.ndarray) -> list[PersonRegion]:
        """The regions to crop from `frame` (`(H, W, 3)` uint8 RGB); empty when no one is there."""
        self.frame += 1
        if self.detector.name == "none":
            (whole,) = self.detector.detect(frame)
            return [self._region(1, whole, tracked=False)]
        self._expire()
        every = self.config.detect_every
        due = (not self.tracks or any(t.lost for t in self.tracks)
               or (every and self.frame - self.last_detection >= every))
        if due:
            return self._detect(frame)
        return [self._region(t.track_id, Detection(t.box, t.score), tracked=True)
                for t in self.tracks if not t.lost]

    def on_poses(self, seq: int, poses: list[tuple[int, np.ndarray | None, float]]) -> None:
        """Feedback from smoothing for frame `seq`: (track id, pose box or None, confidence) each."""
        for track_id, box, confidence in poses:
            track = next((t for t in self.tracks if t.track_id == track_id), None)
            if track is None or seq <= track.last_feedback_seq:
                continue
            track.last_feedback_seq = seq
            if box is None or confidence < self.config.min_confidence:
                track.lost = True
            else:
                track.box, track.score, track.lost, track.last_seen = box, confidence, False, self.frame

    def _detect(self, frame: np.ndarray) -> list[PersonRegion]:
        self.detections_run += 1
        self.last_detection = self.frame
        found = self.detector.detect(frame)[: self.config.max_people]
        matched_tracks, matched_found = self._associate(found)
        regions = []
        for track_index, found_index in zip(matched_tracks, matched_found, strict=True):
            track, detection = self.tracks[track_index], found[found_index]
            track.box, track.score, track.lost, track.last_seen = detection.box, detection.score, False, self.frame
            regions.append(self._region(track.track_id, detection, tracked=False))
        for index, track in enumerate(self.tracks):
            if index not in matched_tracks and not track.lost:  # missed by the detector this time
                regions.append(self._region(track.track_id, Detection(track.box, track.score), tracked=True))
        for index, detection in enumerate(found):
            if index in matched_found or len(self.tracks) >= self.config.max_people:
                continue
            track = Track(self.next_id, detection.box, detection.score, last_seen=self.frame)
            self.next_id += 1
            self.tracks.append(track)
            regions.append(self._region(track.track_id, detection, tracked=False))
        return regions

    def _associate(self, found: list[Detection]) -> tuple[list[int], list[int]]:
        """Hungarian matching of tracks to detections on 1 - IoU, pairs below the IoU gate dropped."""
        if not self.tracks or not found:
            return [], []
        overlap = iou_matrix(np.stack([t.box for t in self.tracks]), np.stack([d.box for d in found]))
        rows, cols = linear_sum_assignment(1.0 - overlap)
        keep = overlap[rows, cols] >= SAME_PERSON_IOU
        return rows[keep].tolist(), cols[keep].tolist()

    def _expire(self) -> None:
        self.tracks = [t for t in self.tracks if self.frame - t.last_seen <= self.config.max_missed]

    def _region(self, track_id: int, detection: Detection, tracked: bool) -> PersonRegion:
        region = (detection.region if detection.region is not None
                  else crop.square_box(detection.box, self.config.box_padding))
        return PersonRegion(track_id=track_id, box=np.asarray(detection.box, np.float64),
                            score=float(detection.score), tracked=tracked,
                            affine=crop.box_to_affine(region, self.input_size))
