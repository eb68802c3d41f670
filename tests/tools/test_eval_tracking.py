"""`wildpose eval --tracking`: the real pipeline, with its default settings, on rendered crowd scenes
whose identities are known."""

from __future__ import annotations

import collections
import json

import pytest
from support import assert_one_error_line, wildpose

from wildpose.tools import eval_tracking
from wildpose.training.synthpose import crowd
from wildpose.training.tracking_metrics import TruthBox, score_tracks


@pytest.fixture(scope="module")
def detector(shared_data):
    return str(shared_data / "models" / "yolox_nano.onnx")


def _majority_ids(truths, tracks, frames) -> dict[int, int]:
    """For each person, the track id whose box overlaps theirs best most often over `frames`."""
    from wildpose.training.tracking_metrics import _iou

    votes: dict[int, collections.Counter] = collections.defaultdict(collections.Counter)
    for index in frames:
        people, found = truths[index], tracks[index]
        if not found:
            continue
        overlap = _iou([p.box for p in people], [t.box for t in found])
        for row, person in enumerate(people):
            if overlap[row].max() >= 0.5:
                votes[person.id][found[int(overlap[row].argmax())].id] += 1
    return {person: count.most_common(1)[0][0] for person, count in votes.items()}


def test_two_figures_that_cross_keep_their_identities_under_the_default_settings(shared_data, detector):
    config = crowd.CrowdConfig(people=2, frames=80, mocap_dir=str(shared_data / "cmu_mocap"))
    clip, truths = eval_tracking.scene_clip(config)
    crossing = min(range(80), key=lambda i: abs(truths[i][0].box[0] - truths[i][1].box[0]))
    assert 30 <= crossing <= 50 and min(p.seen for p in truths[crossing]) < 10  # they really pass, one hidden
    tracks = eval_tracking.track_clip(clip, 80, ["--detector", detector])
    before = _majority_ids(truths, tracks, range(0, crossing - 8))
    after = _majority_ids(truths, tracks, range(crossing + 12, 80))
    print(f"crossing at frame {crossing}; ids before {before}, after {after}")
    assert before == after and len(set(before.values())) == 2
    scores = score_tracks(truths, tracks)
    print(scores)
    assert scores.hypothesis_ids == 2  # no one was given a new id on the way
    assert scores.mota > 0.6


def test_the_command_prints_the_table_and_writes_json(shared_data, detector, tmp_path):
    result = wildpose("eval", "--tracking", "--people", "2", "--frames", "40", "--detector", detector,
                      "--mocap", str(shared_data / "cmu_mocap"), "--json", str(tmp_path / "ids.json"), timeout=300)
    assert result.returncode == 0, result.stderr
    header = result.stdout.splitlines()[0]
    for column in ("people", "MOTA", "IDF1", "identity switches", "misses", "false positives", "ids given"):
        assert column in header
    (row,) = json.loads((tmp_path / "ids.json").read_text())
    assert row["people"] == 2 and row["frames"] == 40 and row["scores"]["truths"] > 0


@pytest.mark.parametrize("args, fragment", [
    (["--people", "5"], "2..4 people"),
    (["--people", "two"], "comma-separated counts"),
    (["runs/x.pt"], "give no checkpoint"),
])
def test_bad_tracking_evaluations_get_one_clear_line(args, fragment):
    assert_one_error_line(wildpose("eval", "--tracking", *args), fragment)


def test_truth_boxes_are_read_back_as_written(shared_data):
    config = crowd.CrowdConfig(people=3, frames=3, width=160, height=96, mocap_dir=str(shared_data / "cmu_mocap"))
    clip, truths = eval_tracking.scene_clip(config)
    again = [[TruthBox(p.id, tuple(float(v) for v in p.box), p.seen) for p in frame.people]
             for frame in crowd.render_crowd(config)]
    assert clip.is_file() and truths == again
