"""Augmentation: the reference's distributions, drawn per sample from its own seed, and crop geometry."""

import numpy as np
import pytest

from wildpose.errors import ConfigError
from wildpose.training.datasets import augment

DEFAULT = augment.AugmentConfig()


def draws(count=4000, config=DEFAULT):
    return [augment.draw(augment.generator((0, 0, 0, p), 7), config) for p in range(count)]


def test_same_seed_material_gives_the_same_draw_and_any_other_a_new_one():
    first = augment.draw(augment.generator((3, 1, 2, 10), 5), DEFAULT)
    assert augment.draw(augment.generator((3, 1, 2, 10), 5), DEFAULT) == first
    others = [augment.draw(augment.generator(stream, index), DEFAULT) for stream, index in [
        ((4, 1, 2, 10), 5), ((3, 2, 2, 10), 5), ((3, 1, 3, 10), 5), ((3, 1, 2, 11), 5), ((3, 1, 2, 10), 6)]]
    assert all(other != first for other in others)


@pytest.mark.parametrize("name, check", [
    ("scale within 2^+-0.5", lambda d: all(2 ** -0.5 - 1e-9 <= x.scale <= 2 ** 0.5 + 1e-9 for x in d)),
    ("scale log2 spread 0.25", lambda d: 0.2 < np.std(np.log2([x.scale for x in d])) < 0.26),
    ("rotation within +-60", lambda d: all(abs(x.rotation) <= 60 for x in d)),
    ("rotation applied 40% of the time", lambda d: 0.37 < np.mean([x.rotation != 0 for x in d]) < 0.43),
    ("rotation spread ~30 deg", lambda d: 25 < np.std([x.rotation for x in d if x.rotation]) < 31),
    ("flip half of the time", lambda d: 0.47 < np.mean([x.flip for x in d]) < 0.53),
    ("gains in [0.6, 1.4]", lambda d: all(0.6 <= g <= 1.4 for x in d for g in x.gains)),
    ("gains uniform, mean 1", lambda d: abs(np.mean([x.gains for x in d]) - 1.0) < 0.01),
])
def test_draws_follow_the_reference_distributions(name, check):
    assert check(draws()), name


def test_disabled_augmentation_is_the_identity():
    assert set(draws(20, augment.AugmentConfig(enabled=False))) == {augment.IDENTITY}


@pytest.mark.parametrize("center, side, size", [((50.0, 80.0), 100.0, 64), ((10.5, 3.0), 224.0, 256)])
def test_the_box_fills_the_crop_edge_to_edge(center, side, size):
    matrix = augment.crop_matrix(np.array(center), side, size)
    corners = np.array([[center[0] - side / 2, center[1] - side / 2], [center[0] + side / 2, center[1] + side / 2]])
    assert augment.apply(matrix, corners) == pytest.approx(np.array([[-0.5, -0.5], [size - 0.5, size - 0.5]]))
    assert augment.apply(matrix, np.array([center])) == pytest.approx(np.array([[(size - 1) / 2] * 2]))


def test_flip_mirrors_the_crop_about_its_vertical_midline():
    plain = augment.crop_matrix(np.array([40.0, 40.0]), 80.0, 64)
    flipped = augment.crop_matrix(np.array([40.0, 40.0]), 80.0, 64, flip=True)
    points = np.array([[10.0, 20.0], [70.0, 33.0]])
    a, b = augment.apply(plain, points), augment.apply(flipped, points)
    assert b[:, 0] == pytest.approx(63 - a[:, 0]) and b[:, 1] == pytest.approx(a[:, 1])


def test_positive_rotation_turns_content_counter_clockwise_on_screen():
    matrix = augment.crop_matrix(np.array([0.0, 0.0]), 64.0, 64, rotation=90.0)
    right_of_centre = augment.apply(matrix, np.array([[10.0, 0.0]]))[0] - 31.5
    assert right_of_centre == pytest.approx([0.0, -10.0])  # y down: -10 is up on screen


@pytest.mark.parametrize("changes, message", [
    ({"flip_p": 1.5}, "flip_p is a probability"),
    ({"rotation_p": -0.1}, "rotation_p is a probability"),
    ({"scale_sigma": -1}, "scale_sigma must be a number >= 0"),
    ({"colour_min": 1.5, "colour_max": 1.0}, "must not exceed colour_max"),
    ({"enabled": "yes"}, "enabled must be true or false"),
])
def test_invalid_augment_configs_are_refused(changes, message):
    with pytest.raises(ConfigError, match=message):
        augment.AugmentConfig(**changes)


def test_unknown_augment_keys_are_refused_with_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown keys \['flip'\]; known keys are .*flip_p"):
        augment.AugmentConfig.from_dict({"flip": 0.5})
