"""`--publish-raw`: each pose also goes out before the One Euro filter, on pose.raw/<stream>, so a
subscriber can run its own filter; the smoothed topic stays the default."""

from __future__ import annotations

import numpy as np
from support import receive_poses

from wildpose.stream.client import PoseMessage, PoseSubscriber


def test_raw_and_smoothed_poses_arrive_side_by_side_and_the_raw_ones_jitter_more(pipeline, walker_clip):
    run = pipeline("--source", f"walker={walker_clip}", "--every-frame", "--detector", "none", "--publish-raw",
                   "--wait-subscribers", "3")  # pose/ and pose.raw/ of one, pose/ of the other
    smoothed, raw = {}, {}
    with PoseSubscriber(run.endpoint, topics=["pose", "raw"]) as both, \
            PoseSubscriber(run.endpoint, topics=["pose"]) as default:
        while True:
            message = both.recv(timeout=1.0)
            if message is None and run.process.poll() is not None:
                break
            if isinstance(message, PoseMessage) and message.people:
                (raw if message.raw else smoothed)[message.seq] = message.people[0]
        plain = receive_poses(default, 48, timeout=5)
    assert run.wait() == 0, run.log
    assert sorted(raw) == sorted(smoothed) == list(range(48))
    assert not any(p.raw for p in plain) and len(plain) == 48  # the default topic: smoothed only
    first = smoothed[0], raw[0]
    assert np.allclose(first[0].joints2d, first[1].joints2d, atol=1e-3)  # a filter starts at its input

    def jitter(people):
        points = np.array([people[s].joints3d for s in range(48)])
        return float(np.sqrt(np.mean(np.diff(points, n=2, axis=0) ** 2)))

    print(f"3D jitter (RMS second difference): raw {jitter(raw):.1f} mm, smoothed {jitter(smoothed):.1f} mm")
    assert jitter(smoothed) < jitter(raw)


def test_stats_report_the_filters_lag(pipeline, walker_clip):
    from wildpose.stream.client import StatsMessage

    run = pipeline("--source", f"walker={walker_clip}", "--every-frame", "--detector", "none",
                   "--stats-interval", "0.25", "--wait-subscribers", "1")
    stats = []
    with PoseSubscriber(run.endpoint, topics=["stats"]) as subscriber:
        while True:
            message = subscriber.recv(timeout=1.0)
            if message is None and run.process.poll() is not None:
                break
            if isinstance(message, StatsMessage):
                stats.append(message)
    assert run.wait() == 0, run.log
    lags = [s.filter_lag_ms for s in stats if s.filter_lag_ms]
    assert lags, [s.filter_lag_ms for s in stats]
    for lag in lags:
        # 1 / (2 pi min_cutoff) = 159 ms is the most a 1 Hz filter can lag
        assert 0 < lag["2d"]["p50"] <= 160 and 0 < lag["3d"]["p50"] <= 160 and lag["2d"]["n"] > 0
    print("filter lag ms:", lags[-1])
