"""Tracking scores (MOTA, IDF1, identity switches) on hand-made tracks whose counts are known."""

from __future__ import annotations

import pytest

from wildpose.errors import ConfigError
from wildpose.training.tracking_metrics import TrackBox, TruthBox, score_tracks


def truth(person: int, x: float, seen: int = 16) -> TruthBox:
    return TruthBox(person, (x, 0.0, x + 10.0, 20.0), seen)


def track(track_id: int, x: float) -> TrackBox:
    return TrackBox(track_id, (x, 0.0, x + 10.0, 20.0))


# two people 50 px apart walking towards each other over four frames
TRUTHS = [[truth(1, 0), truth(2, 50)], [truth(1, 5), truth(2, 45)], [truth(1, 10), truth(2, 40)],
          [truth(1, 15), truth(2, 35)]]


def test_perfect_tracks_score_one_whatever_their_ids():
    tracks = [[track(7, t[0].box[0]), track(3, t[1].box[0])] for t in TRUTHS]
    scores = score_tracks(TRUTHS, tracks)
    assert (scores.mota, scores.idf1, scores.switches, scores.misses, scores.false_positives) == (1.0, 1.0, 0, 0, 0)
    assert (scores.frames, scores.truths, scores.people, scores.hypothesis_ids) == (4, 8, 2, 2)


def test_ids_that_swap_count_two_switches():
    tracks = [[track(7, 0), track(8, 50)], [track(7, 5), track(8, 45)], [track(8, 10), track(7, 40)],
              [track(8, 15), track(7, 35)]]
    scores = score_tracks(TRUTHS, tracks)
    assert scores.switches == 2 and scores.mota == pytest.approx(1 - 2 / 8)


def test_misses_and_false_positives_are_counted_and_boxes_must_overlap_by_half():
    tracks = [[track(7, 0)], [track(7, 5), track(9, 100)], [track(7, 10), track(8, 46)], [track(7, 15), track(8, 35)]]
    scores = score_tracks(TRUTHS, tracks)
    # frame 0/1: person 2 missed; frame 1: a box far from anyone; frame 2: IoU(40..50, 46..56) = 4/16 < 0.5
    assert (scores.misses, scores.false_positives, scores.switches) == (3, 2, 0)
    assert scores.mota == pytest.approx(1 - 5 / 8)


def test_a_person_hidden_from_view_is_neither_a_miss_nor_a_false_positive():
    hidden = [frame[:1] + [truth(2, frame[1].box[0], seen=2)] for frame in TRUTHS]
    found = [[track(7, t[0].box[0]), track(8, t[1].box[0])] for t in TRUTHS]
    unseen = [[track(7, t[0].box[0])] for t in TRUTHS]
    for tracks in (found, unseen):
        scores = score_tracks(hidden, tracks)
        assert (scores.truths, scores.misses, scores.false_positives, scores.mota) == (4, 0, 0, 1.0)


def test_tracks_for_another_number_of_frames_are_refused():
    with pytest.raises(ConfigError, match="one list of tracks per frame"):
        score_tracks(TRUTHS, [[]])
