"""The supervisor: starts the pipeline's processes, watches them, restarts captures, stops it all.

It owns every shared resource (rings, queues, pipes, counters) so that whatever a child does, even
dying by SIGKILL, nothing leaks: rings are unlinked in a `finally`. Start-up checks come first and
fail with one clear line (a source that cannot deliver a frame, a model that cannot load, a port that
is taken) before any frame moves. A capture that dies is restarted with backoff and resumes after
the last frame it handed on; any other stage dying ends the run with an error, loudly.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import queue
import signal
import time
from dataclasses import dataclass, field

from wildpose import logs
from wildpose.errors import PipelineError, SourceError
from wildpose.stream import capture, detect, infer, preprocess, publish, schema, smooth, sources
from wildpose.stream.config import RunConfig
from wildpose.stream.process import StopFlag
from wildpose.stream.shm import SlotRing
from wildpose.stream.stats import DROP_REASONS, Counters
from wildpose.training import pose3d

log = logging.getLogger(__name__)

_FRAME_SLOTS = 6
# When publish also reads frames (overlay video, thumbnails) a frame must survive the whole pipeline,
# not just capture -> preprocess: more slots, so realtime runs rarely lap it and every-frame runs keep
# enough frames in flight to fill inference batches while capture waits for publish.
_VIEW_FRAME_SLOTS = 16
_READY_TIMEOUT_S = 120.0  # loading a model (and exporting a checkpoint) can take a while
_GPU_READY_TIMEOUT_S = 1200.0  # a first start on a GPU compiles the network or builds a TensorRT engine
_STOP_GRACE_S = 1.5
_WATCH_S = 0.05
_RESTART_BACKOFF_S = (0.5, 10.0)  # first delay, cap
_STABLE_AFTER_S = 10.0  # a capture that ran this long restarts with the shortest delay again


@dataclass
class _Capture:
    stream: str
    process: multiprocessing.process.BaseProcess | None = None
    started: float = 0.0
    backoff: float = _RESTART_BACKOFF_S[0]
    restart_at: float | None = None
    finished: bool = False


@dataclass
class RunSummary:
    """What a run did, per stream: the final counters; plus how it ended."""

    counters: dict[str, dict[str, int]]
    seconds: float
    stopped_by: str  # "end of input", "signal SIGINT", "duration"
    failures: dict[str, str] = field(default_factory=dict)


class Pipeline:
    def __init__(self, config: RunConfig, log_level: int = logging.INFO) -> None:
        self.config = config
        self.log_level = log_level
        self._signal: str | None = None

    def run(self) -> RunSummary:
        config = self.config
        from wildpose.engine import loader

        backend, device = loader.choose(config.engine.backend, config.engine.device, config.engine.model)
        self.engine = dataclasses.replace(config.engine, backend=backend, device=device)
        model_path = loader.resolve(config.engine.model, backend)
        metadata, engine_name = loader.read_metadata(model_path, backend), backend
        logs.label_untrained(metadata.weights)
        self.weights_label = metadata.weights if "untrained" in metadata.weights else None
        log.info("model %s: %s, %s", model_path, metadata.model_config, metadata.weights)
        detector = detect.resolve(config.tracking.detector, config.tracking.detector_score,
                                  config.tracking.detect_max_side)
        log.info("person detector: %s%s", detector.kind, f" ({detector.path})" if detector.path else "")
        sizes, intrinsics = {}, {}
        for source in config.sources:
            sizes[source.stream_id] = sources.probe(source)
            intrinsics[source.stream_id] = source.intrinsics(*sizes[source.stream_id])
            log.info("%s: %s, %dx%d, camera %s", source.stream_id, source.display, *sizes[source.stream_id],
                     intrinsics[source.stream_id].source)
        self.intrinsics = intrinsics
        meta = schema.meta(
            model={"file": model_path if engine_name == "triton" else os.path.basename(model_path),
                   "backend": engine_name,
                   "config": metadata.model_config.to_dict(), "weights": metadata.weights},
            streams={s.stream_id: {"source": s.display, "kind": s.kind,
                                   "intrinsics": intrinsics[s.stream_id].describe()} for s in config.sources},
            scale=pose3d.describe_scale(config.skeleton_sum_mm),
            frames={"hz": config.publish.frames_hz, "width": config.publish.frames_width}
            if config.publish.frames_hz > 0 else None)
        rings: list[SlotRing] = []
        try:
            return self._run(str(model_path), metadata.input_size, meta, sizes, detector, rings)
        finally:
            for ring in rings:
                ring.close()

    def _run(self, model_path: str, input_size: int, meta: dict, sizes: dict[str, tuple[int, int]],
             detector: detect.DetectorSpec, rings: list[SlotRing]) -> RunSummary:
        config = self.config
        ctx = multiprocessing.get_context("spawn")
        streams = tuple(s.stream_id for s in config.sources)
        prefix = f"wp{os.getpid()}"
        counters = {s: Counters() for s in streams}
        for stream_counters in counters.values():
            stream_counters.set("last_seq", -1)
            stream_counters.set("consumed_seq", -1)
            stream_counters.set("released_seq", -1)
        arrays = {s: c.array for s, c in counters.items()}
        stop = StopFlag()
        control = ctx.Queue()
        infer_queue_size = max(4, 2 * len(streams))
        to_infer = ctx.Queue(maxsize=infer_queue_size)
        to_smooth = ctx.Queue(maxsize=16)
        to_publish = ctx.Queue(maxsize=16)
        feedback = {s: ctx.Queue(maxsize=8) for s in streams}
        crop_slots = infer_queue_size + config.engine.max_batch + 3
        frame_rings, crop_rings, pipes = {}, {}, {}
        frame_slots = _VIEW_FRAME_SLOTS if config.publish.uses_frames else _FRAME_SLOTS
        for index, source in enumerate(config.sources):
            width, height = sizes[source.stream_id]
            frame_ring = SlotRing.create(f"{prefix}_{index}_f", frame_slots, width * height * 3)
            crop_ring = SlotRing.create(f"{prefix}_{index}_c", crop_slots,
                                        config.tracking.max_people * input_size ** 2 * 3)
            rings += [frame_ring, crop_ring]
            frame_rings[source.stream_id], crop_rings[source.stream_id] = frame_ring.spec, crop_ring.spec
            pipes[source.stream_id] = ctx.Pipe(duplex=False)  # (read end, write end)
        common = (self.log_level, self.weights_label)
        stages = {
            "publish": ctx.Process(name="publish", target=publish.main, args=(
                publish.PublishArgs(config.publish, streams, meta,
                                    frame_rings if config.publish.uses_frames else {},
                                    frozenset(s.stream_id for s in config.sources if s.every_frame)),
                to_publish, arrays,
                {"preprocess->infer": to_infer, "infer->smooth": to_smooth, "smooth->publish": to_publish},
                stop, control, *common)),
            "smooth": ctx.Process(name="smooth", target=smooth.main, args=(
                smooth.SmoothArgs(streams, input_size, config.smoothing, config.skeleton_sum_mm, self.intrinsics),
                to_smooth, to_publish, feedback, arrays, stop, *common)),
            "infer": ctx.Process(name="infer", target=infer.main, args=(
                infer.InferArgs(model_path, self.engine, input_size, crop_rings,
                                frozenset(s.stream_id for s in config.sources if s.every_frame)),
                to_infer, to_smooth, arrays, stop,
                control, *common)),
        }
        for source in config.sources:
            stream = source.stream_id
            stages[f"preprocess-{stream}"] = ctx.Process(name=f"preprocess-{stream}", target=preprocess.main, args=(
                preprocess.PreprocessArgs(stream, frame_rings[stream], crop_rings[stream], input_size,
                                          config.tracking, detector, latest_only=not source.every_frame,
                                          cv_threads=max(1, (os.cpu_count() or 1) // len(config.sources))),
                pipes[stream][0], to_infer, feedback[stream], arrays[stream], stop, *common))
        captures = {s.stream_id: _Capture(s.stream_id) for s in config.sources}
        started = time.monotonic()
        previous_handlers = self._install_signal_handlers()
        try:
            self._start(stages["publish"])
            self._wait_for("listening", "publish", control, stages["publish"], _READY_TIMEOUT_S)
            if config.publish.wait_subscribers:
                log.info("waiting for %d subscriber(s) on %s", config.publish.wait_subscribers,
                         config.publish.endpoint)
            self._wait_for("ready", "publish", control, stages["publish"], None)
            self._start(stages["infer"])
            self._wait_for("ready", "infer", control, stages["infer"],
                           _READY_TIMEOUT_S if self.engine.device == "cpu" else _GPU_READY_TIMEOUT_S)
            for stage in stages.values():
                if stage.pid is None:
                    self._start(stage)
            start_capture = lambda c: self._start_capture(ctx, c, frame_rings, pipes, arrays, stop, control, common)  # noqa: E731
            for capture_state in captures.values():
                start_capture(capture_state)
            stopped_by, failures = self._watch(stages, captures, control, start_capture, counters, started)
        finally:
            self._shutdown(stop, list(stages.values()) + [c.process for c in captures.values() if c.process])
            self._restore_signal_handlers(previous_handlers)
        seconds = time.monotonic() - started
        summary = RunSummary({s: c.snapshot() for s, c in counters.items()}, seconds, stopped_by, failures)
        self._log_final(summary)
        return summary

    # -- processes -------------------------------------------------------------------------------

    def _start(self, process: multiprocessing.process.BaseProcess) -> None:
        process.start()
        log.info("started %s (pid %d)", process.name, process.pid)

    def _start_capture(self, ctx, state: _Capture, frame_rings, pipes, arrays, stop, control, common) -> None:
        source = next(s for s in self.config.sources if s.stream_id == state.stream)
        resume_after = Counters(arrays[state.stream]).get("last_seq")
        state.process = ctx.Process(name=f"capture-{state.stream}", target=capture.main, args=(
            capture.CaptureArgs(source, frame_rings[state.stream], resume_after,
                                hold_for_publish=source.every_frame and self.config.publish.uses_frames),
            pipes[state.stream][1], arrays[state.stream], stop, control, *common))
        self._start(state.process)
        state.started = time.monotonic()
        state.restart_at = None

    def _wait_for(self, event: str, name: str, control, process, timeout: float | None) -> None:
        """Wait for `name` to report `event` on the control queue (a fatal report raises)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while deadline is None or time.monotonic() < deadline:
            if self._signal:
                raise PipelineError(f"interrupted ({self._signal}) while starting {name}")
            try:
                kind, stage, detail = control.get(timeout=0.1)
            except queue.Empty:
                if not process.is_alive():
                    raise PipelineError(f"the {name} process exited during start-up "
                                        f"(exit code {process.exitcode}); see the log above") from None
                continue
            if kind == "fatal":
                raise PipelineError(detail)
            if kind == event and stage == name:
                log.info("%s %s: %s", name, event, detail)
                return
        raise PipelineError(f"the {name} process did not report {event!r} within {timeout:.0f} s")

    def _watch(self, stages, captures: dict[str, _Capture], control, start_capture, counters,
               started: float) -> tuple[str, dict[str, str]]:
        failures: dict[str, str] = {}
        duration = self.config.duration_s
        while True:
            while True:
                try:
                    kind, who, detail = control.get_nowait()
                except queue.Empty:
                    break
                if kind == "fatal":
                    raise PipelineError(detail)
                if kind == "source_failed":
                    failures[who] = detail
            if self._signal:
                return f"signal {self._signal}", failures
            if duration is not None and time.monotonic() - started >= duration:
                return "duration", failures
            publisher = stages["publish"]
            if not publisher.is_alive():
                if publisher.exitcode == 0:
                    return "end of input", failures
                raise PipelineError(f"the publish process died (exit code {publisher.exitcode}); the run "
                                    "stopped")
            for name, stage in stages.items():
                if name != "publish" and not stage.is_alive() and stage.exitcode != 0:
                    raise PipelineError(f"the {name} process died (exit code {stage.exitcode}); the run "
                                        "stopped, see the log above")
            now = time.monotonic()
            for state in captures.values():
                self._check_capture(state, now, start_capture, counters[state.stream])
            time.sleep(_WATCH_S)

    def _check_capture(self, state: _Capture, now: float, start_capture, counters: Counters) -> None:
        if state.finished:
            return
        if state.restart_at is not None:
            if now >= state.restart_at:
                counters.add("capture_restarts")
                start_capture(state)
            return
        process = state.process
        if process.is_alive():
            return
        if process.exitcode in (capture.EXIT_END_OF_FILE, capture.EXIT_SOURCE_FAILED):
            state.finished = True
            return
        if now - state.started >= _STABLE_AFTER_S:
            state.backoff = _RESTART_BACKOFF_S[0]
        reason = (f"signal {signal.Signals(-process.exitcode).name}" if process.exitcode < 0
                  else f"exit code {process.exitcode}")
        log.warning("%s died (%s); restarting in %.1f s", process.name, reason, state.backoff)
        state.restart_at = now + state.backoff
        state.backoff = min(state.backoff * 2, _RESTART_BACKOFF_S[1])

    def _shutdown(self, stop, processes) -> None:
        stop.set()
        began = time.monotonic()
        deadline = began + _STOP_GRACE_S
        for process in processes:
            if process.pid is not None:
                process.join(max(0.0, deadline - time.monotonic()))
        for process in processes:
            if process.pid is not None and process.is_alive():
                log.warning("%s did not stop in time; terminating it", process.name)
                process.terminate()
                process.join(0.2)
                if process.is_alive():
                    process.kill()
                    process.join(0.2)
        log.info("all stages stopped in %.2f s", time.monotonic() - began)

    # -- signals and reporting -------------------------------------------------------------------

    def _install_signal_handlers(self) -> dict:
        def handler(signum, _frame) -> None:
            self._signal = signal.Signals(signum).name

        return {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

    @staticmethod
    def _restore_signal_handlers(previous: dict) -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    def _log_final(self, summary: RunSummary) -> None:
        for stream, counts in summary.counters.items():
            drops = {reason: counts[f"drop_{reason}"] for reason in DROP_REASONS if counts[f"drop_{reason}"]}
            in_flight = counts["captured"] - counts["published"] - sum(drops.values())
            rate = counts["published"] / summary.seconds if summary.seconds > 0 else 0.0
            log.info("final stats %s: captured %d, published %d, dropped %d%s, in flight %d, "
                     "%.1f frames/s over %.1f s, restarts %d, reconnects %d (stopped by %s)",
                     stream, counts["captured"], counts["published"], sum(drops.values()),
                     f" {drops}" if drops else "",
                     in_flight, rate, summary.seconds, counts["capture_restarts"], counts["reconnects"],
                     summary.stopped_by)


def run(config: RunConfig, log_level: int = logging.INFO) -> RunSummary:
    """Run the pipeline until its sources end, `duration_s` passes or SIGINT/SIGTERM arrives.

    Raises `SourceError` if a file source failed mid-run (after everything before the failure was
    published), `PipelineError` if a stage could not start or died.
    """
    summary = Pipeline(config, log_level).run()
    if summary.failures:
        raise SourceError("; ".join(summary.failures.values()))
    return summary
