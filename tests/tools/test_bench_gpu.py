"""The GPU benchmark's from-frames timing, run here on the CPU torch backend (the same calls as on CUDA)."""

import numpy as np
import pytest

from wildpose.engine import default_model, frame_crops, load
from wildpose.tools import bench_gpu

pytest.importorskip("torch")


def test_the_centred_crop_map_cuts_the_frames_central_square():
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[:, 8:56] = 200  # the central 48 x 48 square
    crop = frame_crops.cut_on_host(frame, bench_gpu.centred_crop_map(frame.shape, 32)[0], 32)
    assert crop.shape == (32, 32, 3)
    assert crop.min() >= 199  # nothing from outside the square (black) reaches the crop
    affine = bench_gpu.centred_crop_map(frame.shape, 32)[0]
    edges = np.array([[7.5, -0.5, 1.0], [55.5, 47.5, 1.0]])  # the square's outer pixel edges
    np.testing.assert_allclose(edges @ affine.T, [[-0.5, -0.5], [31.5, 31.5]], atol=1e-5)  # the crop's


def test_from_frames_times_whole_batches_and_the_hosts_share_of_them():
    with load(default_model.checkpoint_path(), "torch", device="cpu") as engine:
        ms, host_ms = bench_gpu.from_frames_ms(engine, 2, 0.0, np.random.default_rng(0), frame_shape=(96, 128, 3))
        assert ms > 0 and 0 < host_ms <= ms
