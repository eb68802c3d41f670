"""The inference stage: one process that batches the crops of every source through the engine.

The first ticket waits at most `batch_wait_ms` for others, so a light load keeps its latency and a
heavy one fills batches (up to `max_batch` crops). Tickets leave in the order they came, ends of
stream included, so each stream's frames stay in order, each batch as one list: at a thousand frames
a second, a queue hand-off per frame costs the stages on both ends more than their own work.
With several smoothing processes each gets the part of a batch that is its streams'. With an engine
that overlaps batches (torch: CUDA streams, or a worker thread on the CPU), batch N + 1 is read and
submitted while batch N runs, and N's outputs are collected after that.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import time
from dataclasses import dataclass

import numpy as np

from wildpose.engine.base import Pending
from wildpose.errors import EngineUnreachableError, WildPoseError
from wildpose.stream import process
from wildpose.stream.config import EngineConfig
from wildpose.stream.frames import EndOfStream, FrameTicket
from wildpose.stream.shm import RingSpec, SlotRing
from wildpose.stream.stats import Counters

log = logging.getLogger(__name__)

_POLL_S = 0.1


@dataclass(frozen=True)
class InferArgs:
    model_path: str  # resolved by the supervisor: never None here
    engine: EngineConfig  # backend and device resolved by the supervisor: never "auto" here
    input_size: int
    crop_rings: dict[str, RingSpec]
    every_frame: frozenset[str] = frozenset()  # streams that wait for a lost remote engine instead of dropping
    smoother_of: dict[str, int] | None = None  # stream -> its smoothing process's queue (None: all to the first)


def main(args: InferArgs, in_queue, out_queues: list, counters_arrays, stop_event, control_queue,
         log_level: int, weights_label: str | None) -> None:
    """`out_queues`: one a smoothing process."""
    process.init_child(log_level, weights_label)
    from wildpose.engine import load

    config = args.engine
    try:
        calibration = None
        if config.precision == "int8":
            from wildpose.stream.calibration import calibration_batches

            calibration = calibration_batches(config.int8_calibration, args.input_size)
        # On a GPU the host side only copies: one thread, so that idle OpenMP workers spinning after
        # each copy do not take the cores that capture and preprocessing of many streams need.
        threads = config.threads if config.threads is not None or config.device == "cpu" else 1
        engine = load(args.model_path, config.backend, device=config.device, threads=threads,
                      spin=config.spin, precision=config.precision,
                      compile=config.compile if config.device == "cuda" else None, freeze=config.freeze,
                      branch_streams=config.branch_streams, flip_test=config.flip_test,
                      calibration=calibration, timeout_s=config.timeout_s)
        engine.prepare()  # CUDA: compile and capture every batch size before the first frame
    except WildPoseError as exc:
        control_queue.put(("fatal", "infer", str(exc)))
        return
    overlap = config.overlap and engine.overlaps
    control_queue.put(("ready", "infer", engine.describe() + (", overlapping batches" if overlap else "")))
    rings = {stream: SlotRing.attach(spec) for stream, spec in args.crop_rings.items()}
    counters = {stream: Counters(array) for stream, array in counters_arrays.items()}
    ended: set[str] = set()
    wait_s = args.engine.batch_wait_ms / 1000.0
    trimmer = process.MemoryTrimmer()
    outage = _Outage(args.every_frame, stop_event)
    in_flight: _Started | None = None  # submitted, outputs not collected (with `overlap` only)

    def hand_off(started: _Started) -> bool:
        batch = _finish(started, counters)
        ended.update(item.stream for item in batch if isinstance(item, EndOfStream))
        # a batch in one message (a smoothing process's part of it): one pickle and one queue
        # hand-off instead of one per frame
        for out_queue, part in zip(out_queues, _split(batch, args.smoother_of, len(out_queues)), strict=True):
            if part and not process.put_until_stopped(out_queue, part, stop_event):
                return False
        return True

    try:
        while ended != set(rings) and not stop_event.is_set():
            trimmer.maybe_trim()
            try:  # with a batch in flight, only what is queued already: the batch must not wait for more
                first = in_queue.get(timeout=_POLL_S) if in_flight is None else in_queue.get_nowait()
            except queue.Empty:
                if in_flight is not None:
                    started, in_flight = in_flight, None
                    if not hand_off(started):
                        return
                continue
            # The engine runs batch N while batch N + 1 is gathered, read and submitted: its outputs
            # are collected after that, so the host's work overlaps the device's.
            batch = _gather(in_queue, first, args.engine.max_batch, 0.0 if in_flight is not None else wait_s)
            started = _start(engine, batch, rings, counters, outage, args.engine.device_crops)
            if in_flight is not None and not hand_off(in_flight):
                return
            in_flight = None
            if overlap and started.pending is not None:
                in_flight = started
            elif not hand_off(started):
                return
    finally:
        if in_flight is not None:  # stopping: let the device finish with the buffers before they are freed
            with contextlib.suppress(Exception):
                in_flight.pending.result()
        for ring in rings.values():
            ring.close()
        engine.close()
        for out_queue in out_queues:
            process.release_queue(out_queue, stop_event)


def _gather(in_queue, first, max_batch: int, wait_s: float) -> list:
    """`first` plus whatever arrives within `wait_s`, until the tickets hold `max_batch` crops."""
    batch = [first]
    crops = len(first.people) if isinstance(first, FrameTicket) else 0
    deadline = time.monotonic() + wait_s
    while crops < max_batch:
        remaining = deadline - time.monotonic()
        try:
            item = in_queue.get(timeout=remaining) if remaining > 0 else in_queue.get_nowait()
        except queue.Empty:
            break
        batch.append(item)
        if isinstance(item, FrameTicket):
            crops += len(item.people)
    return batch


def _split(batch: list, smoother_of: dict[str, int] | None, count: int) -> list[list]:
    """The batch's tickets (and ends of stream) per smoothing process, each part in batch order."""
    if count == 1:
        return [batch]
    parts: list[list] = [[] for _ in range(count)]
    for item in batch:
        parts[smoother_of[item.stream]].append(item)
    return parts


class _Outage:
    """A remote engine's loss: logged once, its return logged with the frames lost in between.

    A batch of every-frame streams only (files that promise every frame) waits for the engine and
    loses nothing; any other batch is dropped and counted, since a live frame is worthless later.
    """

    RETRY_S = 0.25

    def __init__(self, every_frame: frozenset[str], stop_event) -> None:
        self.every_frame = every_frame
        self.stop_event = stop_event
        self.since: float | None = None
        self.lost = 0

    def should_wait(self, error: EngineUnreachableError, owners: list) -> bool:
        """True (after a pause) when the batch should be tried again rather than dropped."""
        if not owners or any(ticket.stream not in self.every_frame for ticket in owners) \
                or self.stop_event.is_set():
            return False
        if self.since is None:
            self.since, self.lost = time.monotonic(), 0
            log.warning("inference engine lost: %s; every-frame streams wait for it", error)
        self.stop_event.wait(self.RETRY_S)
        return not self.stop_event.is_set()

    def failed(self, error: EngineUnreachableError, frames: int) -> None:
        if self.since is None:
            self.since, self.lost = time.monotonic(), 0
            log.warning("inference engine lost: %s; frames with people are dropped (engine_unreachable) "
                        "until it answers", error)
        self.lost += frames

    def answered(self) -> None:
        if self.since is not None:
            log.warning("inference engine back after %.1f s; %d frames lost (engine_unreachable)",
                        time.monotonic() - self.since, self.lost)
            self.since = None


@dataclass
class _Started:
    """A batch read and submitted: its items in order, the tickets with people, the engine's pending run."""

    kept: list
    owners: list
    pending: Pending | None


def _start(engine, batch: list, rings: dict[str, SlotRing], counters: dict[str, Counters],
           outage: _Outage, device_crops: bool = False) -> _Started:
    """Submit every person of every ticket as one engine batch.

    Crops (or, with `device_crops`, whole frames) are copied from the rings straight into the engine's
    staging buffer (pinned memory on a GPU). Tickets whose crops were overwritten before they could be
    read are left out (each counted as a `crop_overrun` drop), and so are those a remote engine did not
    answer for (`engine_unreachable`).
    """
    kept, owners, submit = (_read_frames if device_crops else _read_crops)(engine, batch, rings, counters)
    if not owners:
        return _Started(kept, owners, None)
    while True:
        try:
            pending = submit()
            if not engine.overlaps:  # a remote engine answers here: its loss is handled here
                pending = Pending.finished(pending.result())
            break
        except EngineUnreachableError as error:
            if outage.should_wait(error, owners):
                continue
            outage.failed(error, len(owners))
            for ticket in owners:
                counters[ticket.stream].add("drop_engine_unreachable")
            lost = {id(ticket) for ticket in owners}
            return _Started([item for item in kept if id(item) not in lost], [], None)
    outage.answered()
    return _Started(kept, owners, pending)


def _finish(started: _Started, counters: dict[str, Counters]) -> list:
    """Wait for the batch's outputs, attach them to its people; returns the batch's items in order."""
    if started.pending is not None:
        out = started.pending.result()
        index = 0
        for ticket in started.owners:
            for person in ticket.people:
                person.joints2d_crop = out.joints2d_crop[index]
                person.conf = out.conf[index]
                person.depth = out.depth[index]
                index += 1
    now = time.monotonic()
    for item in started.kept:
        if isinstance(item, FrameTicket):
            item.times["infer"] = now
            counters[item.stream].add("inferred")
    return started.kept


def _read_crops(engine, batch: list, rings: dict[str, SlotRing], counters: dict[str, Counters]):
    """(kept items, tickets with people, the engine call) with every ticket's crops in the staging buffer."""
    rows = sum(len(item.people) for item in batch if isinstance(item, FrameTicket))
    staging = engine.staging(rows) if rows else None
    kept, owners, filled = [], [], 0
    for item in batch:
        if isinstance(item, FrameTicket) and item.people:
            shape = rings[item.stream].read_into(item.crop_seq, staging[filled:])
            counters[item.stream].set("crop_read_seq", item.crop_seq)  # its slot may be written again
            if shape is None or shape[0] != len(item.people):
                counters[item.stream].add("drop_crop_overrun")
                continue
            owners.append(item)
            filled += shape[0]
        kept.append(item)
    return kept, owners, lambda: engine.submit_crops(staging[:filled])


def _read_frames(engine, batch: list, rings: dict[str, SlotRing], counters: dict[str, Counters]):
    """(kept items, tickets with people, the engine call) with the frames of the tickets with people in
    the engine's frame staging buffer, for the engine to cut their crops."""
    owners_bytes = sum(rings[item.stream].spec.slot_bytes for item in batch
                       if isinstance(item, FrameTicket) and item.people)
    staging = engine.frame_staging(owners_bytes) if owners_bytes else None
    kept, owners, frames, affines, filled = [], [], [], [], 0
    for item in batch:
        if isinstance(item, FrameTicket) and item.people:
            frame = rings[item.stream].read_flat_into(item.crop_seq, staging[filled:])
            counters[item.stream].set("crop_read_seq", item.crop_seq)  # its slot may be written again
            if frame is None or frame.ndim != 3:
                counters[item.stream].add("drop_crop_overrun")
                continue
            owners.append(item)
            frames.append(frame)
            affines.append(np.stack([person.affine for person in item.people]))
            filled += frame.nbytes
        kept.append(item)
    return kept, owners, lambda: engine.submit_frames(frames, affines)
