"""The capture benchmark runs the pipeline's own capture processes on real video and reads their CPU
time from the OS."""

import pytest
from support import assert_one_error_line, wildpose

from wildpose.errors import ConfigError
from wildpose.tools import bench_capture


def test_one_capture_process_paces_real_video_and_its_cpu_is_measured(shared_data):
    clip = shared_data / "video" / "street_people_720p50.avi"
    rows, label = bench_capture.run_capture_bench(bench_capture.CaptureBenchConfig(counts=(1,), source=clip,
                                                                                   seconds=2.0))
    assert label == "street_people_720p50.avi, 1280x720 at 50 frames/s"
    assert rows, "no row"
    for row in rows:
        assert row.streams == 1
        assert 35 < row.frames_per_s_a_stream < 55  # paced at the clip's 50 frames/s, never faster
        assert row.cpu_ms_a_frame > 0 and row.core_percent_a_stream > 0
        assert row.os_threads_a_process >= 1
    assert "| 1 " in bench_capture.format_table(rows, label)


def test_counts_must_be_positive_and_the_source_must_exist(tmp_path):
    with pytest.raises(ConfigError, match="positive"):
        bench_capture.CaptureBenchConfig(counts=(0,), source=tmp_path)
    with pytest.raises(ConfigError, match="file not found"):
        bench_capture.CaptureBenchConfig(counts=(1,), source=tmp_path / "missing.mp4")


def test_a_missing_source_is_one_line_on_the_command_line(tmp_path):
    result = wildpose("bench", "--capture", "1", "--source", str(tmp_path / "missing.mp4"))
    assert_one_error_line(result, "missing.mp4: file not found")


def test_a_file_that_is_not_video_is_one_line_on_the_command_line(tmp_path):
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video\n")
    assert_one_error_line(wildpose("bench", "--capture", "1", "--source", str(notes)), "notes.mp4")
