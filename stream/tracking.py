"""Where to crop each frame: every tracked person's previous pose, and a detector to find people.

The detector runs at the first frame, every `detect_every` frames, whenever no one is tracked, as
soon as a track is lost (its pose confidence fell below the threshold), and on every frame while two
people are close (a crop then holds parts of both, and a pose can slide from one onto the other).
Its people are matched to the current tracks with the Hungarian algorithm (SciPy's
`linear_sum_assignment`) on box overlap and distance, each track's box first moved on by its
velocity (a constant-velocity model, as in SORT), so a person keeps their integer id through a
crossing; unmatched detections start new tracks. A detection box that also holds a neighbour is
two people merged: the person is then cropped where their own box is heading. A track the detector
misses twice in a row stops being cropped and ends when nothing confirms it for `max_missed`
frames. Between detections each person's region comes from their own previous pose. At most
`max_people` are tracked: the most confident first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from wildpose.stream import crop
from wildpose.stream.config import TrackingConfig
from wildpose.stream.detect import Detection
from wildpose.stream.frames import PersonRegion

log = logging.getLogger(__name__)

SAME_PERSON_IOU = 0.3  # a detection overlapping a track this much can be the same person
SAME_PERSON_INSIDE = 0.7  # ... or one box lies this much inside the other (intersection / smaller area)
SAME_PERSON_DISTANCE = 0.5  # ... or their centres are this close, in units of the taller box's height
_MISSES_TO_LOSE = 2  # detection rounds in a row without a track's person that end its cropping
_VELOCITY_SMOOTHING = 0.5  # weight of the newest detection-to-detection motion in a track's velocity
_MAX_EXTRAPOLATION = 15  # frames a track's box is carried forward by its velocity, at most
_MAX_SPEED = 0.08  # box heights per frame: a sprinter filmed at 30 fps moves about 0.06
_NEIGHBOUR_MARGIN = 0.25  # two people whose boxes, grown by this much of their size, touch are close


@dataclass
class Track:
    track_id: int
    box: np.ndarray  # x0, y0, x1, y1 frame pixels: the person's latest known extent
    score: float
    last_seen: int  # frame counter when a detection or a confident pose last confirmed it
    lost: bool = False  # its last pose was not confident: not cropped again until re-detected
    detector_misses: int = 0  # detection rounds in a row that did not find it
    last_feedback_seq: int = -1
    box_seq: int = -1  # the source frame `box` was seen in
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))  # box centre, pixels per source frame
    detected_box: np.ndarray | None = None  # the last detection's box and its frame, for the velocity
    detected_seq: int = -1
    lost_seq: int = -1  # the source frame at which detection gave it up

    def predicted(self, seq: int) -> np.ndarray:
        """The box moved on to source frame `seq` at the track's velocity (constant-velocity model)."""
        steps = float(np.clip(seq - self.box_seq, 0, _MAX_EXTRAPOLATION)) if self.box_seq >= 0 else 0.0
        shift = self.velocity * steps
        return self.box + np.concatenate([shift, shift])

    def detected(self, box: np.ndarray, seq: int) -> None:
        """A detection matched this track in source frame `seq`: update its box and velocity."""
        if self.detected_box is not None and seq > self.detected_seq and _similar_size(box, self.detected_box):
            motion = (_centre(box) - _centre(self.detected_box)) / (seq - self.detected_seq)
            self.velocity = (1 - _VELOCITY_SMOOTHING) * self.velocity + _VELOCITY_SMOOTHING * motion
            fastest = _MAX_SPEED * float(box[3] - box[1])
            speed = float(np.linalg.norm(self.velocity))
            if speed > fastest:
                self.velocity *= fastest / speed
        self.box, self.box_seq = np.asarray(box, np.float64), seq
        self.detected_box, self.detected_seq = self.box, seq


def _similar_size(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two boxes are of one person alike: a box that grew or shrank by more than a quarter
    is more likely two people merged, or one cut by an occluder, than a person's motion."""
    sizes_a, sizes_b = np.asarray(a[2:]) - np.asarray(a[:2]), np.asarray(b[2:]) - np.asarray(b[:2])
    if np.any(sizes_a <= 0) or np.any(sizes_b <= 0):
        return False
    ratio = sizes_a / sizes_b
    return bool(np.all((ratio > 0.8) & (ratio < 1.25)))


def _centre(box: np.ndarray) -> np.ndarray:
    return (np.asarray(box[:2], np.float64) + np.asarray(box[2:], np.float64)) / 2


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two x0, y0, x1, y1 boxes."""
    return float(iou_matrix(np.asarray(a)[None], np.asarray(b)[None])[0, 0])


def _overlaps(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intersection areas `(len(a), len(b))` and each box's own area, for `(N, 4)` and `(M, 4)` boxes."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    low = np.maximum(a[:, None, :2], b[None, :, :2])
    high = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(high - low, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    return inter, area_a, area_b


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`(len(a), len(b))` IoU of every pair of boxes of `(N, 4)` and `(M, 4)`."""
    inter, area_a, area_b = _overlaps(a, b)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def containment_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`(len(a), len(b))` intersection over the smaller of the two areas, for every pair of boxes."""
    inter, area_a, area_b = _overlaps(a, b)
    smaller = np.minimum(area_a[:, None], area_b[None, :])
    return np.where(smaller > 0, inter / np.where(smaller > 0, smaller, 1.0), 0.0)


def centre_distance_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`(len(a), len(b))` distance between box centres over the taller box's height, for every pair."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    centres_a, centres_b = (a[:, :2] + a[:, 2:]) / 2, (b[:, :2] + b[:, 2:]) / 2
    distance = np.linalg.norm(centres_a[:, None] - centres_b[None], axis=2)
    height = np.maximum((a[:, 3] - a[:, 1])[:, None], (b[:, 3] - b[:, 1])[None, :])
    return distance / np.maximum(height, 1.0)


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
        self.recheck = False  # a track was missed once: detect again on the next frame
        self.seq = -1  # the source frame number of the current frame

    def regions(self, frame: np.ndarray, seq: int | None = None) -> list[PersonRegion]:
        """The regions to crop from `frame` (`(H, W, 3)` uint8 RGB), source frame number `seq` (default:
        the count of frames seen); empty when no one is there."""
        self.frame += 1
        self.seq = self.frame if seq is None else seq
        if self.detector.name == "none":
            (whole,) = self.detector.detect(frame)
            return [self._region(1, whole, tracked=False)]
        self._expire()
        every = self.config.detect_every
        due = (not self.tracks or self.recheck or any(t.lost for t in self.tracks)
               or (every and self.frame - self.last_detection >= every) or self._neighbours())
        if due:
            return self._detect(frame)
        return [self._region(t.track_id, Detection(t.predicted(self.seq), t.score), tracked=True)
                for t in self.tracks if not t.lost]

    def _neighbours(self) -> bool:
        """Whether two cropped people are close: a crop then holds parts of both, and a pose can slide
        from one person onto the other, so the detector places everyone on every frame until they part."""
        active = [t.predicted(self.seq) for t in self.tracks if not t.lost]
        if len(active) < 2:
            return False
        boxes = np.stack(active)
        grow = (boxes[:, 2:] - boxes[:, :2]) * _NEIGHBOUR_MARGIN
        grown = np.concatenate([boxes[:, :2] - grow, boxes[:, 2:] + grow], axis=1)
        touching = iou_matrix(grown, grown) > 0
        np.fill_diagonal(touching, False)
        return bool(touching.any())

    def on_poses(self, seq: int, poses: list[tuple[int, np.ndarray | None, float]]) -> None:
        """Feedback from smoothing for frame `seq`: (track id, pose box or None, confidence) each."""
        for track_id, box, confidence in poses:
            track = next((t for t in self.tracks if t.track_id == track_id), None)
            if track is None or seq <= track.last_feedback_seq:
                continue
            track.last_feedback_seq = seq
            if box is None or confidence < self.config.min_confidence:
                track.lost = True
            elif seq >= track.box_seq:  # not older than the detection that placed it
                track.box, track.box_seq, track.score = box, seq, confidence
                # A pose of a frame cropped before detection gave the track up still moves its box
                # (for re-association) but does not revive it: that pose may be of an empty crop.
                if seq > track.lost_seq:
                    track.lost, track.last_seen = False, self.frame

    def _detect(self, frame: np.ndarray) -> list[PersonRegion]:
        self.detections_run += 1
        self.recheck = False
        self.last_detection = self.frame
        found = self.detector.detect(frame)[: self.config.max_people]
        matched_tracks, matched_found = self._associate(found)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("frame %d: tracks %s; found %s; matched %s", self.seq,
                      [(t.track_id, np.round(t.predicted(self.seq)).astype(int).tolist(), t.lost) for t in self.tracks],
                      [np.round(d.box).astype(int).tolist() for d in found],
                      [(self.tracks[i].track_id, j) for i, j in zip(matched_tracks, matched_found, strict=True)])
        regions = []
        predicted = {t.track_id: t.predicted(self.seq) for t in self.tracks if not t.lost}
        for track_index, found_index in zip(matched_tracks, matched_found, strict=True):
            track, detection = self.tracks[track_index], found[found_index]
            others = [box for track_id, box in predicted.items() if track_id != track.track_id]
            merged = self._merged(detection.box, track, others)
            track.score, track.lost, track.last_seen = detection.score, False, self.frame
            track.detector_misses = 0
            if merged:
                # One box around this person and a neighbour: keep cropping where this person is
                # heading, or the pose would slide onto whoever the merged crop centres on.
                regions.append(self._region(track.track_id, Detection(predicted[track.track_id], detection.score),
                                            tracked=True))
                continue
            track.detected(detection.box, self.seq)
            regions.append(self._region(track.track_id, detection, tracked=False))
        for index, track in enumerate(self.tracks):
            if index in matched_tracks:
                continue
            if track.lost:
                # lost by its pose's low confidence, and the detector does not see it either: from this
                # frame on only a detection brings it back. Without this, late poses of frames cropped
                # earlier (a pose network finds a "person" in an empty crop) could revive it again and
                # again, and a person who left stayed published for frames.
                track.lost_seq = max(track.lost_seq, self.seq)
                continue
            # Not found this time. Once may be the detector's flicker: keep cropping it and look again
            # on the next frame. Twice in a row and it is gone (a pose network trained on people finds
            # one in an empty crop too): stop cropping, but keep the id for `max_missed` frames.
            track.detector_misses += 1
            if track.detector_misses >= _MISSES_TO_LOSE:
                # lost from this frame on: pose feedback of earlier frames, still on their way back
                # from smoothing, must not revive it (a pose network finds a "person" in an empty crop)
                track.lost, track.lost_seq = True, self.seq
            else:
                self.recheck = True
                regions.append(self._region(track.track_id, Detection(track.predicted(self.seq), track.score),
                                            tracked=True))
        for index, detection in enumerate(found):
            if index in matched_found or len(self.tracks) >= self.config.max_people:
                continue
            track = Track(self.next_id, detection.box, detection.score, last_seen=self.frame)
            track.detected(detection.box, self.seq)
            self.next_id += 1
            self.tracks.append(track)
            regions.append(self._region(track.track_id, detection, tracked=False))
        return regions

    def _merged(self, box: np.ndarray, track: Track, others: list[np.ndarray]) -> bool:
        """Whether a detection matched to `track` also covers a neighbour: it holds most of another
        cropped person's box and is not of this person's size."""
        if track.lost or not others or track.detected_box is None:
            return False
        holds_other = containment_matrix(np.asarray(box)[None], np.stack(others))[0] >= SAME_PERSON_INSIDE
        return bool(holds_other.any()) and not _similar_size(box, track.predicted(self.seq))

    def _associate(self, found: list[Detection]) -> tuple[list[int], list[int]]:
        """Hungarian matching of tracks to detections on overlap and distance. A pair counts as the same
        person when their IoU passes the gate; or when one box lies mostly inside the other (a track's
        box comes from its pose, joint to joint, which sits inside the detector's whole-body box); or
        when their centres are close for their size (a person re-found after a few frames unseen)."""
        if not self.tracks or not found:
            return [], []
        tracks = np.stack([t.predicted(self.seq) for t in self.tracks])
        detections = np.stack([d.box for d in found])
        overlap = iou_matrix(tracks, detections)
        inside = containment_matrix(tracks, detections)
        apart = centre_distance_matrix(tracks, detections)
        rows, cols = _assign(apart - overlap - inside)
        keep = ((overlap[rows, cols] >= SAME_PERSON_IOU) | (inside[rows, cols] >= SAME_PERSON_INSIDE)
                | (apart[rows, cols] <= SAME_PERSON_DISTANCE))
        return rows[keep].tolist(), cols[keep].tolist()

    def _expire(self) -> None:
        self.tracks = [t for t in self.tracks if self.frame - t.last_seen <= self.config.max_missed]

    def _region(self, track_id: int, detection: Detection, tracked: bool) -> PersonRegion:
        region = (detection.region if detection.region is not None
                  else crop.square_box(detection.box, self.config.box_padding))
        return PersonRegion(track_id=track_id, box=np.asarray(detection.box, np.float64),
                            score=float(detection.score), tracked=tracked,
                            affine=crop.box_to_affine(region, self.input_size))


def _assign(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost one-to-one assignment (Hungarian). With one track or one detection it is the
    cheapest entry of that row or column, found without SciPy (imported only for real crowds)."""
    if cost.shape[0] == 1:
        return np.array([0]), np.array([int(np.argmin(cost[0]))])
    if cost.shape[1] == 1:
        return np.array([int(np.argmin(cost[:, 0]))]), np.array([0])
    from scipy.optimize import linear_sum_assignment

    return linear_sum_assignment(cost)
