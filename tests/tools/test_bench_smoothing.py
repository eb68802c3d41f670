"""The smoothing benchmark measures what the filter does to real motion with added noise."""

from wildpose.stream.config import SmoothingConfig
from wildpose.tools import bench_smoothing


def test_the_default_filter_cuts_jitter_with_a_small_lag_on_real_motion(shared_data, tmp_path):
    for name in ("02_01.bvh", "131_03.bvh"):  # one file of each CMU naming scheme
        (tmp_path / name).symlink_to(shared_data / "cmu_mocap" / name)
    motions = bench_smoothing.load_motions(tmp_path)
    assert [m.name for m in motions] == ["02_01", "131_03"]
    assert all(m.joints2d.shape[1:] == (16, 2) and m.joints3d.shape[1:] == (16, 3) for m in motions)
    for result in bench_smoothing.evaluate(motions, SmoothingConfig()):
        assert result.jitter_filtered < 0.6 * result.jitter_raw, result
        assert result.rmse_filtered < result.rmse_raw, result
        assert 0 < result.lag_filtered_ms < 100, result


def test_no_smoothing_means_no_lag_and_no_change(shared_data, tmp_path):
    (tmp_path / "09_01.bvh").symlink_to(shared_data / "cmu_mocap" / "09_01.bvh")
    motions = bench_smoothing.load_motions(tmp_path)
    # a cutoff far above the frame rate passes everything through
    passthrough = SmoothingConfig(min_cutoff_2d=1e6, min_cutoff_3d=1e6)
    for result in bench_smoothing.evaluate(motions, passthrough):
        assert result.lag_filtered_ms == 0
        assert abs(result.jitter_filtered - result.jitter_raw) < 0.01 * result.jitter_raw
