"""The preprocess stage: one process per source, turning frames into person crops.

It takes tickets from capture's pipe, reads each frame from the source's frame ring, asks the
`RegionTracker` where the people are (previous pose, or the detector), cuts square crops at the
model's input size into the crop ring and passes the ticket to inference (with `device_crops` it puts
the whole frame there instead, and inference cuts the crops where its model runs). In realtime mode only the
newest waiting ticket is processed and the others are counted as `stale` drops. Pose feedback from
the smoothing stage arrives on its own pipe (`stream/feedback.py`).
"""

from __future__ import annotations

import collections
import logging
import time
from dataclasses import dataclass

import cv2
import numpy as np

from wildpose.stream import crop, detect, feedback, process
from wildpose.stream.config import TrackingConfig
from wildpose.stream.frames import EndOfStream
from wildpose.stream.shm import RingSpec, SlotRing
from wildpose.stream.stats import Counters
from wildpose.stream.tracking import PeopleTracker

log = logging.getLogger(__name__)

_POLL_S = 0.1
_CROP_SLOT_POLL_S = 0.002
_QUIET_LOG_S = 60.0


@dataclass(frozen=True)
class PreprocessArgs:
    stream: str
    frame_ring: RingSpec
    crop_ring: RingSpec
    input_size: int
    tracking: TrackingConfig
    detector: detect.DetectorSpec
    latest_only: bool  # realtime: skip to the newest frame; every-frame: process all in order
    # OpenCV threads of this process: its share of the cores. OpenCV's pool spin-waits after each
    # call, so dozens of streams with a full pool each starve the single-process stages.
    cv_threads: int = 0  # 0: OpenCV's default
    first_track_id: int = 1  # after a restart: the next id of the process before, so no id is reused
    device_crops: bool = False  # inference cuts the crops where its model runs: hand over the whole frame


def main(args: PreprocessArgs, in_pipe, out_queue, feedback_pipe, counters_array, stop_event, control_queue,
         log_level: int, weights_label: str | None) -> None:
    process.init_child(log_level, weights_label)
    if args.cv_threads:
        cv2.setNumThreads(args.cv_threads)
    frames, crops = SlotRing.attach(args.frame_ring), SlotRing.attach(args.crop_ring)
    counters = Counters(counters_array)
    tracker = PeopleTracker(detect.build(args.detector), args.tracking, args.input_size)
    tracker.next_id = args.first_track_id
    poses_seen = feedback.FeedbackReader(feedback_pipe)
    crop_seq = 0
    quiet = _QuietWatch(args.stream, args.detector.kind)
    waiting: collections.deque = collections.deque()
    control_queue.put(("ready", f"preprocess-{args.stream}", ""))
    try:
        while not stop_event.is_set():
            if not waiting and not in_pipe.poll(_POLL_S):
                continue
            while in_pipe.poll(0):
                waiting.append(in_pipe.recv())
            if args.latest_only:
                _skip_to_newest(waiting, counters)
            ticket = waiting.popleft()
            if isinstance(ticket, EndOfStream):
                process.put_until_stopped(out_queue, ticket, stop_event)
                break
            for seq, poses in poses_seen.messages():
                tracker.on_poses(seq, poses)
            frame = frames.read(ticket.seq)
            counters.set("consumed_seq", ticket.seq)
            if frame is None:
                counters.add("drop_frame_overrun")
                continue
            detections_before = tracker.detections_run
            ticket.people = tracker.regions(frame, ticket.seq)
            counters.add("detections", tracker.detections_run - detections_before)
            counters.set("next_track_id", tracker.next_id)
            quiet.observe(bool(ticket.people))
            if ticket.people:
                if not wait_for_crop_slot(crops, counters, crop_seq, stop_event):
                    break
                if args.device_crops:
                    crops.write(crop_seq, frame)
                else:
                    crops.write(crop_seq, np.stack([crop.cut(frame, person.affine, args.input_size)
                                                    for person in ticket.people]))
                ticket.crop_seq = crop_seq
                crop_seq += 1
            ticket.times["preprocess"] = time.monotonic()
            counters.add("preprocessed")
            if not process.put_until_stopped(out_queue, ticket, stop_event):
                break
    finally:
        frames.close()
        crops.close()
        process.release_queue(out_queue, stop_event)


def wait_for_crop_slot(crops: SlotRing, counters: Counters, crop_seq: int, stop_event) -> bool:
    """Wait until inference is done with what the slot of `crop_seq` held (the crops of `crop_seq -
    slots`), so no frame's crops are overwritten unread however far one stream runs ahead (the ring
    is smaller than the shared inference queue when there are many streams); False if stopped."""
    while counters.get("crop_read_seq") < crop_seq - crops.spec.slots:
        if stop_event.wait(_CROP_SLOT_POLL_S):
            return False
    return True


class _QuietWatch:
    """Says so in the log, once a minute, while the detector finds no one (the stream goes on,
    publishing frames with an empty people list)."""

    def __init__(self, stream: str, detector: str, interval_s: float = _QUIET_LOG_S) -> None:
        self.stream, self.detector, self.interval_s = stream, detector, interval_s
        self.since = self.next_report = time.monotonic()

    def observe(self, anyone: bool) -> None:
        now = time.monotonic()
        if anyone:
            if now - self.since >= self.interval_s:
                log.info("%s: a person is in view again after %.0f s", self.stream, now - self.since)
            self.since = self.next_report = now
        elif now - self.next_report >= self.interval_s:
            log.info("%s: no person found for %.0f s (detector %s); frames are still published, with no "
                     "one in them", self.stream, now - self.since, self.detector)
            self.next_report = now


def _skip_to_newest(waiting: collections.deque, counters: Counters) -> None:
    """Drop all but the newest waiting frame, counting each as stale; an end of stream stays queued
    behind the frame before it."""
    while len(waiting) > 1 and not isinstance(waiting[1], EndOfStream):
        waiting.popleft()
        counters.add("drop_stale")
