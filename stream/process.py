"""What every pipeline process shares: start-up, the stop flag, and putting on bounded queues."""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import queue
import signal
import sys
import time
from multiprocessing.sharedctypes import RawValue

from wildpose import logs

_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_PR_SET_NAME = 15  # linux/prctl.h: the calling thread's name, the process's for its main thread


def init_child(log_level: int, weights_label: str | None) -> None:
    """Log like the parent; leave Ctrl-C to the supervisor, which stops the stages in order; and die
    with the supervisor, so a supervisor killed by SIGKILL leaves no orphan stage behind."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    _name_process(multiprocessing.current_process().name)
    logs.setup(verbose=log_level <= logging.DEBUG)
    logs.label_untrained(weights_label)


def _name_process(name: str) -> None:
    """Show the stage in `top`/`ps -o comm` ("wp-infer", "wp-capture-cam"), not "python3" for all."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(_PR_SET_NAME, f"wp-{name}".encode()[:15], 0, 0, 0)


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return
    # The parent died before prctl took effect if we were handed on to another process. Compare with
    # the parent's pid, not with 1: in a container the supervisor itself is often pid 1.
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:
        os._exit(1)


class SharedFlag:
    """A run-wide flag in shared memory: the stop flag, the start gate.

    Not a `multiprocessing.Event`: setting an Event waits for every process sleeping in `wait()` to
    acknowledge, so one waiter killed by SIGKILL (a capture, say) would hang the supervisor's stop.
    A flag that is polled has no such handshake.
    """

    _SLICE_S = 0.02

    def __init__(self) -> None:
        self._value = RawValue("b", 0)

    def set(self) -> None:
        self._value.value = 1

    def is_set(self) -> bool:
        return bool(self._value.value)

    def wait(self, timeout: float) -> bool:
        """Sleep up to `timeout` seconds, waking early once the flag is set; returns the flag."""
        deadline = time.monotonic() + timeout
        while not self.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(remaining, self._SLICE_S))
        return True


def put_until_stopped(out_queue, item, stop_event, poll_s: float = 0.1) -> bool:
    """Put `item` on a bounded queue, waiting while it is full; False if the run is stopping."""
    while not stop_event.is_set():
        try:
            out_queue.put(item, timeout=poll_s)
            return True
        except queue.Full:
            continue
    return False


def release_queue(out_queue, stop_event) -> None:
    """At a stage's exit: after a requested stop, don't wait to flush what the queue still buffers
    (its reader may be gone); after a normal end, do, since the end-of-stream marker is in there."""
    if stop_event.is_set():
        out_queue.cancel_join_thread()


class MemoryTrimmer:
    """Hands freed heap memory back to the system at most once per `interval_s` (glibc's
    `malloc_trim`; a no-op elsewhere).

    The inference runtime allocates and frees its activations on every call, sized by the batch. glibc
    keeps freed blocks of that size in the heap, so a process that once ran a large batch (a stage that
    fell behind) would hold that memory for good; a soak reads it as growth. A trim a second keeps the
    process near what its current batches need, at a cost of a few milliseconds a second.
    """

    def __init__(self, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self.next = 0.0
        try:
            self._trim = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError):
            self._trim = None

    def maybe_trim(self) -> None:
        now = time.monotonic()
        if self._trim is not None and now >= self.next:
            self._trim(0)
            self.next = now + self.interval_s
