"""Smoothing shared out over several processes: each stream in one, every frame once and in order,
and a killed smoothing process replaced with the other stages like any other."""

from __future__ import annotations

import multiprocessing
import os
import signal

import pytest
from support import receive_poses

from wildpose.stream.client import PoseSubscriber
from wildpose.stream.smooth import shard_streams
from wildpose.stream.stats import LinkDepths

STREAMS = tuple(f"s{index:02d}" for index in range(40))


def test_every_stream_goes_to_exactly_one_smoothing_process():
    shards = shard_streams(STREAMS, 3, cpus=16)
    assert len(shards) == 3
    assert sorted(s for shard in shards for s in shard) == sorted(STREAMS)


@pytest.mark.parametrize("streams, processes, cpus, expected", [
    (STREAMS[:1], 0, 16, 1),  # one stream, one process
    (STREAMS[:16], 0, 16, 1),  # 16 streams a process
    (STREAMS[:17], 0, 16, 2),
    (STREAMS, 0, 16, 3),
    (STREAMS, 0, 8, 2),  # at most a quarter of the cores...
    (STREAMS, 0, 2, 1),  # ...but always one
    (STREAMS[:3], 8, 2, 3),  # asked for: never more processes than streams
])
def test_the_number_of_smoothing_processes(streams, processes, cpus, expected):
    assert len(shard_streams(streams, processes, cpus)) == expected


def test_link_depths_add_up_over_the_smoothing_processes():
    ctx = multiprocessing.get_context("spawn")
    to_infer, to_smooth = ctx.Queue(), [ctx.Queue(), ctx.Queue()]
    for index, batches in enumerate((2, 3)):
        for _ in range(batches):
            to_smooth[index].put(["a batch"])
    to_infer.put("a frame")
    depths = LinkDepths(pipes=2)
    shared = LinkDepths(depths.array)  # as a smoothing process attaches to it
    for pipe, sent in ((0, 4), (1, 6)):
        for _ in range(sent):
            shared.count_sent(pipe)
    depths.sample({"preprocess->infer": to_infer, "infer->smooth": to_smooth})
    assert depths.report(taken=7) == {"preprocess->infer": 1, "infer->smooth": 5, "smooth->publish": 3}
    depths.restart_pipe()
    assert depths.report(taken=0)["smooth->publish"] == 0


def test_two_smoothing_processes_publish_every_frame_of_every_stream_in_order_across_a_kill(pipeline, walker_clip):
    frames = 96  # two passes of the clip
    run = pipeline("--source", f"left={walker_clip}", "--source", f"right={walker_clip}", "--every-frame",
                   "--loop", "--detector", "none", "--smooth-processes", "2", "--wait-subscribers", "1")
    with PoseSubscriber(run.endpoint, topics=["pose"]) as subscriber:
        before = receive_poses(subscriber, 20)
        assert len(before) == 20, run.log
        assert "2 smoothing processes share the 2 streams" in run.log
        mark = len(run.lines)
        os.kill(run.pid_of("smooth-2"), signal.SIGKILL)
        run.wait_for_log(r"stages restarted after smooth-2 died", after=mark)
        run.pid_of("smooth-1", after=mark)  # both started again
        run.pid_of("smooth-2", after=mark)
        poses = before + receive_poses(subscriber, 2 * frames - len(before), timeout=90)
        while min(sum(p.stream == s for p in poses) for s in ("left", "right")) < frames:  # one may lead
            more = receive_poses(subscriber, 10, timeout=30)
            assert more, run.log
            poses += more
    for stream in ("left", "right"):
        seqs = [p.seq for p in poses if p.stream == stream][:frames]
        assert seqs == list(range(frames)), f"{stream}: {seqs}\n{run.log}"  # every frame, in order, once
    assert run.stop(signal.SIGINT) == 0
    assert "Traceback" not in run.log
