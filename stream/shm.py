"""Rings of shared-memory slots that carry frames and crops between processes.

Pixels never travel through pipes: a writer puts an array into slot `seq % slots` and sends only a
small descriptor naming `seq`. Each slot starts with a header written seqlock-style (begin stamp,
data, end stamp), so a reader that was lapped by a fast writer notices and counts an overrun instead
of reading a torn frame. The supervisor creates every ring and unlinks it on any exit, so a crashed
stage never leaks /dev/shm entries.

A new ring's memory is reserved at once (`posix_fallocate`). /dev/shm is a tmpfs, often a small one in
containers (Docker gives 64 MB), and a segment is sparse until written: without the reservation a
run would start and die of SIGBUS the first time a frame filled a page past the limit. A ring whose
slots are seldom full (crops: room for `max_people` people, most frames have one or two) may reserve
only the start of each slot; the rest is taken when a crowd needs it.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from multiprocessing import shared_memory

import numpy as np

from wildpose.errors import PipelineError

_HEADER_WORDS = 8  # begin seq, end seq, ndim, up to 4 dims, spare
_HEADER_BYTES = _HEADER_WORDS * 8
_ALIGN = 64
_EMPTY = -1
SHM_DIR = "/dev/shm"  # where POSIX shared memory lives on Linux


@dataclass(frozen=True)
class RingSpec:
    """What a child needs to attach to a ring: picklable, a few bytes."""

    name: str
    slots: int
    slot_bytes: int


class SlotRing:
    """`slots` slots of up to `slot_bytes` bytes of uint8 array data each."""

    def __init__(self, spec: RingSpec, memory: shared_memory.SharedMemory, owner: bool) -> None:
        self.spec = spec
        self._memory = memory
        self._owner = owner
        self._stride = _HEADER_BYTES + _round_up(spec.slot_bytes)

    @staticmethod
    def bytes_needed(slots: int, slot_bytes: int, reserved_bytes: int | None = None) -> int:
        """The shared memory a ring of `slots` slots of `slot_bytes` takes; with `reserved_bytes`, the
        part `create` reserves when only that much of each slot is reserved."""
        used = slot_bytes if reserved_bytes is None else min(reserved_bytes, slot_bytes)
        return (_HEADER_BYTES + _round_up(used)) * slots

    @classmethod
    def create(cls, name: str, slots: int, slot_bytes: int, reserved_bytes: int | None = None) -> SlotRing:
        """A new ring, its memory reserved (of each slot its header and the first `reserved_bytes`,
        or all of it); `PipelineError` when /dev/shm cannot hold that."""
        spec = RingSpec(name=name, slots=slots, slot_bytes=slot_bytes)
        stride = _HEADER_BYTES + _round_up(slot_bytes)
        memory = shared_memory.SharedMemory(name=name, create=True, size=stride * slots)
        reserved = cls.bytes_needed(1, slot_bytes, reserved_bytes)
        try:
            _reserve(name, [(slot * stride, reserved) for slot in range(slots)] if reserved < stride
                     else [(0, stride * slots)])
        except OSError as exc:
            memory.close()
            memory.unlink()
            if exc.errno != errno.ENOSPC:
                raise
            raise PipelineError(shm_full_message(reserved * slots)) from None
        ring = cls(spec, memory, owner=True)
        for slot in range(slots):
            ring._header(slot)[:2] = _EMPTY
        return ring

    @classmethod
    def attach(cls, spec: RingSpec) -> SlotRing:
        return cls(spec, shared_memory.SharedMemory(name=spec.name), owner=False)

    def _header(self, slot: int) -> np.ndarray:
        return np.ndarray((_HEADER_WORDS,), np.int64, self._memory.buf, offset=slot * self._stride)

    def _data(self, slot: int, shape: tuple[int, ...]) -> np.ndarray:
        return np.ndarray(shape, np.uint8, self._memory.buf, offset=slot * self._stride + _HEADER_BYTES)

    def write(self, seq: int, array: np.ndarray) -> None:
        """Store a uint8 array of at most 4 dimensions under `seq` (overwrites `seq - slots`)."""
        if array.dtype != np.uint8 or array.ndim > 4 or array.nbytes > self.spec.slot_bytes:
            raise ValueError(f"ring {self.spec.name}: cannot store {array.dtype} {array.shape} "
                             f"in slots of {self.spec.slot_bytes} bytes")
        slot = seq % self.spec.slots
        header = self._header(slot)
        header[0] = seq
        header[2] = array.ndim
        header[3:3 + array.ndim] = array.shape
        self._data(slot, array.shape)[...] = array
        header[1] = seq

    def read(self, seq: int) -> np.ndarray | None:
        """A copy of the array stored under `seq`, or None if it was overwritten (or never written)."""
        shape = self._stored_shape(seq)
        if shape is None:
            return None
        copy = self._data(seq % self.spec.slots, shape).copy()
        if self._header(seq % self.spec.slots)[0] != seq:  # a writer started on this slot while we copied
            return None
        return copy

    def read_into(self, seq: int, out: np.ndarray) -> tuple[int, ...] | None:
        """Copy the array stored under `seq` into the first rows of `out` (one copy, no allocation:
        the inference stage reads crops straight into the engine's pinned upload buffer). Returns
        the stored shape, or None if the slot was overwritten or its rows do not fit `out`."""
        shape = self._stored_shape(seq)
        if shape is None or not shape or shape[0] > len(out) or shape[1:] != out.shape[1:]:
            return None
        out[:shape[0]] = self._data(seq % self.spec.slots, shape)
        if self._header(seq % self.spec.slots)[0] != seq:
            return None
        return shape

    def read_flat_into(self, seq: int, out: np.ndarray) -> np.ndarray | None:
        """Copy the array stored under `seq` into the start of the flat uint8 buffer `out` (whole
        frames read straight into an engine's pinned staging); returns that part of `out` shaped as
        stored, or None if the slot was overwritten or the array does not fit."""
        shape = self._stored_shape(seq)
        if shape is None or int(np.prod(shape)) > out.size:
            return None
        view = out[:int(np.prod(shape))].reshape(shape)
        view[...] = self._data(seq % self.spec.slots, shape)
        if self._header(seq % self.spec.slots)[0] != seq:
            return None
        return view

    def _stored_shape(self, seq: int) -> tuple[int, ...] | None:
        header = self._header(seq % self.spec.slots)
        if header[1] != seq:
            return None
        ndim = int(header[2])
        shape = tuple(int(d) for d in header[3:3 + ndim]) if 0 <= ndim <= 4 else ()
        if ndim > 4 or any(d < 0 for d in shape) or int(np.prod(shape)) > self.spec.slot_bytes:
            return None  # a writer is rewriting the header right now
        return shape

    def close(self) -> None:
        self._memory.close()
        if self._owner:
            try:
                self._memory.unlink()
            except FileNotFoundError:
                pass


def _round_up(size: int) -> int:
    return (size + _ALIGN - 1) // _ALIGN * _ALIGN


def shm_free_bytes() -> int | None:
    """Bytes free in /dev/shm, or None where there is no such directory."""
    try:
        stats = os.statvfs(SHM_DIR)
    except OSError:
        return None
    return stats.f_bavail * stats.f_frsize


def shm_full_message(needed: int) -> str:
    free = shm_free_bytes()
    return (f"not enough shared memory: the frame and crop rings need {needed / 2**20:,.0f} MB, "
            f"{SHM_DIR} has {'?' if free is None else f'{free / 2**20:,.0f}'} MB free; give it more (docker run "
            "--shm-size 1g, compose shm_size, a Kubernetes memory emptyDir on /dev/shm) or shrink the rings "
            "(--max-side, [tracking] max_people, [engine] max_batch)")


def _reserve(name: str, ranges: list[tuple[int, int]]) -> None:
    """Allocate the segment's pages in `ranges` (offset, length) now, so running out of room fails here
    and not as a SIGBUS later."""
    path = os.path.join(SHM_DIR, name.lstrip("/"))
    if not hasattr(os, "posix_fallocate") or not os.path.exists(path):
        return  # not Linux: no tmpfs limit to run into
    descriptor = os.open(path, os.O_RDWR)
    try:
        for offset, length in ranges:
            os.posix_fallocate(descriptor, offset, length)
    finally:
        os.close(descriptor)
