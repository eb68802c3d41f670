"""Person crops: the frame-to-crop map, the cut pixels and the way back agree exactly."""

import numpy as np
import pytest

from wildpose.stream import crop


def test_box_edges_map_to_crop_edges():
    affine = crop.box_to_affine(np.array([100.0, 50.0, 300.0, 250.0]), 192)
    corners = np.array([[100.0, 50.0, 1.0], [300.0, 250.0, 1.0]]) @ affine.T
    assert corners == pytest.approx(np.array([[-0.5, -0.5], [191.5, 191.5]]))


def test_a_tall_box_is_squared_around_its_centre_not_stretched():
    affine = crop.box_to_affine(np.array([150.0, 0.0, 250.0, 400.0]), 100)
    assert affine[0, 0] == affine[1, 1] == pytest.approx(0.25)
    centre = np.array([200.0, 200.0, 1.0]) @ affine.T
    assert centre == pytest.approx([49.5, 49.5])


def test_crop_to_frame_inverts_the_map():
    affine = crop.box_to_affine(np.array([10.0, 20.0, 110.0, 300.0]), 64)
    points = np.random.default_rng(0).uniform(0, 400, (5, 16, 2))
    back = crop.crop_to_frame(points @ affine[:, :2].T + affine[:, 2], affine)
    assert back == pytest.approx(points)


def test_cut_puts_a_frame_pixel_where_the_map_says():
    frame = np.zeros((240, 320, 3), np.uint8)
    frame[100:104, 200:204] = 255  # a 4x4 white square centred on (201.5, 101.5)
    affine = crop.box_to_affine(np.array([120.0, 20.0, 280.0, 180.0]), 160)  # scale 1
    patch = crop.cut(frame, affine, 160)
    ys, xs = np.nonzero(patch[..., 0] > 127)
    expected = np.array([201.5, 101.5, 1.0]) @ affine.T
    assert (xs.mean(), ys.mean()) == pytest.approx(tuple(expected), abs=0.01)


def test_model_input_is_channels_first_float_in_unit_range():
    crops = np.full((2, 8, 8, 3), 255, np.uint8)
    crops[:, :, :, 1] = 0
    batch = crop.to_model_input(crops)
    assert batch.shape == (2, 3, 8, 8) and batch.dtype == np.float32
    assert batch[:, 0].max() == 1.0 and batch[:, 1].max() == 0.0
