"""The run configuration: typed, frozen, checked once at the entry point and passed down whole.

`wildpose run` builds a `RunConfig` from a TOML file and/or command-line flags (flags win). Every
value is checked here with a message that names the field and the allowed values, so no stage ever
sees a config it cannot run.
"""

from __future__ import annotations

import dataclasses
import errno
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from wildpose.errors import ConfigError
from wildpose.training import joints

SOURCE_KINDS = ("file", "rtsp", "http", "camera")
DETECTORS = ("yolox", "hog", "none")
RTSP_TRANSPORTS = ("tcp", "udp")
OVERLAY_SUFFIXES = (".mp4", ".mkv", ".mov")
MAX_FRAMES_HZ = 60.0
_STREAM_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_PIPELINE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def _positive(section: str, name: str, value: float, *, integer: bool = False, allow_zero: bool = False) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or value < 0 or (value == 0 and not allow_zero):
        bound = "a non-negative" if allow_zero else "a positive"
        raise ConfigError(f"{section}.{name} must be {bound} {'integer' if integer else 'number'}, got {value!r}")


def check_positive(section: str, name: str, value: Any, *, integer: bool = False, allow_zero: bool = False,
                   optional: bool = False) -> None:
    """Refuse anything but a positive (or non-negative) number, naming `section.name`; None passes
    when `optional`. For the configs of other verbs (record, replay, view, web)."""
    if optional and value is None:
        return
    _positive(section, name, value, integer=integer, allow_zero=allow_zero)


def check_endpoints(section: str, endpoints: Any) -> None:
    """Refuse an empty list or anything but tcp://HOST:PORT or ipc://PATH."""
    if not endpoints or not all(isinstance(e, str) and re.match(r"^(tcp|ipc)://.+", e) for e in endpoints):
        raise ConfigError(f"{section}: endpoints must be tcp://HOST:PORT or ipc://PATH, got {list(endpoints or [])}")


def port_hint(code: int | None, flag: str) -> str:
    """What to do when a TCP port cannot be bound (`flag`: the option that chooses it)."""
    if code == errno.EADDRINUSE:
        return f"another program is using it; choose another port with {flag}"
    if code == errno.EACCES:
        return f"ports below 1024 need root (or CAP_NET_BIND_SERVICE); choose one above 1023 with {flag}"
    return f"give an address of this machine (0.0.0.0 for all of them) with {flag}"


def bind_failure(endpoint: str, code: int | None, reason: str) -> str:
    """The one line for a publisher that cannot bind `endpoint` (ZeroMQ's errno and message)."""
    reason = reason.split(" (addr=")[0].rstrip(".")  # pyzmq appends the address, which the line names
    if code in (errno.EADDRINUSE, errno.EACCES) and endpoint.startswith("tcp://"):
        hint = port_hint(code, "--publish")
    else:
        hint = ("give an address of this machine (tcp://0.0.0.0:PORT for all of them) or an ipc:// path in a "
                "folder that exists, with --publish")
    return f"cannot publish on {endpoint}: {reason}; {hint}"


def redact_url(url: str) -> str:
    """The URL with any password replaced by ***, for logs and messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True)
class SourceConfig:
    """One video source. `url` is a file path, rtsp:// or http(s):// URL, /dev/videoN or a camera index."""

    url: str
    stream_id: str
    loop: bool = False  # files: start again at the end
    every_frame: bool = False  # files: process every frame as fast as possible (no pacing, no drops)
    rtsp_transport: str = "tcp"
    open_timeout_s: float = 10.0
    read_timeout_s: float = 5.0  # a live source silent this long counts as lost
    reconnect_max_s: float = 10.0  # cap of the exponential reconnect backoff
    max_side: int = 1920  # larger frames are scaled down to fit the shared-memory slots
    # the camera's intrinsics, for each person's position in camera space (training/camera_space.py):
    # at most one of a focal length, a horizontal field of view, or an OpenCV calibration file;
    # none: a 60-degree field of view is assumed, and the meta message says so
    focal_px: float | None = None
    fov_deg: float | None = None
    calibration: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or not self.url:
            raise ConfigError("source url must be a non-empty string (a file, rtsp://, http(s)://, "
                              f"/dev/videoN or a camera index), got {self.url!r}")
        if not isinstance(self.stream_id, str) or not _STREAM_ID.match(self.stream_id):
            raise ConfigError(f"stream id {self.stream_id!r} must be 1-64 characters of letters, digits, "
                              "'_', '-' or '.' (it becomes part of the ZeroMQ topic)")
        if self.rtsp_transport not in RTSP_TRANSPORTS:
            raise ConfigError(f"source.rtsp_transport must be one of {list(RTSP_TRANSPORTS)}, "
                              f"got {self.rtsp_transport!r}")
        for name in ("open_timeout_s", "read_timeout_s", "reconnect_max_s"):
            _positive("source", name, getattr(self, name))
        _positive("source", "max_side", self.max_side, integer=True)
        if self.every_frame and self.kind != "file":
            raise ConfigError(f"--every-frame applies to files only; {self.display} is a live "
                              f"{self.kind} source (live sources always run realtime)")
        if self.loop and self.kind != "file":
            raise ConfigError(f"--loop applies to files only; {self.display} is a live {self.kind} source")
        given = [name for name in ("focal_px", "fov_deg", "calibration") if getattr(self, name) is not None]
        if len(given) > 1:
            raise ConfigError(f"source {self.stream_id}: give one of focal_px (--focal), fov_deg (--fov) or "
                              f"calibration (--calibration), not {' and '.join(given)}")
        if self.focal_px is not None:
            _positive("source", "focal_px", self.focal_px)
        if self.fov_deg is not None and (isinstance(self.fov_deg, bool) or not isinstance(self.fov_deg, (int, float))
                                         or not 1 <= self.fov_deg <= 179):
            raise ConfigError(f"source.fov_deg must be 1..179 degrees, got {self.fov_deg!r}")
        if self.calibration is not None and (not isinstance(self.calibration, str)
                                             or not Path(self.calibration).is_file()):
            raise ConfigError(f"source.calibration: file {self.calibration!r} not found")

    def intrinsics(self, width: int, height: int):
        """The camera's intrinsics for frames of this size (training.camera_space.Intrinsics)."""
        from wildpose.training import camera_space

        if self.calibration is not None:
            return camera_space.from_calibration(self.calibration, width, height)
        if self.focal_px is not None:
            return camera_space.from_focal(width, height, float(self.focal_px))
        if self.fov_deg is not None:
            return camera_space.from_fov(width, height, float(self.fov_deg))
        return camera_space.from_fov(width, height, camera_space.DEFAULT_FOV_DEG, default=True)

    @property
    def kind(self) -> str:
        scheme = self.url.split("://", 1)[0].lower() if "://" in self.url else ""
        if scheme in ("rtsp", "rtsps"):
            return "rtsp"
        if scheme in ("http", "https"):
            return "http"
        if self.url.isdigit() or self.url.startswith("/dev/video"):
            return "camera"
        return "file"

    @property
    def is_live(self) -> bool:
        return self.kind != "file"

    @property
    def display(self) -> str:
        """The source as it may appear in logs: credentials removed."""
        return redact_url(self.url)

    @property
    def device(self) -> str:
        """For cameras: the V4L2 device path."""
        return f"/dev/video{self.url}" if self.url.isdigit() else self.url


@dataclass(frozen=True)
class EngineConfig:
    model: str | None = None  # .onnx or .pt; None: the embedded default model
    backend: str = "auto"  # auto: TensorRT, then torch on CUDA, then onnxruntime on the CPU
    device: str = "auto"  # auto: a GPU when there is one; cpu; cuda
    threads: int | None = None  # inference threads; None: the runtime's default
    precision: str | None = None  # fp32/fp16/bf16 (torch), fp32/fp16/int8 (tensorrt); None: the backend's default
    compile: bool = True  # torch on CUDA: torch.compile + CUDA graphs (off: eager, for debugging)
    freeze: bool = False  # compiled torch on CUDA: inductor freezing (faster at large batches, slower starts)
    # torch on CUDA: batches up to this size run the hourglass branches on parallel CUDA streams (0: none;
    # None: the backend's default, 2 when compiled)
    branch_streams: int | None = None
    # torch: person crops cut where the model runs (on CUDA: each frame uploaded once, crops cut on the
    # GPU) instead of in each stream's preprocess process with OpenCV
    device_crops: bool = False
    # engines that can (torch): run batch N while batch N + 1 is read and submitted (off: one at a time)
    overlap: bool = True
    int8_calibration: str | None = None  # tensorrt int8: a video whose frames calibrate the engine
    # each crop also runs mirrored and the two heatmaps are averaged: better joints (+1.1 points of PCK@0.1
    # for the demo weights on SynthPose) for twice the inference compute
    flip_test: bool = False
    max_batch: int = 8  # crops per inference call, across all sources
    batch_wait_ms: float = 2.0  # how long the first crop waits for others to fill a batch
    spin: bool = False  # ONNX Runtime thread spinning: off leaves the cores to capture and decode
    timeout_s: float = 5.0  # triton: a server slower than this for one request counts as failed

    def __post_init__(self) -> None:
        from wildpose.engine.loader import BACKENDS, DEVICES  # engine is below stream: the import is one-way

        if self.backend not in BACKENDS:
            raise ConfigError(f"engine.backend must be one of {list(BACKENDS)}, got {self.backend!r}")
        if self.device not in DEVICES:
            raise ConfigError(f"engine.device must be one of {list(DEVICES)}, got {self.device!r}")
        if self.precision not in (None, "fp32", "fp16", "bf16", "int8"):
            raise ConfigError(f"engine.precision must be fp32, fp16, bf16 or int8, got {self.precision!r}")
        if self.precision == "int8" and not self.int8_calibration:
            raise ConfigError("engine.precision int8 needs engine.int8_calibration (--int8-calibration VIDEO): "
                              "real footage, or the bundled demo clip")
        if self.int8_calibration and not Path(self.int8_calibration).is_file():
            raise ConfigError(f"engine.int8_calibration file not found: {self.int8_calibration}")
        if self.freeze and not self.compile:
            raise ConfigError("engine.freeze applies to the compiled path: drop --no-compile or --freeze")
        if self.device_crops and self.backend not in ("torch", "auto"):  # auto: checked again once resolved
            raise ConfigError(f"engine.device_crops cuts crops with the torch backend, not {self.backend}: "
                              "add --backend torch or drop --device-crops")
        if self.threads is not None:
            _positive("engine", "threads", self.threads, integer=True)
        _positive("engine", "max_batch", self.max_batch, integer=True)
        if self.branch_streams is not None:
            _positive("engine", "branch_streams", self.branch_streams, integer=True, allow_zero=True)
        _positive("engine", "batch_wait_ms", self.batch_wait_ms, allow_zero=True)
        _positive("engine", "timeout_s", self.timeout_s)


@dataclass(frozen=True)
class TrackingConfig:
    # "yolox" (YOLOX-Nano, downloaded once), a path to a YOLOX .onnx file, "hog" (OpenCV's people
    # detector, no file needed) or "none" (the whole frame is one person)
    detector: str = "yolox"
    detector_score: float = 0.35  # YOLOX: objectness x person score above which a person counts
    detect_every: int = 10  # detect every N frames even while tracking (0: only when needed)
    detect_max_side: int = 480  # HOG: frames are scaled so their longer side is at most this
    max_people: int = 8  # per frame; the most confident are kept
    max_missed: int = 15  # frames a track survives without a detection or a confident pose
    min_confidence: float = 0.25  # mean joint confidence below which a track counts as lost
    box_padding: float = 1.25  # crop side = padding x the person's extent (the reference's 1.25)

    def __post_init__(self) -> None:
        if not isinstance(self.detector, str) or (self.detector not in DETECTORS
                                                  and not self.detector.endswith(".onnx")):
            raise ConfigError(f"tracking.detector must be one of {list(DETECTORS)} or a path to a YOLOX "
                              f".onnx file, got {self.detector!r}")
        if self.detector.endswith(".onnx") and not Path(self.detector).is_file():
            raise ConfigError(f"tracking.detector file not found: {self.detector}")
        if not isinstance(self.detector_score, (int, float)) or not 0.0 < self.detector_score < 1.0:
            raise ConfigError(f"tracking.detector_score must be between 0.0 and 1.0, got {self.detector_score!r}")
        _positive("tracking", "detect_every", self.detect_every, integer=True, allow_zero=True)
        _positive("tracking", "max_people", self.max_people, integer=True)
        _positive("tracking", "max_missed", self.max_missed, integer=True, allow_zero=True)
        _positive("tracking", "detect_max_side", self.detect_max_side, integer=True)
        if not isinstance(self.min_confidence, (int, float)) or not 0.0 <= self.min_confidence <= 1.0:
            raise ConfigError(f"tracking.min_confidence must be between 0.0 and 1.0, got {self.min_confidence!r}")
        if not isinstance(self.box_padding, (int, float)) or not 1.0 <= self.box_padding <= 3.0:
            raise ConfigError(f"tracking.box_padding must be between 1.0 and 3.0, got {self.box_padding!r}")


@dataclass(frozen=True)
class SmoothingConfig:
    """One Euro filter (Casiez et al., CHI 2012) parameters, per space (2D pixels, 3D millimetres).

    min_cutoff (Hz) sets the smoothing at rest, beta how fast the cutoff rises with speed (units/s),
    d_cutoff (Hz) the smoothing of the speed estimate. Defaults come from `wildpose bench --smoothing`.
    processes: how many smoothing processes share the streams (each stream stays in one); 0 picks one
    per 16 streams, at most a quarter of the CPU cores.
    """

    enabled: bool = True
    min_cutoff_2d: float = 1.0
    beta_2d: float = 0.05
    min_cutoff_3d: float = 1.0
    beta_3d: float = 0.005
    d_cutoff: float = 1.0
    processes: int = 0

    def __post_init__(self) -> None:
        _positive("smoothing", "processes", self.processes, integer=True, allow_zero=True)
        for name in ("min_cutoff_2d", "min_cutoff_3d", "d_cutoff"):
            _positive("smoothing", name, getattr(self, name))
        for name in ("beta_2d", "beta_3d"):
            _positive("smoothing", name, getattr(self, name), allow_zero=True)


@dataclass(frozen=True)
class PublishConfig:
    endpoint: str = "tcp://127.0.0.1:5555"
    send_hwm: int = 1000  # messages queued per subscriber before ZeroMQ drops for that subscriber
    stats_interval_s: float = 1.0
    wait_subscribers: int = 0  # hold the pipeline until this many subscriptions arrived (no slow joiner)
    # JPEG thumbnails on frame/<stream> for viewers, at most this often per stream (0: off; the flag
    # --publish-frames alone means 5 Hz: enough to see what the poses refer to, a few kB/s each)
    frames_hz: float = 0.0
    frames_width: int = 320  # thumbnails wider than this are scaled down (aspect kept)
    # the overlay video (H.264): frames with 2D skeletons, boxes, ids, fps, latency and a 3D panel;
    # with several sources one file per stream, OUT.<stream>.mp4
    overlay: str | None = None
    # CURVE (stream/auth.py): the publisher's secret key file encrypts the stream; a folder of client
    # public keys admits only those subscribers (None: any client that knows the server's public key)
    curve_secret: str | None = None
    curve_clients: str | None = None
    raw: bool = False  # also publish each pose before smoothing on pose.raw/<stream>
    camera_joints: bool = False  # also publish joints3d_cam (joints3d + root_cam) for each person
    # live VMC (OSC over UDP, stream/vmc.py): "HOST:PORT" of the receiver, which person (lowest id in
    # view when None) of which stream (the first when None)
    vmc: str | None = None
    vmc_person: int | None = None
    vmc_stream: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.endpoint, str) or not re.match(r"^(tcp|ipc)://.+", self.endpoint):
            raise ConfigError(f"publish.endpoint must be tcp://HOST:PORT or ipc://PATH, got {self.endpoint!r}")
        _positive("publish", "send_hwm", self.send_hwm, integer=True)
        _positive("publish", "stats_interval_s", self.stats_interval_s)
        _positive("publish", "wait_subscribers", self.wait_subscribers, integer=True, allow_zero=True)
        if (isinstance(self.frames_hz, bool) or not isinstance(self.frames_hz, (int, float))
                or not 0.0 <= self.frames_hz <= MAX_FRAMES_HZ):
            raise ConfigError(f"publish.frames_hz must be between 0 (off) and {MAX_FRAMES_HZ:g}, "
                              f"got {self.frames_hz!r}")
        if (isinstance(self.frames_width, bool) or not isinstance(self.frames_width, int)
                or not 16 <= self.frames_width <= 3840):
            raise ConfigError(f"publish.frames_width must be an integer between 16 and 3840, got {self.frames_width!r}")
        if self.overlay is not None:
            self._check_overlay()
        if self.vmc is not None:
            from wildpose.stream import vmc

            vmc.parse_target(self.vmc)
        if self.vmc_person is not None:
            _positive("publish", "vmc_person", self.vmc_person, integer=True)
        if self.curve_secret is not None or self.curve_clients is not None:
            from wildpose.stream import auth

            auth.check_server_keys("publish", self.curve_secret, self.curve_clients)

    def _check_overlay(self) -> None:
        if not isinstance(self.overlay, str) or not self.overlay:
            raise ConfigError(f"publish.overlay must be a video file path, got {self.overlay!r}")
        path = Path(self.overlay)
        if path.suffix.lower() not in OVERLAY_SUFFIXES:
            raise ConfigError(f"publish.overlay must end in one of {list(OVERLAY_SUFFIXES)} (an H.264 "
                              f"container), got {self.overlay!r}")
        if not path.parent.is_dir():
            raise ConfigError(f"publish.overlay: folder {str(path.parent)!r} does not exist; create it or "
                              "choose another path")

    @property
    def uses_frames(self) -> bool:
        """Whether the publish stage reads frames (thumbnails or the overlay video)."""
        return self.frames_hz > 0 or self.overlay is not None


@dataclass(frozen=True)
class RunConfig:
    sources: tuple[SourceConfig, ...]
    engine: EngineConfig = field(default_factory=EngineConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)
    publish: PublishConfig = field(default_factory=PublishConfig)
    skeleton_sum_mm: float = joints.SKELETON_SUM_MM  # metric prior for the 3D output
    duration_s: float | None = None  # stop after this long (None: until the sources end or a signal)
    name: str | None = None  # this pipeline in a fleet: its stream ids are NAME.ID (see `build`)
    # live sources that cannot be opened at start are waited for even when none opens (a service that
    # starts before its cameras); by default a run needs one source up to start
    wait_for_sources: bool = False
    # "[HOST:]PORT": serve Prometheus metrics and health probes over HTTP (stream/health.py); None: off
    metrics: str | None = None

    def __post_init__(self) -> None:
        if self.metrics is not None:
            from wildpose.stream import health

            health.parse_address(self.metrics)
        if self.name is not None and not _PIPELINE_NAME.match(str(self.name)):
            raise ConfigError(f"pipeline name {self.name!r} must be 1-32 letters, digits, '_' or '-' "
                              "(it prefixes every stream id: NAME.ID)")
        if not self.sources:
            raise ConfigError("no source given; pass --source FILE|URL|/dev/videoN (repeatable)")
        ids = [s.stream_id for s in self.sources]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ConfigError(f"stream ids must be unique, {duplicates} repeat; name sources as ID=URL")
        if self.publish.vmc_stream is not None and self.publish.vmc_stream not in ids:
            raise ConfigError(f"publish.vmc_stream {self.publish.vmc_stream!r} is not a stream of this run "
                              f"(streams: {ids})")
        _positive("run", "skeleton_sum_mm", self.skeleton_sum_mm)
        if self.duration_s is not None:
            _positive("run", "duration_s", self.duration_s)
        if not isinstance(self.wait_for_sources, bool):
            raise ConfigError(f"wait_for_sources must be true or false, got {self.wait_for_sources!r}")
        if self.wait_for_sources and not all(s.is_live for s in self.sources):
            files = [s.display for s in self.sources if not s.is_live]
            raise ConfigError(f"--wait-for-sources waits for live sources (cameras, RTSP, HTTP); {files[0]} is a "
                              "file: a missing file is not waited for")


_SECTIONS = {"engine": EngineConfig, "tracking": TrackingConfig, "smoothing": SmoothingConfig,
             "publish": PublishConfig}
_SOURCE_KEYS = {f.name for f in dataclasses.fields(SourceConfig)} | {"id"}
_TOP_KEYS = {"source", "skeleton_sum_mm", "duration_s", "name", "wait_for_sources", "metrics", *_SECTIONS}


def parse_source(spec: str, index: int, **options: Any) -> SourceConfig:
    """`ID=URL` or `URL` (the id is then derived: the file's stem, or `cam<index>`)."""
    stream_id, url = _split_id(spec)
    if stream_id is None:
        stream_id = default_stream_id(url, index)
    return SourceConfig(url=url, stream_id=stream_id, **options)


def _split_id(spec: str) -> tuple[str | None, str]:
    head, sep, tail = spec.partition("=")
    if sep and _STREAM_ID.match(head) and "://" not in head and "/" not in head:
        return head, tail
    return None, spec


def default_stream_id(url: str, index: int) -> str:
    if "://" not in url and not url.isdigit() and not url.startswith("/dev/"):
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(url).stem)[:64]
        if stem:
            return stem
    return f"cam{index}"


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a run config file; unknown sections and keys are errors that list the known ones."""
    path = Path(path)
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8-sig"))  # TOML is UTF-8; Windows editors add a BOM
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as exc:  # a directory, no permission
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(values) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown keys {unknown}; known: {sorted(_TOP_KEYS)}")
    for name, cls in _SECTIONS.items():
        section = values.get(name, {})
        if not isinstance(section, dict):
            raise ConfigError(f"{path}: [{name}] must be a table")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(section) - known)
        if unknown:
            raise ConfigError(f"{path}: unknown keys {unknown} in [{name}]; known: {sorted(known)}")
    sources = values.get("source", [])
    if not isinstance(sources, list) or not all(isinstance(s, dict) for s in sources):
        raise ConfigError(f"{path}: sources are [[source]] tables with url = ... and optional id = ...")
    for source in sources:
        unknown = sorted(set(source) - _SOURCE_KEYS)
        if unknown:
            raise ConfigError(f"{path}: unknown keys {unknown} in [[source]]; known: {sorted(_SOURCE_KEYS)}")
        if "url" not in source:
            raise ConfigError(f"{path}: every [[source]] needs url = \"FILE|URL|/dev/videoN\"")
    return values


def build(file_values: dict[str, Any], overrides: dict[str, dict[str, Any]],
          source_specs: list[str], source_options: dict[str, Any]) -> RunConfig:
    """Merge a config file's values with command-line values (which win) into a `RunConfig`.

    overrides: section name -> {field: value} for flags the user actually gave.
    source_specs: `--source` values; when given they replace the file's sources.
    source_options: per-source flags (loop, every_frame, ...) applied to every source.
    """
    try:
        if source_specs:
            sources = tuple(parse_source(spec, i, **source_options) for i, spec in enumerate(source_specs))
        else:
            sources = tuple(
                SourceConfig(**{**{k: v for k, v in s.items() if k != "id"},
                                "stream_id": s.get("id") or default_stream_id(s["url"], i),
                                **source_options})
                for i, s in enumerate(file_values.get("source", [])))
        sections = {name: cls(**{**file_values.get(name, {}), **overrides.get(name, {})})
                    for name, cls in _SECTIONS.items()}
        top = {k: file_values[k] for k in ("skeleton_sum_mm", "duration_s", "name", "wait_for_sources", "metrics")
               if k in file_values}
        top.update(overrides.get("run", {}))
        name = top.get("name")
        if name is not None and isinstance(name, str) and _PIPELINE_NAME.match(name):
            # unique across a fleet behind `wildpose proxy`: every stream id carries the pipeline's name
            sources = tuple(dataclasses.replace(s, stream_id=f"{name}.{s.stream_id}") for s in sources)
        return RunConfig(sources=sources, **sections, **top)
    except TypeError as exc:  # a value of the wrong type reached a dataclass
        raise ConfigError(f"invalid configuration: {exc}") from None
