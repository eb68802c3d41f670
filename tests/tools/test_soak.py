"""`wildpose soak`: a short soak samples every process of a real run, restarts the stages it kills, and
finds no growth after warm-up."""

from __future__ import annotations

import dataclasses

from support import assert_one_error_line, wildpose

from wildpose.tools import soak

STAGES = ("supervisor", "publish", "infer", "smooth", "preprocess-soak", "capture-soak")


def test_a_short_soak_with_stages_killed_reports_every_process_restarts_them_and_finds_no_growth():
    result = wildpose("soak", "--minutes", "0.4", "--interval", "4", "--kill-every", "10", timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    table = result.stdout
    for stage in STAGES:
        assert f"| {stage} " in table, table
    # no growth includes the descriptors of the supervisor and publish, which hold every restart's pipes
    assert "no growth beyond warm-up" in table
    assert "2 stages killed, 2 restarts" in table, table + result.stderr
    assert "killing capture-soak" in result.stderr and "killing preprocess-soak" in result.stderr
    assert "soak" in result.stderr and "file descriptors" in result.stderr  # progress lines


def test_growth_after_warm_up_is_reported_as_a_leak():
    def sample(i, rss, fds):
        return soak.Sample(5.0 * i, {"infer": rss}, {"infer": fds}, 0)  # every 5 s

    steady = soak._report([sample(i, 200.0, 30) for i in range(10)], poses=10)
    assert steady.passed
    leaking = soak._report([sample(i, 200.0 + 10 * i, 30 + i) for i in range(10)], poses=10)
    assert not leaking.passed
    assert any("resident memory" in leak for leak in leaking.leaks)
    assert any("file descriptors 32 -> 39" in leak for leak in leaking.leaks)


def test_a_soak_too_short_to_sample_is_refused():
    assert_one_error_line(wildpose("soak", "--minutes", "0.05"), "at least 10 s")


def test_kill_every_must_fit_the_soak():
    assert_one_error_line(wildpose("soak", "--minutes", "0.5", "--kill-every", "2"), "--kill-every must be")


def test_what_grows_in_the_first_ten_seconds_is_warm_up_not_a_leak():
    """A short soak (24 s, a sample every 4 s): the engine meets new batch sizes for a while."""
    rss = [150.0, 226.0, 240.0, 262.0, 266.0, 269.0]
    samples = [soak.Sample(4.0 * i, {"infer": mb}, {"infer": 20}, 0) for i, mb in enumerate(rss)]
    report = soak._report(samples, poses=600)
    assert report.passed, report.leaks
    assert report.rows[0].rss_warm_mb == 262.0  # the warm value: the first sample 10 s in


def test_memory_that_swings_with_the_batches_is_not_a_leak_but_a_rising_floor_is():
    """Inference's resident memory as sampled every 2 s on this machine (a soak with stages killed):
    it follows the batch being run. Each window is judged by its lowest sample."""
    swinging = [118.0, 128.0, 243.0, 227.0, 155.0, 193.0, 146.0, 196.0, 280.0, 280.0, 157.0, 150.0, 281.0]
    report = soak._report([soak.Sample(2.0 * i, {"infer": mb}, {"infer": 20}, 0) for i, mb in enumerate(swinging)],
                          poses=600)
    assert report.passed, report.leaks
    rising = [mb + 8.0 * i for i, mb in enumerate(swinging)]
    report = soak._report([soak.Sample(2.0 * i, {"infer": mb}, {"infer": 20}, 0) for i, mb in enumerate(rising)],
                          poses=600)
    assert not report.passed


def test_a_restarted_stage_is_judged_on_its_own_life():
    def life(pid, start, megabytes):
        return [soak.Sample(start + 4.0 * i, {"infer": mb}, {"infer": 20}, 0, {"infer": pid})
                for i, mb in enumerate(megabytes)]

    # the old process was steady; the new one starts small and has not warmed up by the end
    report = soak._report(life(11, 0.0, [200.0, 210.0, 212.0, 211.0, 212.0, 211.0]) + life(12, 24.0, [110.0, 303.0]),
                          poses=600)
    assert report.passed, report.leaks
    assert report.rows[0].lives == 2
    assert report.rows[0].rss_warm_mb is not None  # the old process's life, the newest that could be judged
    assert "-" in soak.format_table(dataclasses.replace(report, rows=[dataclasses.replace(
        report.rows[0], rss_warm_mb=None, rss_end_mb=None, fds_warm=None)]))
    # a restarted process that leaks over a long enough life is caught
    leaking = life(11, 0.0, [200.0, 210.0]) + life(12, 8.0, [110.0, 150.0, 160.0, 200.0, 240.0, 280.0, 320.0, 360.0])
    report = soak._report(leaking, poses=600)
    assert not report.passed and "infer: resident memory" in report.leaks[0]
