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


@pytest.mark.parametrize("batched", [True, False])
def test_from_frames_times_whole_batches_and_the_hosts_share_of_them_either_way_of_cutting(batched):
    with load(default_model.checkpoint_path(), "torch", device="cpu") as engine:
        assert engine.batched_crops is False  # the CPU's default: one grid_sample a frame
        engine.batched_crops = batched
        ms, host_ms = bench_gpu.from_frames_ms(engine, 2, 0.0, np.random.default_rng(0), frame_shape=(96, 128, 3))
        assert ms > 0 and 0 < host_ms <= ms


def test_the_table_has_both_ways_of_cutting_side_by_side():
    row = bench_gpu.GpuBenchRow(
        preset="paper", path="compiled", precision="fp16", start=1, batch=64, device_ms=10.0,
        device_frames_per_s=6400.0, host_ms=12.0, host_frames_per_s=5333.0, overlapped_ms=11.0,
        overlapped_frames_per_s=5818.0, frames_ms=20.0,
        frames_frames_per_s=3200.0, frames_host_ms=4.0, per_frame_cut_frames_per_s=1600.0, per_frame_cut_host_ms=9.5,
        prepare_s=30.0, peak_gpu_mb=900.0, gpu="a GPU", weights="untrained")
    table = bench_gpu.format_table([row])
    header, _, values = table.splitlines()[:3]
    cells = dict(zip([h.strip() for h in header.strip("|").split("|")],
                     [v.strip() for v in values.strip("|").split("|")], strict=True))
    assert cells["from-frames frames/s"] == "3,200" and cells["per-frame cut frames/s"] == "1,600"
    assert cells["per-frame cut host ms"] == "9.50"
