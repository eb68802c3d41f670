"""Heatmap decoding: the reference's argmax with a quarter-pixel step, and the pixel convention."""

import pytest
import torch

from wildpose.training import heatmaps


def gaussian(x: float, y: float, size: int = 16, sigma: float = 1.5, peak: float = 1.0) -> torch.Tensor:
    grid = torch.arange(size, dtype=torch.float32)
    return peak * torch.exp(-((grid[None, :] - x) ** 2 + (grid[:, None] - y) ** 2) / (2 * sigma**2))


@pytest.mark.parametrize("x, y, expected", [
    (5.0, 7.0, (5.0, 7.0)),     # symmetric peak: no step
    (5.3, 7.0, (5.25, 7.0)),    # right neighbour larger: +0.25 in x
    (5.0, 6.8, (5.0, 6.75)),    # upper neighbour larger: -0.25 in y
    (4.7, 7.4, (4.75, 7.25)),
    (0.2, 7.0, (0.0, 7.0)),     # on the border: not refined
])
def test_decode_steps_a_quarter_pixel_toward_the_larger_neighbour(x, y, expected):
    coords, conf = heatmaps.decode(gaussian(x, y)[None, None])
    assert tuple(coords[0, 0].tolist()) == pytest.approx(expected)


def test_confidence_is_the_peak_clamped_to_unit_range():
    maps = torch.stack([gaussian(8, 8, peak=0.6), gaussian(8, 8, peak=1.7), gaussian(8, 8, peak=-0.2)])
    _, conf = heatmaps.decode(maps[None])
    assert conf[0].tolist() == pytest.approx([0.6, 1.0, 0.0])


def test_decode_handles_every_joint_of_every_sample():
    maps = torch.zeros(2, 3, 16, 16)
    maps[1, 2] = gaussian(11.0, 3.0)
    coords, _ = heatmaps.decode(maps)
    assert coords.shape == (2, 3, 2)
    assert coords[1, 2].tolist() == pytest.approx([11.0, 3.0])


def test_crop_and_heatmap_coordinates_are_inverse_and_centre_aligned():
    crop = torch.tensor([[0.0, 0.0], [1.5, 1.5], [255.0, 100.25]])
    assert torch.allclose(heatmaps.heatmap_to_crop(heatmaps.crop_to_heatmap(crop, 4), 4), crop)
    # heatmap pixel 0 covers crop pixels 0..3, whose centre is 1.5
    assert heatmaps.heatmap_to_crop(torch.tensor([0.0]), 4).item() == 1.5
