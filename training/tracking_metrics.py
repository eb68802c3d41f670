"""Identity quality of multi-person tracking: CLEAR MOT (MOTA, MOTP, identity switches) and IDF1.

The counting is py-motmetrics' (`motmetrics`, the MOTChallenge reference in Python); this module only
turns per-frame truths and hypotheses into its accumulator. A truth and a hypothesis can match when
their boxes overlap by IoU >= `min_iou` (0.5, as MOTChallenge). A person with fewer than `min_seen`
joints in view and not hidden (fully behind someone, or out of the frame) cannot be tracked from the
pixels: such a truth is left out, and a hypothesis that covers only it is not counted as a false
positive, as MOTChallenge does with its "ignore" regions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from wildpose.errors import ConfigError


@dataclass(frozen=True)
class TruthBox:
    id: int
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 pixels
    seen: int  # joints in view and not hidden


@dataclass(frozen=True)
class TrackBox:
    id: int
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class TrackingScores:
    frames: int
    truths: int  # truth boxes counted (all frames)
    people: int  # distinct truth identities counted
    mota: float  # 1 - (misses + false positives + switches) / truths
    motp_iou: float  # mean IoU of the matched pairs
    idf1: float
    switches: int
    misses: int
    false_positives: int
    mostly_tracked: int  # identities tracked for >= 80 % of their frames
    hypothesis_ids: int  # distinct ids the tracker gave

    def as_dict(self) -> dict:
        return asdict(self)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`(len(a), len(b))` IoU of xyxy boxes."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    x0, y0 = np.maximum(a[:, None, 0], b[None, :, 0]), np.maximum(a[:, None, 1], b[None, :, 1])
    x1, y1 = np.minimum(a[:, None, 2], b[None, :, 2]), np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda boxes: (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def score_tracks(truths: Sequence[Sequence[TruthBox]], tracks: Sequence[Sequence[TrackBox]], min_iou: float = 0.5,
                 min_seen: int = 4) -> TrackingScores:
    """Score `tracks` against `truths`, both one list per frame (the same frames, in order)."""
    import motmetrics  # imported here: it pulls in pandas, which only this evaluation needs

    if len(truths) != len(tracks):
        raise ConfigError(f"tracking scores need one list of tracks per frame of truth: {len(truths)} frames "
                          f"of truth, {len(tracks)} of tracks")
    if not 0.0 < min_iou < 1.0:
        raise ConfigError(f"min_iou must be in (0, 1), got {min_iou}")
    accumulator = motmetrics.MOTAccumulator(auto_id=True)
    for frame_truths, frame_tracks in zip(truths, tracks, strict=True):
        counted = [t for t in frame_truths if t.seen >= min_seen]
        ignored = [t for t in frame_truths if t.seen < min_seen]
        kept = list(frame_tracks)
        if ignored and kept:
            boxes = np.array([t.box for t in kept])
            covers_ignored = (_iou(boxes, [t.box for t in ignored]) >= min_iou).any(axis=1)
            covers_counted = (_iou(boxes, [t.box for t in counted]) >= min_iou).any(axis=1) if counted else \
                np.zeros(len(kept), bool)
            kept = [t for t, drop in zip(kept, covers_ignored & ~covers_counted, strict=True) if not drop]
        # motmetrics.distances.iou_matrix would do the same but calls np.asfarray, gone in NumPy 2
        overlap = _iou([t.box for t in counted], [t.box for t in kept])
        distances = np.where(overlap >= min_iou, 1.0 - overlap, np.nan)
        accumulator.update([t.id for t in counted], [t.id for t in kept], distances)
    names = ["num_frames", "num_objects", "num_unique_objects", "mota", "motp", "idf1", "num_switches",
             "num_misses", "num_false_positives", "mostly_tracked"]
    handler = motmetrics.metrics.create()
    row = handler.compute(accumulator, metrics=names, name="all").iloc[0]
    motp = float(row["motp"])
    return TrackingScores(frames=len(truths), truths=int(row["num_objects"]), people=int(row["num_unique_objects"]),
                          mota=float(row["mota"]), motp_iou=1.0 - motp if np.isfinite(motp) else float("nan"),
                          idf1=float(row["idf1"]), switches=int(row["num_switches"]), misses=int(row["num_misses"]),
                          false_positives=int(row["num_false_positives"]), mostly_tracked=int(row["mostly_tracked"]),
                          hypothesis_ids=len({t.id for frame in tracks for t in frame}))
