"""Pose feedback, smoothing -> preprocess: where each tracked person's pose put them in a frame.

One pipe a stream, written and read without blocking, in whole messages. It was a
`multiprocessing.Queue` a stream, whose `put` wakes a feeder thread that takes the GIL to pickle and
write. With 48 streams a smoothing process ran 48 such threads, and it took 418-449 µs of CPU a frame
against 269-282 now (`wildpose bench --smooth-stage 48`; README, Benchmarks). Here the smoothing process
writes each message itself, one `write` of at most `PIPE_BUF` bytes, which POSIX makes atomic: the
message goes in whole or, when preprocess is behind and the pipe is full, not at all (as a full queue
dropped it). A process killed at any instant leaves no torn message, and no lock held. The reader takes
everything waiting with `read`s of 1 MiB and keeps any partial tail for the next time (there is none
while writes are whole, but a read may end mid-message when more is waiting than it asked for).

A message: seq (int64), then per person track id (int64), pose box x0, y0, x1, y1 (float64; NaN: the
pose is out of the frame) and confidence (float64). A frame with more people than fit in `PIPE_BUF`
goes as several messages of the same seq; the tracker takes each person's newest feedback alone.
"""

from __future__ import annotations

import os
import select
import struct

import numpy as np

Poses = list[tuple[int, np.ndarray | None, float]]  # (track id, pose box or None: out of the frame, confidence)

_HEADER = struct.Struct("<Iq")  # bytes of people that follow, seq
_PERSON = np.dtype([("track_id", "<i8"), ("box", "<f8", (4,)), ("confidence", "<f8")])
PEOPLE_A_MESSAGE = (select.PIPE_BUF - _HEADER.size) // _PERSON.itemsize
_PIPE_BYTES = 16 * 1024  # a few frames of a crowd, or a hundred frames of one person: then new ones are dropped
_READ_BYTES = 1 << 20
_F_SETPIPE_SZ = 1031  # Linux fcntl


def open_writer(connection) -> int:
    """The non-blocking file descriptor smoothing writes a stream's feedback to (the write end of a
    `multiprocessing.Pipe(duplex=False)`)."""
    fd = connection.fileno()
    os.set_blocking(fd, False)
    try:
        import fcntl

        fcntl.fcntl(fd, _F_SETPIPE_SZ, _PIPE_BYTES)
    except (ImportError, OSError):  # not Linux, or a limit: the default size only holds more
        pass
    return fd


def send(fd: int, seq: int, poses: Poses) -> bool:
    """Write the feedback of frame `seq`; False when (part of) it was dropped because preprocess is
    behind or gone."""
    people = np.zeros(len(poses), _PERSON)
    for index, (track_id, box, confidence) in enumerate(poses):
        people[index] = (track_id, np.nan if box is None else box, confidence)
    sent = True
    for start in range(0, max(len(people), 1), PEOPLE_A_MESSAGE):
        body = people[start:start + PEOPLE_A_MESSAGE].tobytes()
        try:
            os.write(fd, _HEADER.pack(len(body), seq) + body)
        except (BlockingIOError, BrokenPipeError):
            sent = False
    return sent


class FeedbackReader:
    """Preprocess's end of a stream's feedback pipe (the read end of a `multiprocessing.Pipe`)."""

    def __init__(self, connection) -> None:
        self._connection = connection  # kept: closing it would close the descriptor
        self._fd = connection.fileno()
        os.set_blocking(self._fd, False)
        self._pending = b""
        self._closed = False

    def messages(self) -> list[tuple[int, Poses]]:
        """Every whole message waiting, oldest first: (seq, poses)."""
        data = self._pending
        while not self._closed:
            try:
                chunk = os.read(self._fd, _READ_BYTES)
            except BlockingIOError:
                break
            if not chunk:  # every writer has gone
                self._closed = True
                break
            data += chunk
        found = []
        offset = 0
        while len(data) - offset >= _HEADER.size:
            size, seq = _HEADER.unpack_from(data, offset)
            if len(data) - offset - _HEADER.size < size:
                break
            people = np.frombuffer(data, _PERSON, size // _PERSON.itemsize, offset + _HEADER.size)
            found.append((seq, [(int(p["track_id"]), None if np.isnan(p["box"][0]) else p["box"].copy(),
                                 float(p["confidence"])) for p in people]))
            offset += _HEADER.size + size
        self._pending = data[offset:]
        return found
