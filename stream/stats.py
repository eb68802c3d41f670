"""Counters and latency windows: what the pipeline did, so no frame is lost silently.

Each stream has one shared array of int64 counters. Every counter has exactly one writing process
(named below), so increments need no lock; anyone may read. (After a restart of the stages the
supervisor settles a few of them, while their writers are dead.) Frames in = frames published + frames
dropped (by reason) + frames in flight, and in flight is zero once a file has ended.
"""

from __future__ import annotations

from multiprocessing.sharedctypes import RawArray

import numpy as np

# name -> the process that writes it
COUNTERS: dict[str, str] = {
    "captured": "capture",  # frames decoded from the source
    "drop_decode_error": "capture",  # packets or frames the decoder rejected
    "reconnects": "capture",  # live source reconnections
    "last_seq": "capture",  # the last frame number handed on (a restarted file capture resumes after it)
    "preprocessed": "preprocess",
    "consumed_seq": "preprocess",  # the last frame taken from the ring (every-frame backpressure)
    "drop_stale": "preprocess",  # skipped for a newer frame (realtime: the latest frame wins)
    "drop_frame_overrun": "preprocess",  # frame slot overwritten before preprocess read it
    "detections": "preprocess",  # detector runs
    "next_track_id": "preprocess",  # the next person id (a restarted preprocess goes on from it: no id reused)
    "inferred": "infer",
    "drop_crop_overrun": "infer",  # crop slot overwritten before infer read it
    "crop_read_seq": "infer",  # the last crop slot infer is done with (preprocess waits before reusing one)
    "drop_engine_unreachable": "infer",  # a remote engine (Triton) did not answer: no pose for the frame
    "smoothed": "smooth",
    "published": "publish",
    "drop_publish": "publish",  # ZeroMQ refused the message (send queue full)
    "released_seq": "publish",  # the last frame publish is done with (every-frame overlays hold capture)
    "ended": "publish",  # 1 once the stream's end went out
    "thumbnails": "publish",  # frame/<stream> thumbnails sent
    "thumbnails_too_big": "publish",  # not sent: over the message limit even at the lowest JPEG quality
    "frames_lapped": "publish",  # frame slot overwritten before publish read it: no thumbnail/overlay frame
    "overlay_written": "publish",  # overlay video frames written (by publish's writer thread)
    "overlay_skipped": "publish",  # realtime: the overlay writer was busy, the frame is not in the video
    "capture_restarts": "supervisor",
    "pipeline_restarts": "supervisor",  # the stages between the sources and publish restarted together
    # live frames lost with such a restart (in the dead stages' hands or queues); a file in every-frame
    # mode loses none: it is decoded again from the last frame published
    "drop_restart": "supervisor",
}
_INDEX = {name: i for i, name in enumerate(COUNTERS)}
DROP_REASONS = tuple(name[len("drop_"):] for name in COUNTERS if name.startswith("drop_"))


class Counters:
    def __init__(self, array=None) -> None:
        self.array = array if array is not None else RawArray("q", len(COUNTERS))

    def add(self, name: str, amount: int = 1) -> None:
        self.array[_INDEX[name]] += amount

    def set(self, name: str, value: int) -> None:
        self.array[_INDEX[name]] = value

    def get(self, name: str) -> int:
        return self.array[_INDEX[name]]

    def snapshot(self) -> dict[str, int]:
        return {name: self.array[i] for name, i in _INDEX.items()}

    def drops(self) -> dict[str, int]:
        return {reason: self.array[_INDEX[f"drop_{reason}"]] for reason in DROP_REASONS}


class LinkDepths:
    """How many items wait on each link between stages, for the stats messages.

    The supervisor holds the queues and samples their depth; the pipes from smoothing to publish have
    no depth to ask, so each smoothing process counts what it sent (from 0 again after a restart) and
    publish what it took since it took those pipes. One shared array, each slot with one writer at a time.
    """

    QUEUES = ("preprocess->infer", "infer->smooth")  # frames; inference batches (lists of frames)
    PIPE = "smooth->publish"
    _SENT = len(QUEUES)  # the first slot of what each smoothing process sent

    def __init__(self, array=None, *, pipes: int = 1) -> None:
        """`pipes`: one a smoothing process (a new array; an attached one already has its slots)."""
        self.array = array if array is not None else RawArray("q", len(self.QUEUES) + pipes)
        if array is None:
            self.array[:len(self.QUEUES)] = [-1] * len(self.QUEUES)

    def sample(self, queues: dict) -> None:
        """Supervisor: the queues' depths now (-1 where the system cannot say: macOS). A link served
        by several processes (infer->smooth) is a list of queues: their sum."""
        for index, name in enumerate(self.QUEUES):
            link = queues[name] if isinstance(queues[name], list) else [queues[name]]
            try:
                self.array[index] = sum(q.qsize() for q in link)
            except NotImplementedError:
                self.array[index] = -1

    def count_sent(self, pipe: int = 0) -> None:
        self.array[self._SENT + pipe] += 1

    def restart_pipe(self) -> None:
        """Supervisor, before new smoothing processes start on new pipes."""
        self.array[self._SENT:] = [0] * (len(self.array) - self._SENT)

    def report(self, taken: int) -> dict[str, int]:
        depths = {name: self.array[i] for i, name in enumerate(self.QUEUES) if self.array[i] >= 0}
        depths[self.PIPE] = max(0, sum(self.array[self._SENT:]) - taken)
        return depths


class LatencyWindow:
    """Latency samples (seconds) per stage since the last report."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {}

    def add(self, stage: str, seconds: float) -> None:
        self.samples.setdefault(stage, []).append(seconds)

    def report(self) -> dict[str, dict[str, float]]:
        """stage -> {"p50": ms, "p95": ms, "n": count}, then starts a new window."""
        out = {}
        for stage, values in self.samples.items():
            if values:
                p50, p95 = np.percentile(values, [50, 95])
                out[stage] = {"p50": round(float(p50) * 1000, 3), "p95": round(float(p95) * 1000, 3),
                              "n": len(values)}
        self.samples = {}
        return out


class LatencyHistogram:
    """Capture-to-publish latency of one stream, as cumulative-ready bucket counts for Prometheus
    (`wildpose run --metrics`): one shared array, written by publish alone, read by the supervisor.

    Slots: a count per bucket of `BOUNDS_S` (latency <= bound, not cumulative), one for the rest, the
    sum of all latencies in seconds. Doubles count exactly to 2^53 frames.
    """

    BOUNDS_S = (0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)

    def __init__(self, array=None) -> None:
        self.array = array if array is not None else RawArray("d", len(self.BOUNDS_S) + 2)

    def add(self, seconds: float) -> None:
        index = int(np.searchsorted(self.BOUNDS_S, seconds))  # the first bound >= seconds
        self.array[index] += 1.0
        self.array[-1] += seconds

    def cumulative(self) -> tuple[list[tuple[float, int]], float]:
        """`([(bound, frames with latency <= bound), ..., (inf, all frames)], sum of seconds)`."""
        counts = list(self.array[:-1])
        running, buckets = 0, []
        for bound, count in zip((*self.BOUNDS_S, float("inf")), counts, strict=True):
            running += int(count)
            buckets.append((bound, running))
        return buckets, float(self.array[-1])
