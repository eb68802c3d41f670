"""Preprocess never overwrites crops that inference has not read: with many streams a stream's crop
ring is smaller than the shared inference queue, so a stream that runs ahead waits for its oldest
crops to be read instead (every frame of an every-frame file still arrives)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from wildpose.stream.preprocess import wait_for_crop_slot
from wildpose.stream.shm import SlotRing
from wildpose.stream.stats import Counters


@pytest.fixture()
def ring():
    created = SlotRing.create(f"wp_test_{np.random.default_rng().integers(1 << 30)}", slots=3, slot_bytes=64)
    yield created
    created.close()


def waiting(ring, counters, crop_seq: int, stop: threading.Event) -> tuple[threading.Thread, dict]:
    outcome: dict = {}
    thread = threading.Thread(target=lambda: outcome.setdefault("free", wait_for_crop_slot(ring, counters,
                                                                                            crop_seq, stop)))
    thread.start()
    return thread, outcome


def test_a_slot_is_written_again_only_once_inference_has_read_what_it_held(ring):
    counters, stop = Counters(), threading.Event()
    counters.set("crop_read_seq", -1)
    assert all(wait_for_crop_slot(ring, counters, seq, stop) for seq in range(3))  # the empty ring: at once
    thread, outcome = waiting(ring, counters, 3, stop)  # slot 0 holds crop 0, unread
    thread.join(0.3)
    assert thread.is_alive() and not outcome
    counters.set("crop_read_seq", 0)
    thread.join(5)
    assert outcome == {"free": True}
    assert wait_for_crop_slot(ring, counters, 3, stop)


def test_a_stop_ends_the_wait(ring):
    counters, stop = Counters(), threading.Event()
    counters.set("crop_read_seq", -1)
    thread, outcome = waiting(ring, counters, 7, stop)
    thread.join(0.2)
    assert thread.is_alive()
    stop.set()
    thread.join(5)
    assert outcome == {"free": False}
