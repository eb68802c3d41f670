"""The supervisor: starts the pipeline's processes, watches them, restarts what dies, stops it all.

It owns every shared resource (rings, queues, pipes, counters) so that whatever a child does, even
dying by SIGKILL, nothing leaks: rings are unlinked in a `finally`. Start-up checks come first and
fail with one clear line (a file that cannot deliver a frame, no source that can, a model that cannot
load, a port that is taken) before any frame moves.

A live source that is down at start holds back neither the start nor the other streams, as long as
one source opens: its capture retries it as it would after a lost connection.

Restarts, with backoff: a capture that dies is restarted alone and resumes after the last frame it
handed on (its pipe carries whole tickets only). A preprocess, inference or smoothing process that
dies may leave a queue behind it with a held lock or half a message, so the supervisor replaces all
of them, with new queues and pipes, behind the same publisher: subscribers stay connected, what the
dead stages finished is still published, a file in every-frame mode is decoded again from the last
frame published (nothing lost, nothing twice), and a live source's frames lost in between are
counted (`restart`). Stages that cannot start again, or die again and again, end the run loudly.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import queue
import secrets
import signal
import time
from dataclasses import dataclass, field

from wildpose import __version__, logs
from wildpose.errors import PipelineError, SourceError
from wildpose.stream import capture, detect, health, infer, preprocess, publish, schema, smooth, sources
from wildpose.stream.config import RunConfig
from wildpose.stream.process import SharedFlag
from wildpose.stream.shm import SlotRing, shm_free_bytes, shm_full_message
from wildpose.stream.stats import DROP_REASONS, Counters, LatencyHistogram, LinkDepths
from wildpose.training import pose3d

log = logging.getLogger(__name__)

_FRAME_SLOTS = 6
# When publish also reads frames (overlay video, thumbnails) a frame must survive the whole pipeline,
# not just capture -> preprocess: more slots, so realtime runs rarely lap it and every-frame runs keep
# enough frames in flight to fill inference batches while capture waits for publish.
_VIEW_FRAME_SLOTS = 16
_CROP_QUEUE_SHARE = 16  # crop slots a stream has for frames waiting in the inference queue
_READY_TIMEOUT_S = 120.0  # loading a model (and exporting a checkpoint) can take a while
_GPU_READY_TIMEOUT_S = 1200.0  # a first start on a GPU compiles the network or builds a TensorRT engine
_START_GATE_TIMEOUT_S = 20.0  # streams whose processes are not up by then do not hold the others back
_STOP_GRACE_S = 1.5
_WATCH_S = 0.05
_RESTART_BACKOFF_S = (0.5, 10.0)  # first delay, cap
_STABLE_AFTER_S = 10.0  # a stage that ran this long restarts with the shortest delay again
_MAX_QUICK_DEATHS = 5  # stages dying this often in a row, each soon after a start, end the run
_DRAIN_TIMEOUT_S = 10.0  # publish finishing what the dead stages had passed on


@dataclass
class _Backoff:
    """Restart delays: 0.5 s doubling to 10 s, back to 0.5 s once a process ran 10 s; and how many
    deaths in a row came sooner than that."""

    delay: float = _RESTART_BACKOFF_S[0]
    quick_deaths: int = 0

    def after_death(self, ran_s: float) -> float:
        """The delay before this restart (the next one doubles)."""
        if ran_s >= _STABLE_AFTER_S:
            self.delay, self.quick_deaths = _RESTART_BACKOFF_S[0], 0
        self.quick_deaths += 1
        delay, self.delay = self.delay, min(self.delay * 2, _RESTART_BACKOFF_S[1])
        return delay


@dataclass
class _Capture:
    stream: str
    process: multiprocessing.process.BaseProcess | None = None
    started: float = 0.0
    backoff: _Backoff = field(default_factory=_Backoff)
    restart_at: float | None = None
    finished: bool = False


@dataclass
class _Stages:
    """One set of the stages between the sources and publish, with the queues and pipes between them.

    A set lives until one of its processes (other than a capture) dies; then it is replaced whole.
    """

    number: int  # 1, 2, ...: publish reports each set's pipe as drained by this number
    captures: dict[str, _Capture]
    capture_pipes: dict  # stream -> (read end, write end): kept here so a restarted capture reuses it
    queues: dict  # link name -> queue, for the depths in the stats
    # smooth -> preprocess, per stream, (read end, write end) (`stream/feedback.py`). Held for the set's
    # life: a process still starting must find them open.
    feedback: dict = field(default_factory=dict)
    processes: dict = field(default_factory=dict)  # infer, smooth (or smooth-1, smooth-2, ...), preprocess-<stream>
    started: float = 0.0

    def all_processes(self) -> list:
        return list(self.processes.values()) + [c.process for c in self.captures.values() if c.process]


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
        model_path = loader.resolve(config.engine.model, backend, flip_test=config.engine.flip_test)
        metadata, engine_name = loader.read_metadata(model_path, backend, config.engine.flip_test), backend
        logs.label_untrained(metadata.weights)
        self.weights_label = metadata.weights if "untrained" in metadata.weights else None
        log.info("model %s: %s, %s", model_path, metadata.model_config, metadata.weights)
        detector = detect.resolve(config.tracking.detector, config.tracking.detector_score,
                                  config.tracking.detect_max_side)
        log.info("person detector: %s%s", detector.kind, f" ({detector.path})" if detector.path else "")
        sizes, intrinsics = self._probe_sources()
        meta = schema.meta(
            model={"file": model_path if engine_name == "triton" else os.path.basename(model_path),
                   "backend": engine_name,
                   "config": metadata.model_config.to_dict(), "weights": metadata.weights,
                   "flip_test": metadata.flip_test},
            streams={s.stream_id: {"source": s.display, "kind": s.kind,
                                   "intrinsics": intrinsics[s.stream_id].describe() if s.stream_id in intrinsics
                                   else None} for s in config.sources},
            scale=pose3d.describe_scale(config.skeleton_sum_mm),
            frames={"hz": config.publish.frames_hz, "width": config.publish.frames_width}
            if config.publish.frames_hz > 0 else None)
        self.model_path, self.input_size, self.detector = str(model_path), metadata.input_size, detector
        rings: list[SlotRing] = []
        try:
            return self._run(meta, sizes, rings)
        finally:
            for ring in rings:
                ring.close()

    def _create_rings(self, prefix: str, sizes: dict[str, tuple[int, int]], rings: list[SlotRing]) -> None:
        """Each source's frame and crop rings, their memory reserved (appended to `rings` as they are
        made, so they are unlinked whatever happens); one line when /dev/shm cannot hold them."""
        config = self.config
        # a stream's crops wait in its ring from preprocess until inference reads them; the ring holds
        # a share of the shared queue (preprocess waits rather than overwrite what is unread), so
        # shared memory grows with the streams, not with their square
        crop_slots = min(self.infer_queue_size, _CROP_QUEUE_SHARE) + config.engine.max_batch + 3
        self.frame_rings, self.crop_rings = {}, {}
        frame_slots = _VIEW_FRAME_SLOTS if config.publish.uses_frames else _FRAME_SLOTS
        # per source (frame slot bytes, crop slot bytes, crop bytes reserved a slot): a crop slot has
        # room for max_people crops and is reserved for one (most frames hold one or two people); with
        # crops cut on the device it holds the whole frame instead, and a frame fills its slot
        # (a source that was down at start gets room for a 16:9 frame at its largest; capture scales
        # down a frame that does not fit)
        ring_bytes = []
        for source in config.sources:
            width, height = sizes.get(source.stream_id, (source.max_side, source.max_side * 9 // 16))
            frame_bytes, one_crop = width * height * 3, self.input_size ** 2 * 3
            ring_bytes.append((frame_bytes, frame_bytes, None) if config.engine.device_crops
                              else (frame_bytes, config.tracking.max_people * one_crop, one_crop))
        def total(crops_full: bool) -> int:
            return sum(SlotRing.bytes_needed(frame_slots, frame_bytes)
                       + SlotRing.bytes_needed(crop_slots, crop_bytes, None if crops_full else crop_reserved)
                       for frame_bytes, crop_bytes, crop_reserved in ring_bytes)

        reserved, at_most = total(crops_full=False), total(crops_full=True)
        free = shm_free_bytes()
        if free is not None and reserved > free:
            raise PipelineError(shm_full_message(reserved))
        log.info("shared memory: %.0f MB reserved for the frame and crop rings, up to %.0f MB with %d people in "
                 "every frame (%s MB free)", reserved / 2**20, at_most / 2**20, config.tracking.max_people,
                 "?" if free is None else f"{free / 2**20:,.0f}")
        if free is not None and at_most > free:
            log.warning("shared memory: crowds of %d in many frames would need %.0f MB, more than the %.0f MB free "
                        "in /dev/shm; give it more, or lower [tracking] max_people", config.tracking.max_people,
                        at_most / 2**20, free / 2**20)
        for index, (source, (frame_bytes, crop_bytes, crop_reserved)) in enumerate(
                zip(config.sources, ring_bytes, strict=True)):
            rings.append(SlotRing.create(f"{prefix}_{index}_f", frame_slots, frame_bytes))
            rings.append(SlotRing.create(f"{prefix}_{index}_c", crop_slots, crop_bytes, crop_reserved))
            self.frame_rings[source.stream_id], self.crop_rings[source.stream_id] = rings[-2].spec, rings[-1].spec

    def _probe_sources(self) -> tuple[dict[str, tuple[int, int]], dict]:
        """Each source's frame size and camera, from its first frame. A live source that cannot be
        opened while another can (or with `wait_for_sources`) does not stop the run: it is left out
        here (its capture retries with backoff, its frames are sized then); a file that cannot be
        read, or no source at all, ends the run with one line."""
        sizes, intrinsics, down = {}, {}, []
        for source in self.config.sources:
            try:
                sizes[source.stream_id] = sources.probe(source)
            except SourceError as exc:
                if not source.is_live:
                    raise
                down.append((source, exc))
                continue
            intrinsics[source.stream_id] = source.intrinsics(*sizes[source.stream_id])
            log.info("%s: %s, %dx%d, camera %s", source.stream_id, source.display, *sizes[source.stream_id],
                     intrinsics[source.stream_id].source)
        if down and not sizes and not self.config.wait_for_sources:
            raise SourceError(f"{down[0][1]} (--wait-for-sources starts anyway and waits for live sources)")
        for source, exc in down:
            log.warning("%s: %s; starting without it: it is retried with backoff (up to %g s apart) and its "
                        "poses follow once it answers", source.stream_id, exc, source.reconnect_max_s)
        return sizes, intrinsics

    def _run(self, meta: dict, sizes: dict[str, tuple[int, int]], rings: list[SlotRing]) -> RunSummary:
        config = self.config
        ctx = self.ctx = multiprocessing.get_context("spawn")
        streams = tuple(s.stream_id for s in config.sources)
        # pid and a random part: pipelines in containers that share /dev/shm (a Kubernetes pod, docker
        # --ipc host) are each pid 1 of their own pid namespace
        prefix = f"wp{os.getpid()}_{secrets.token_hex(4)}"
        self.counters = {s: Counters() for s in streams}
        for stream_counters in self.counters.values():
            for name in ("last_seq", "consumed_seq", "released_seq", "crop_read_seq"):
                stream_counters.set(name, -1)
        self.arrays = {s: c.array for s, c in self.counters.items()}
        self.histograms = {s: LatencyHistogram() for s in streams} if config.metrics else {}
        self.stop = SharedFlag()
        self.start_gate = SharedFlag()
        self.control = ctx.Queue()
        self.held: list[tuple] = []  # control messages that came while waiting for another
        self.drained: set[int] = set()
        self.failures: dict[str, str] = {}
        self.smooth_shards = smooth.shard_streams(streams, config.smoothing.processes, os.cpu_count() or 1)
        # decoding, colour conversion and crops each run on the host's cores shared out among the streams:
        # a thread a core in every stream costs synchronisation on every frame and gains nothing when all
        # streams are busy
        self.threads_per_stream = max(1, (os.cpu_count() or 1) // len(streams))
        if len(self.smooth_shards) > 1:
            log.info("%d smoothing processes share the %d streams", len(self.smooth_shards), len(streams))
        self.depths = LinkDepths(pipes=len(self.smooth_shards))
        self.common = (self.log_level, self.weights_label)
        self.infer_queue_size = max(4, 2 * len(streams))
        self._create_rings(prefix, sizes, rings)
        handover_in, self.handover = ctx.Pipe(duplex=False)
        publisher = ctx.Process(name="publish", target=publish.main, args=(
            publish.PublishArgs(config.publish, streams, meta,
                                self.frame_rings if config.publish.uses_frames else {},
                                frozenset(s.stream_id for s in config.sources if s.every_frame),
                                {s.stream_id: s for s in config.sources},
                                {s: h.array for s, h in self.histograms.items()}),
            handover_in, self.arrays, self.depths.array, self.stop, self.control, *self.common))
        self.stages: _Stages | None = None
        self.health = self._serve_metrics(meta) if config.metrics else None
        started = time.monotonic()
        previous_handlers = self._install_signal_handlers()
        try:
            self._start(publisher)
            handover_in.close()
            self._wait_for("listening", "publish", publisher, _READY_TIMEOUT_S)
            if config.publish.wait_subscribers:
                log.info("waiting for %d subscriber(s) on %s", config.publish.wait_subscribers,
                         config.publish.endpoint)
            self._wait_for("ready", "publish", publisher, None)
            self._start_stages(1)
            stopped_by = self._watch(publisher, started)
        finally:
            self._observe("stopping")
            self._shutdown([publisher] + (self.stages.all_processes() if self.stages else []))
            self._restore_signal_handlers(previous_handlers)
            self.handover.close()
            if self.health is not None:
                self.health.close()
        seconds = time.monotonic() - started
        summary = RunSummary({s: c.snapshot() for s, c in self.counters.items()}, seconds, stopped_by,
                             self.failures)
        self._log_final(summary)
        return summary

    def _serve_metrics(self, meta: dict) -> health.MetricsServer:
        """The HTTP endpoint of `--metrics`, bound before any process starts (a taken port is one line)."""
        config = self.config
        streams = [health.StreamInfo(s.stream_id, s.display, s.is_live, s.read_timeout_s) for s in config.sources]
        labels = {"version": __version__, "model": meta["model"]["file"], "backend": meta["model"]["backend"],
                  "pipeline": config.name or ""}
        self.health_state = health.Health(streams, self.counters, self.histograms, labels)
        return health.MetricsServer(config.metrics, self.health_state)

    def _observe(self, phase: str) -> None:
        """Tell the metrics endpoint where the run is (with --metrics)."""
        if self.health is not None:
            finished = {s for s, c in self.stages.captures.items() if c.finished} if self.stages else set()
            self.health_state.observe(phase, self.failures, finished)

    # -- processes -------------------------------------------------------------------------------

    def _start(self, process: multiprocessing.process.BaseProcess) -> None:
        process.start()
        log.info("started %s (pid %d)", process.name, process.pid)

    def _start_stages(self, number: int) -> None:
        """Start a set of stages on new queues and pipes: inference first (it may take minutes to
        load), then smoothing (one or more processes, each stream in one), whose pipes go to publish, then
        preprocessing and the captures."""
        config, ctx = self.config, self.ctx
        streams = tuple(s.stream_id for s in config.sources)
        shards = self.smooth_shards
        to_infer = ctx.Queue(maxsize=self.infer_queue_size)
        to_smooth = [ctx.Queue(maxsize=4) for _ in shards]  # inference batches (each process's part)
        feedback = {s: ctx.Pipe(duplex=False) for s in streams}
        stages = self.stages = _Stages(number, {s: _Capture(s) for s in streams},
                                       {s: ctx.Pipe(duplex=False) for s in streams},
                                       {"preprocess->infer": to_infer, "infer->smooth": to_smooth}, feedback)
        infer_process = stages.processes["infer"] = ctx.Process(name="infer", target=infer.main, args=(
            infer.InferArgs(self.model_path, self.engine, self.input_size, self.crop_rings,
                            frozenset(s.stream_id for s in config.sources if s.every_frame),
                            {stream: index for index, shard in enumerate(shards) for stream in shard}),
            to_infer, to_smooth, self.arrays, self.stop, self.control, *self.common))
        self._start(infer_process)
        self._wait_for("ready", "infer", infer_process,
                       _READY_TIMEOUT_S if self.engine.device == "cpu" else _GPU_READY_TIMEOUT_S)
        self.depths.restart_pipe()
        from_smooth = []
        for index, shard in enumerate(shards):
            name = "smooth" if len(shards) == 1 else f"smooth-{index + 1}"
            reading, to_publish = ctx.Pipe(duplex=False)
            stages.processes[name] = ctx.Process(name=name, target=smooth.main, args=(
                smooth.SmoothArgs(shard, self.input_size, config.smoothing, config.skeleton_sum_mm,
                                  {s.stream_id: s for s in config.sources if s.stream_id in shard}, shard=index),
                to_smooth[index], to_publish, {s: feedback[s][1] for s in shard}, self.arrays, self.depths.array,
                self.stop, *self.common))
            self._start(stages.processes[name])
            to_publish.close()  # smoothing holds the only writing end: publish reads to its end if it dies
            from_smooth.append(reading)
        try:
            self.handover.send(from_smooth)
        except OSError:
            raise PipelineError("the publish process died; the run stopped, see the log above") from None
        finally:
            for reading in from_smooth:
                reading.close()
        for source in config.sources:
            stream = source.stream_id
            stages.processes[f"preprocess-{stream}"] = process = ctx.Process(
                name=f"preprocess-{stream}", target=preprocess.main, args=(
                    preprocess.PreprocessArgs(stream, self.frame_rings[stream], self.crop_rings[stream],
                                              self.input_size, config.tracking, self.detector,
                                              latest_only=not source.every_frame,
                                              cv_threads=self.threads_per_stream,
                                              first_track_id=max(1, self.counters[stream].get("next_track_id")),
                                              device_crops=self.engine.device_crops),
                    stages.capture_pipes[stream][0], to_infer, feedback[stream][0], self.arrays[stream], self.stop,
                    self.control, *self.common))
            self._start(process)
        for state in stages.captures.values():
            self._start_capture(state)
        if not self.start_gate.is_set():
            self._open_start_gate(stages)
        stages.started = time.monotonic()

    def _open_start_gate(self, stages: _Stages) -> None:
        """Let every capture begin once all preprocess and capture processes are up (each source
        opened or tried once). Dozens of streams take seconds to start; streams that paced frames
        meanwhile would drop them for want of CPU and count the start-up as their latency."""
        waiting = {name for name in stages.processes if name.startswith("preprocess-")}
        waiting |= {f"capture-{stream}" for stream in stages.captures}
        deadline = time.monotonic() + _START_GATE_TIMEOUT_S
        while waiting and time.monotonic() < deadline and not self._signal:
            try:
                kind, stage, detail = control = self.control.get(timeout=0.1)
            except queue.Empty:
                waiting = {name for name in waiting if self._stage_process(stages, name).is_alive()}
                continue
            if kind == "ready" and stage in waiting:
                waiting.discard(stage)
            else:
                self.held.append(control)
        if waiting:
            log.warning("starting the streams without %s (not up after %.0f s)", ", ".join(sorted(waiting)),
                        _START_GATE_TIMEOUT_S)
        self.start_gate.set()
        log.info("all %d streams start", len(stages.captures))

    @staticmethod
    def _stage_process(stages: _Stages, name: str):
        if name.startswith("capture-"):
            return stages.captures[name.removeprefix("capture-")].process
        return stages.processes[name]

    def _start_capture(self, state: _Capture) -> None:
        source = next(s for s in self.config.sources if s.stream_id == state.stream)
        counters = self.counters[state.stream]
        state.process = self.ctx.Process(name=f"capture-{state.stream}", target=capture.main, args=(
            capture.CaptureArgs(source, self.frame_rings[state.stream], counters.get("last_seq"),
                                hold_for_publish=source.every_frame and self.config.publish.uses_frames,
                                ended=bool(counters.get("ended")), threads=self.threads_per_stream),
            self.stages.capture_pipes[state.stream][1], self.arrays[state.stream], self.stop, self.start_gate,
            self.control, *self.common))
        self._start(state.process)
        state.started = time.monotonic()
        state.restart_at = None

    def _control_messages(self):
        """Control messages: those held back while waiting for another first, then new ones."""
        while self.held:
            yield self.held.pop(0)
        while True:
            try:
                yield self.control.get_nowait()
            except queue.Empty:
                return

    def _wait_for(self, event: str, name: str, process, timeout: float | None) -> None:
        """Wait for `name` to report `event` on the control queue (a fatal report raises); other
        messages are kept for the watch loop."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while deadline is None or time.monotonic() < deadline:
            if self._signal:
                raise PipelineError(f"interrupted ({self._signal}) while starting {name}")
            try:
                kind, stage, detail = control = self.control.get(timeout=0.1)
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
            self.held.append(control)
        raise PipelineError(f"the {name} process did not report {event!r} within {timeout:.0f} s")

    def _read_control(self) -> None:
        for kind, who, detail in self._control_messages():
            if kind == "fatal":
                raise PipelineError(detail)
            if kind == "source_failed":
                self.failures[who] = detail
            elif kind == "drained":
                self.drained.add(detail)

    def _watch(self, publisher, started: float) -> str:
        duration = self.config.duration_s
        restarts = _Backoff()
        while True:
            self._read_control()
            if self._signal:
                return f"signal {self._signal}"
            if duration is not None and time.monotonic() - started >= duration:
                return "duration"
            if not publisher.is_alive():
                if publisher.exitcode == 0:
                    return "end of input"
                raise PipelineError(f"the publish process died (exit code {publisher.exitcode}); the run "
                                    "stopped")
            stages = self.stages  # never None here: a restart leaves it so only on a signal or publish's death
            self.depths.sample(stages.queues)
            dead = next((p for p in stages.processes.values() if not p.is_alive() and p.exitcode != 0), None)
            if dead is not None:
                self._restart_stages(dead, restarts, publisher)
                continue
            now = time.monotonic()
            for state in stages.captures.values():
                self._check_capture(state, now)
            self._observe("running")
            time.sleep(_WATCH_S)

    def _check_capture(self, state: _Capture, now: float) -> None:
        if state.finished:
            return
        if state.restart_at is not None:
            if now >= state.restart_at:
                self.counters[state.stream].add("capture_restarts")
                self._start_capture(state)
            return
        process = state.process
        if process.is_alive():
            return
        if process.exitcode in (capture.EXIT_END_OF_FILE, capture.EXIT_SOURCE_FAILED):
            state.finished = True
            return
        delay = state.backoff.after_death(now - state.started)
        log.warning("%s died (%s); restarting in %.1f s", process.name, _exit_reason(process), delay)
        state.restart_at = now + delay

    def _restart_stages(self, dead, restarts: _Backoff, publisher) -> None:
        """Replace the whole set of stages behind publish after `dead` died (see the module's doc)."""
        old = self.stages
        delay = restarts.after_death(time.monotonic() - old.started)
        reason = _exit_reason(dead)
        if restarts.quick_deaths > _MAX_QUICK_DEATHS:
            raise PipelineError(f"the {dead.name} process died {restarts.quick_deaths} times in a row within "
                                f"{_STABLE_AFTER_S:.0f} s of a start (last: {reason}); the run stopped, see the "
                                "log above")
        log.warning("%s died (%s); restarting the stages between the sources and publish in %.1f s",
                    dead.name, reason, delay)
        self._observe("restarting")
        for process in old.all_processes():
            if process.is_alive():
                process.kill()
        for process in old.all_processes():
            process.join(5)
        self._wait_drained(old.number, publisher)
        self._settle_accounts()
        self.stages = None
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline:
            if self._signal or not publisher.is_alive():
                return  # the watch loop ends the run
            time.sleep(_WATCH_S)
        for counters in self.counters.values():
            counters.add("pipeline_restarts")
        try:
            self._start_stages(old.number + 1)
        except PipelineError as exc:
            if self._signal:
                return  # asked to stop while starting: the watch loop ends the run as usual
            raise PipelineError(f"could not restart the stages after {dead.name} died: {exc}") from None
        log.info("stages restarted after %s died", dead.name)

    def _wait_drained(self, number: int, publisher) -> None:
        """Wait until publish has read the dead stages' pipes to their end."""
        deadline = time.monotonic() + _DRAIN_TIMEOUT_S
        while number not in self.drained:
            if time.monotonic() >= deadline or not publisher.is_alive() or self._signal:
                log.warning("publish did not finish what the stopped stages had passed on within %.0f s; the "
                            "frame accounts may be off by what it still held", _DRAIN_TIMEOUT_S)
                return
            self._read_control()
            time.sleep(0.01)

    def _settle_accounts(self) -> None:
        """With the stages dead and publish done with their output, every frame captured is either
        published or dropped: a file in every-frame mode resumes after the last frame published
        (the rest is decoded again), any other source after the last frame captured, and what it
        lost in between is counted as `restart` drops."""
        for source in self.config.sources:
            counters = self.counters[source.stream_id]
            drops = sum(counters.drops().values())
            if source.every_frame:
                done = counters.get("released_seq")
                counters.set("captured", counters.get("published") + drops)
                counters.set("last_seq", done)
                if not counters.get("ended"):
                    log.info("%s: resuming the file after frame %d", source.stream_id, done)
            else:
                lost = counters.get("captured") - counters.get("published") - drops
                if lost > 0:
                    counters.add("drop_restart", lost)
                    log.warning("%s: %d frames lost with the restart (counted as restart drops)",
                                source.stream_id, lost)
            counters.set("consumed_seq", counters.get("last_seq"))
            counters.set("released_seq", counters.get("last_seq"))
            counters.set("crop_read_seq", -1)  # the new preprocess numbers its crops from 0 again

    def _shutdown(self, processes) -> None:
        self.stop.set()
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
                     in_flight, rate, summary.seconds, counts["capture_restarts"] + counts["pipeline_restarts"],
                     counts["reconnects"],
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


def _exit_reason(process) -> str:
    return (f"signal {signal.Signals(-process.exitcode).name}" if process.exitcode < 0
            else f"exit code {process.exitcode}")
