"""The start gate: a capture opens its source, says so, and waits for the supervisor before pacing
frames, so dozens of streams started together begin together instead of while others still start."""

import logging
import multiprocessing
import os

from wildpose.stream import capture
from wildpose.stream.config import SourceConfig
from wildpose.stream.process import SharedFlag
from wildpose.stream.shm import SlotRing
from wildpose.stream.stats import Counters


def test_a_capture_says_it_is_ready_and_sends_no_frame_until_the_gate_opens(walker_clip):
    ctx = multiprocessing.get_context("spawn")
    ring = SlotRing.create(f"wp_test_gate_{os.getpid()}", 8, 1920 * 1080 * 3)
    frames_out, frames_in = ctx.Pipe(duplex=False)
    stop, gate, control = SharedFlag(), SharedFlag(), ctx.Queue()
    source = SourceConfig(str(walker_clip), "walker")
    worker = ctx.Process(target=capture.main, args=(
        capture.CaptureArgs(source, ring.spec, resume_after=-1), frames_in, Counters().array, stop, gate, control,
        logging.WARNING, None))
    worker.start()
    try:
        assert control.get(timeout=60) == ("ready", "capture-walker", str(walker_clip))
        assert not frames_out.poll(1.0), "a frame was sent before the gate opened"
        gate.set()
        assert frames_out.poll(30), "no frame after the gate opened"
        assert frames_out.recv().seq == 0
    finally:
        stop.set()
        worker.join(timeout=10)
        ring.close()
