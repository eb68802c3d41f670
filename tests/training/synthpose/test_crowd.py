"""Crowd scenes: figures with fixed identities that walk across each other, hide each other, and
render the same on every call."""

from __future__ import annotations

import numpy as np
import pytest

from wildpose.errors import ConfigError
from wildpose.training import joints
from wildpose.training.synthpose import crowd

PELVIS = joints.INDEX["pelvis"]


@pytest.fixture(scope="module")
def two(mocap_dir):
    return list(crowd.render_crowd(crowd.CrowdConfig(people=2, frames=80, mocap_dir=str(mocap_dir))))


def test_two_figures_swap_sides_and_the_nearer_hides_the_farther_on_the_way(two):
    first, middle, last = two[0], two[40], two[-1]
    assert [p.id for p in first.people] == [p.id for p in last.people] == [1, 2]
    x = lambda frame: [p.joints2d[PELVIS, 0] for p in frame.people]  # noqa: E731
    assert (x(first)[0] - x(first)[1]) * (x(last)[0] - x(last)[1]) < 0  # they changed sides
    assert all(p.seen >= 10 for p in first.people + last.people)  # apart: most joints in view (side-on)
    assert min(p.seen for p in middle.people) <= 8  # passing: one hides much of the other
    assert middle.people[0].seen > middle.people[1].seen  # figure 1 walks the nearer lane


def test_truth_boxes_lie_in_the_image_and_hold_a_whole_person(two):
    for frame in two[::10]:
        height, width = frame.image.shape[:2]
        for person in frame.people:
            x0, y0, x1, y1 = person.box
            assert 0 <= x0 < x1 <= width - 1 and 0 <= y0 < y1 <= height - 1
            assert (y1 - y0) > 0.4 * height  # a whole standing person


def test_a_scene_renders_the_same_every_time(mocap_dir):
    config = crowd.CrowdConfig(people=3, frames=4, width=160, height=96, seed=5, mocap_dir=str(mocap_dir))
    first, second = list(crowd.render_crowd(config)), list(crowd.render_crowd(config))
    for a, b in zip(first, second, strict=True):
        assert np.array_equal(a.image, b.image)
        assert all(np.array_equal(p.box, q.box) and p.seen == q.seen for p, q in zip(a.people, b.people, strict=True))
    other = list(crowd.render_crowd(crowd.CrowdConfig(people=3, frames=4, width=160, height=96, seed=6,
                                                      mocap_dir=str(mocap_dir))))
    assert not np.array_equal(first[0].image, other[0].image)  # the seed picks shapes and clothes


def test_four_figures_each_keep_their_lane_and_pairs_meet_at_different_moments(mocap_dir):
    frames = list(crowd.render_crowd(crowd.CrowdConfig(people=4, frames=60, width=320, height=180,
                                                       mocap_dir=str(mocap_dir))))
    assert all(len(f.people) == 4 for f in frames)
    gaps = np.array([[abs(f.people[0].joints2d[PELVIS, 0] - f.people[1].joints2d[PELVIS, 0]),
                      abs(f.people[2].joints2d[PELVIS, 0] - f.people[3].joints2d[PELVIS, 0])] for f in frames])
    assert gaps[:, 0].argmin() < gaps[:, 1].argmin()  # figures 1 and 2 pass before 3 and 4


@pytest.mark.parametrize("changes, message", [
    ({"people": 1}, "2..4 people"),
    ({"people": 5}, "2..4 people"),
    ({"fps": 0}, "fps 1..120"),
    ({"frames": 0}, "frames must be at least 1"),
])
def test_bad_scene_settings_are_refused(changes, message):
    with pytest.raises(ConfigError, match=message):
        crowd.CrowdConfig(**changes)


def test_a_scene_longer_than_the_walks_is_refused_with_the_limit(mocap_dir):
    with pytest.raises(ConfigError, match=r"at most \d+"):
        next(crowd.render_crowd(crowd.CrowdConfig(frames=10_000, mocap_dir=str(mocap_dir))))
