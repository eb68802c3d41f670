"""The smoothing-stage benchmark runs the pipeline's own smoothing process, fed as inference feeds it,
and reads its CPU time from the OS."""

import pytest
from support import assert_one_error_line, wildpose

from wildpose.errors import ConfigError
from wildpose.tools import bench_smooth_stage


def test_one_smoothing_process_smooths_every_frame_of_eight_streams_without_a_thread_a_stream():
    (row,) = bench_smooth_stage.run_smooth_stage_bench(bench_smooth_stage.SmoothStageBenchConfig(counts=(8,),
                                                                                                 seconds=1.0))
    assert row.streams == 8
    assert row.frames == 8 * 30  # a batch of every stream each 1/30 s for 1 s, every frame smoothed
    assert row.cpu_us_a_frame > 0 and row.core_percent > 0
    assert row.os_threads < 8  # feedback is written by the process itself: no feeder thread a stream
    assert "| 8 " in bench_smooth_stage.format_table([row])


def test_counts_must_be_positive():
    with pytest.raises(ConfigError, match="positive"):
        bench_smooth_stage.SmoothStageBenchConfig(counts=(0,))
    assert_one_error_line(wildpose("bench", "--smooth-stage", "0"), "positive")
