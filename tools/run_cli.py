"""`wildpose run` and `wildpose subscribe`: the pipeline and its reference consumer.

Flags mirror the fields of `stream.config`; a flag the user gives overrides the same value from
`--config FILE.toml`, a flag not given leaves the file's value (or the default) alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys

import numpy as np

from wildpose.errors import ConfigError

log = logging.getLogger("wildpose")

RUN_EXAMPLES = """examples:
  wildpose run --source video.mp4 --every-frame          # every frame of a file, as fast as possible
  wildpose run --source cam=0                            # the first V4L2 camera, stream id "cam"
  wildpose run --source door=rtsp://user:pass@10.0.0.5/stream --source /dev/video2
  wildpose run --config site.toml --publish tcp://127.0.0.1:6000
  wildpose run --source clip.mp4 --every-frame --overlay clip.overlay.mp4   # skeletons drawn on every frame
  wildpose run --source cam=0 --publish-frames           # thumbnails for `wildpose web` / `wildpose view`
  wildpose run --source cam=0 --publish tcp://0.0.0.0:5555 --curve-secret keys/server.key_secret \
      --curve-clients keys/clients                       # encrypted, only listed subscribers
  wildpose run --source cam=0 --metrics 0.0.0.0:9100     # Prometheus /metrics, /livez, /readyz, /status
"""

SUBSCRIBE_EXAMPLES = """examples:
  wildpose subscribe                                     # every message from the local pipeline
  wildpose subscribe --stream cam --json --count 100     # 100 pose messages of one stream as JSON lines
  wildpose subscribe --endpoint tcp://10.0.0.7:5555 --endpoint tcp://10.0.0.8:5555
  wildpose subscribe --endpoint tcp://10.0.0.7:5555 --curve-server-key keys/server.key \
      --curve-secret keys/me.key_secret
"""

PROXY_EXAMPLES = """examples:
  wildpose run --name lobby --source cam0=rtsp://... --publish tcp://0.0.0.0:5555
  wildpose run --name dock --source cam0=rtsp://... --publish tcp://0.0.0.0:5556
  wildpose proxy --upstream tcp://host-a:5555 --upstream tcp://host-b:5556 --bind tcp://0.0.0.0:5600
  wildpose subscribe --endpoint tcp://proxy-host:5600  # lobby.cam0 and dock.cam0 in one place
"""

KEYS_EXAMPLES = """examples:
  wildpose keys --output keys --name server              # the publisher's pair: keys/server.key(_secret)
  wildpose keys --output keys/clients --name door-ui     # a subscriber's pair; its .key admits it
"""

# flag destination -> (config section, field)
_OVERRIDES = {
    "model": ("engine", "model"), "backend": ("engine", "backend"), "device": ("engine", "device"),
    "threads": ("engine", "threads"), "max_batch": ("engine", "max_batch"),
    "batch_wait_ms": ("engine", "batch_wait_ms"), "spin": ("engine", "spin"),
    "precision": ("engine", "precision"), "compile": ("engine", "compile"), "freeze": ("engine", "freeze"),
    "branch_streams": ("engine", "branch_streams"),
    "device_crops": ("engine", "device_crops"), "overlap": ("engine", "overlap"),
    "int8_calibration": ("engine", "int8_calibration"), "flip_test": ("engine", "flip_test"),
    "engine_url": ("engine", "model"),
    "engine_timeout": ("engine", "timeout_s"),
    "detector": ("tracking", "detector"), "detect_every": ("tracking", "detect_every"),
    "detector_score": ("tracking", "detector_score"), "max_people": ("tracking", "max_people"),
    "max_missed": ("tracking", "max_missed"),
    "min_confidence": ("tracking", "min_confidence"), "detect_max_side": ("tracking", "detect_max_side"),
    "smoothing": ("smoothing", "enabled"), "min_cutoff_2d": ("smoothing", "min_cutoff_2d"),
    "beta_2d": ("smoothing", "beta_2d"), "min_cutoff_3d": ("smoothing", "min_cutoff_3d"),
    "beta_3d": ("smoothing", "beta_3d"), "d_cutoff": ("smoothing", "d_cutoff"),
    "smooth_processes": ("smoothing", "processes"),
    "publish": ("publish", "endpoint"), "send_hwm": ("publish", "send_hwm"),
    "stats_interval": ("publish", "stats_interval_s"), "wait_subscribers": ("publish", "wait_subscribers"),
    "publish_frames": ("publish", "frames_hz"), "frames_width": ("publish", "frames_width"),
    "overlay": ("publish", "overlay"), "curve_secret": ("publish", "curve_secret"),
    "curve_clients": ("publish", "curve_clients"), "publish_raw": ("publish", "raw"),
    "joints3d_cam": ("publish", "camera_joints"),
    "vmc": ("publish", "vmc"), "vmc_person": ("publish", "vmc_person"), "vmc_stream": ("publish", "vmc_stream"),
    "duration": ("run", "duration_s"), "skeleton_sum_mm": ("run", "skeleton_sum_mm"), "name": ("run", "name"),
    "wait_for_sources": ("run", "wait_for_sources"), "metrics": ("run", "metrics"),
}
_SOURCE_FLAGS = {"loop": "loop", "every_frame": "every_frame", "rtsp_transport": "rtsp_transport",
                 "focal": "focal_px", "fov": "fov_deg", "calibration": "calibration",
                 "open_timeout": "open_timeout_s", "read_timeout": "read_timeout_s",
                 "max_side": "max_side"}


def add_parsers(verbs) -> None:
    run = verbs.add_parser("run", help="run the pipeline: video in, 3D joints out over ZeroMQ",
                           epilog=RUN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
                           argument_default=argparse.SUPPRESS)
    run.add_argument("--config", help="TOML file with [[source]], [engine], [tracking], [smoothing], [publish]")
    run.add_argument("--source", action="append", dest="sources", metavar="[ID=]URL",
                     help="a file, rtsp:// or http(s):// URL, /dev/videoN or camera index; repeatable")
    group = run.add_argument_group("sources")
    group.add_argument("--loop", action="store_true", help="files: start again at the end")
    group.add_argument("--every-frame", action="store_true",
                       help="files: process every frame as fast as possible (default: realtime pacing)")
    group.add_argument("--rtsp-transport", help="tcp (default) or udp")
    group.add_argument("--open-timeout", type=float, help="seconds to open a source (default 10)")
    group.add_argument("--read-timeout", type=float,
                       help="seconds of silence before a live source counts as lost (default 5)")
    group.add_argument("--max-side", type=int, help="scale larger frames down to this side (default 1920)")
    group.add_argument("--wait-for-sources", action="store_true",
                       help="live sources: start even when none answers yet, and wait for them (a service that "
                            "starts before its cameras); without it a run needs one source up to start")
    camera = run.add_argument_group("camera (for each person's position in camera space, root_cam)")
    camera.add_argument("--focal", type=float, metavar="PX", help="focal length in pixels")
    camera.add_argument("--fov", type=float, metavar="DEG", help="horizontal field of view (default: 60 assumed)")
    camera.add_argument("--joints3d-cam", action="store_true",
                        help="also publish each person's joints in camera space (joints3d_cam, mm)")
    camera.add_argument("--calibration", metavar="FILE",
                        help="OpenCV calibration file (camera_matrix, distortion_coefficients)")
    group = run.add_argument_group("engine")
    group.add_argument("--model", help="model file (.onnx or .pt); default: the embedded model")
    group.add_argument("--engine", dest="engine_url", metavar="triton://HOST:PORT[,HOST2:PORT]",
                       help="infer on Triton servers (`wildpose serve` or an official one) instead of here; "
                            "the first that answers, failing over in order")
    group.add_argument("--engine-timeout", type=float, metavar="S",
                       help="--engine: seconds before a server's request counts as failed (default 5)")
    group.add_argument("--backend", help="auto (default), onnxruntime, torch or tensorrt")
    group.add_argument("--device", help="auto (default: a GPU when there is one), cpu or cuda")
    group.add_argument("--precision", help="fp32, fp16 or bf16 (torch), fp32, fp16 or int8 (tensorrt); "
                                           "default: fp16 on a GPU, fp32 on the CPU")
    group.add_argument("--no-compile", action="store_false", dest="compile",
                       help="torch on CUDA: eager, without torch.compile and CUDA graphs")
    group.add_argument("--freeze", action="store_true",
                       help="compiled torch on CUDA: inductor freezing (about 5 %% more frames/s at batch 64 on "
                            "an H200; each start 20-30 s longer)")
    group.add_argument("--branch-streams", type=int, metavar="N",
                       help="compiled torch on CUDA: batches up to N run each hourglass level's full-resolution "
                            "branch on a CUDA stream of its own (default 2: faster at batches 1 and 2 on an H200; "
                            "0: never)")
    group.add_argument("--device-crops", action="store_true",
                       help="torch: cut person crops where the model runs (on CUDA: each frame uploaded once, "
                            "crops cut on the GPU) instead of in each stream's preprocess process")
    group.add_argument("--no-overlap", action="store_false", dest="overlap",
                       help="torch: wait for each inference batch before reading the next (default: the next is "
                            "read and uploaded while the current one runs)")
    group.add_argument("--flip-test", action="store_true",
                       help="also run each person's crop mirrored and average the heatmaps: better joints for "
                            "twice the inference compute")
    group.add_argument("--int8-calibration", metavar="VIDEO",
                       help="tensorrt int8: calibrate on this video's frames (e.g. the bundled demo clip)")
    group.add_argument("--threads", type=int, help="inference threads (default: the runtime's)")
    group.add_argument("--max-batch", type=int, help="crops per inference call across sources (default 8)")
    group.add_argument("--batch-wait-ms", type=float, help="how long a crop waits to fill a batch (default 2)")
    group.add_argument("--spin", action="store_true",
                       help="let idle ONNX Runtime threads spin (lower latency, more CPU)")
    group = run.add_argument_group("people")
    group.add_argument("--detector",
                       help="yolox (default; YOLOX-Nano, downloaded once), PATH to a YOLOX .onnx file, hog "
                            "(OpenCV, no file) or none (the whole frame is one person)")
    group.add_argument("--detector-score", type=float, help="YOLOX person score threshold (default 0.35)")
    group.add_argument("--detect-every", type=int,
                       help="detect every N frames while tracking (default 10; also when a track is lost)")
    group.add_argument("--max-people", type=int, help="people tracked per frame, most confident first (default 8)")
    group.add_argument("--max-missed", type=int,
                       help="frames a person's track survives unconfirmed (default 15)")
    group.add_argument("--detect-max-side", type=int, help="HOG: frame side for detection (default 480)")
    group.add_argument("--min-confidence", type=float,
                       help="mean joint confidence below which a track is lost (default 0.25)")
    group = run.add_argument_group("smoothing (One Euro filter)")
    group.add_argument("--no-smoothing", action="store_false", dest="smoothing", help="publish unfiltered poses")
    group.add_argument("--min-cutoff-2d", type=float, help="cutoff at rest, Hz, 2D (default 1.0)")
    group.add_argument("--beta-2d", type=float, help="speed coefficient, 2D (default 0.05)")
    group.add_argument("--min-cutoff-3d", type=float, help="cutoff at rest, Hz, 3D (default 1.0)")
    group.add_argument("--beta-3d", type=float, help="speed coefficient, 3D (default 0.005)")
    group.add_argument("--d-cutoff", type=float, help="cutoff of the speed estimate, Hz (default 1.0)")
    group.add_argument("--smooth-processes", type=int,
                       help="smoothing processes sharing the streams (default 0: one per 16 streams, at most "
                            "a quarter of the cores)")
    group = run.add_argument_group("publishing")
    group.add_argument("--publish", help="ZeroMQ endpoint to bind (default tcp://127.0.0.1:5555; ipc:// too)")
    group.add_argument("--send-hwm", type=int, help="messages queued per subscriber before dropping (default 1000)")
    group.add_argument("--stats-interval", type=float, help="seconds between stats messages (default 1)")
    group.add_argument("--wait-subscribers", type=int,
                       help="hold the pipeline until N subscriptions arrived (default 0)")
    group.add_argument("--publish-frames", type=float, nargs="?", const=5.0, metavar="HZ",
                       help="also publish JPEG thumbnails on frame/<stream> for viewers, at most HZ per "
                            "stream (default when given: 5; [publish] frames_hz)")
    group.add_argument("--frames-width", type=int, help="thumbnail width limit in pixels (default 320)")
    group.add_argument("--overlay", metavar="OUT.mp4",
                       help="write the video with 2D/3D skeletons, boxes, ids, fps and latency drawn on it "
                            "(H.264; several sources: OUT.<stream>.mp4 each)")
    group.add_argument("--vmc", metavar="HOST:PORT",
                       help="also send one person live over the VMC protocol (OSC/UDP), e.g. 127.0.0.1:39539")
    group.add_argument("--vmc-person", type=int, metavar="ID", help="VMC: this track id (default: lowest in view)")
    group.add_argument("--vmc-stream", metavar="ID", help="VMC: this stream (default: the first)")
    group.add_argument("--publish-raw", action="store_true",
                       help="also publish each pose before smoothing, on pose.raw/<stream>")
    add_curve_publisher_flags(group)
    group.add_argument("--duration", type=float, help="stop after this many seconds")
    group.add_argument("--metrics", metavar="[HOST:]PORT",
                       help="serve Prometheus /metrics and /livez, /readyz, /status over HTTP (e.g. 9100, "
                            "loopback; 0.0.0.0:9100 for all interfaces)")
    group.add_argument("--name", help="this pipeline's name in a fleet: stream ids become NAME.ID, unique "
                                      "behind `wildpose proxy`")
    group.add_argument("--skeleton-sum-mm", type=float, help="metric prior: the 14 bones sum to this (default 4296.99)")
    run.set_defaults(handler=_run)

    subscribe = verbs.add_parser("subscribe", help="print the messages of running pipelines",
                                 epilog=SUBSCRIBE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    subscribe.add_argument("--endpoint", action="append", dest="endpoints",
                           help="publisher endpoint, repeatable (default tcp://127.0.0.1:5555)")
    subscribe.add_argument("--stream", action="append", dest="streams", help="only these stream ids (repeatable)")
    subscribe.add_argument("--topics", default="pose,stats,meta",
                           help="comma-separated: pose, stats, meta, raw (poses before smoothing)")
    subscribe.add_argument("--json", action="store_true", help="one JSON object per line")
    subscribe.add_argument("--count", type=int, help="exit after this many pose messages")
    subscribe.add_argument("--timeout", type=float,
                           help="exit with status 1 if no message arrives for this many seconds")
    subscribe.add_argument("--curve-server-key", metavar="NAME.key",
                           help="the publisher's public key, when it runs with --curve-secret")
    subscribe.add_argument("--curve-secret", metavar="NAME.key_secret", help="... and this subscriber's key pair")
    subscribe.set_defaults(handler=_subscribe)

    proxy = verbs.add_parser("proxy", help="one endpoint for the poses of many pipelines (ZeroMQ XSUB/XPUB)",
                             epilog=PROXY_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    proxy.add_argument("--upstream", action="append", required=True, metavar="ENDPOINT",
                       help="a pipeline's --publish endpoint (repeatable; ZeroMQ reconnects when it restarts)")
    proxy.add_argument("--bind", default="tcp://127.0.0.1:5600",
                       help="where subscribers connect (default tcp://127.0.0.1:5600)")
    proxy.add_argument("--upstream-server-key", metavar="NAME.key",
                       help="the pipelines' public key, when they run with --curve-secret")
    proxy.add_argument("--upstream-secret", metavar="NAME.key_secret",
                       help="... and the proxy's key pair as their client (its NAME.key in their --curve-clients)")
    add_curve_publisher_flags(proxy)
    proxy.add_argument("--metrics", metavar="[HOST:]PORT",
                       help="serve Prometheus /metrics (messages per topic and stream) and /livez, /readyz, "
                            "/status over HTTP")
    proxy.set_defaults(handler=_proxy)

    keys = verbs.add_parser("keys", help="make a CURVE key pair for an encrypted, access-controlled stream",
                            epilog=KEYS_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    keys.add_argument("--output", default="keys", help="folder for NAME.key and NAME.key_secret (default keys)")
    keys.add_argument("--name", default="server", help="key name (default server)")
    keys.set_defaults(handler=_keys)


def add_curve_publisher_flags(parser) -> None:
    """--curve-secret and --curve-clients, the same for every command that publishes (run, replay, proxy)."""
    parser.add_argument("--curve-secret", metavar="NAME.key_secret",
                        help="encrypt what this command publishes with ZeroMQ CURVE using this key pair "
                             "(`wildpose keys`)")
    parser.add_argument("--curve-clients", metavar="DIR",
                        help="with --curve-secret: admit only subscribers whose NAME.key is in DIR")


def _proxy(args: argparse.Namespace) -> int:
    from wildpose.errors import ConfigError
    from wildpose.stream import auth, proxy

    if (args.upstream_server_key is None) != (args.upstream_secret is None):
        raise ConfigError("encrypted pipelines need both --upstream-server-key (their NAME.key) and "
                          "--upstream-secret (the proxy's NAME.key_secret)")
    proxy.run_proxy(args.upstream, args.bind,
                    upstream_keys=auth.client_keys(args.upstream_server_key, args.upstream_secret),
                    curve_secret=args.curve_secret, curve_clients=args.curve_clients, metrics=args.metrics)
    return 0


def build_run_config(args: argparse.Namespace):
    from wildpose.stream import config as run_config

    values = vars(args)
    if "engine_url" in values and "model" in values:
        from wildpose.errors import ConfigError

        raise ConfigError("give --engine triton://... or --model FILE, not both: the server has the model")
    file_values = run_config.load_toml(values["config"]) if "config" in values else {}
    overrides: dict[str, dict] = {}
    for flag, (section, name) in _OVERRIDES.items():
        if flag in values:
            overrides.setdefault(section, {})[name] = values[flag]
    source_options = {name: values[flag] for flag, name in _SOURCE_FLAGS.items() if flag in values}
    return run_config.build(file_values, overrides, values.get("sources", []), source_options)


def _run(args: argparse.Namespace) -> int:
    from wildpose.stream import supervisor

    config = build_run_config(args)
    supervisor.run(config, logging.getLogger().level)
    return 0


def _keys(args: argparse.Namespace) -> int:
    from wildpose.stream import auth

    public, secret = auth.generate_keys(args.output, args.name)
    log.info("wrote %s (public: give it to the other side) and %s (secret: keep it here, owner-only)",
             public, secret)
    sys.stdout.write(f"{public}\n{secret}\n")
    return 0


def _subscribe(args: argparse.Namespace) -> int:
    from wildpose.stream.client import DEFAULT_ENDPOINT, PoseMessage, PoseSubscriber

    topics = tuple(t.strip() for t in args.topics.split(",") if t.strip())
    if not topics or any(t not in ("pose", "stats", "meta", "raw") for t in topics):
        raise ConfigError(f"--topics must be a comma-separated subset of pose,stats,meta,raw, got {args.topics!r}")
    if args.count is not None and args.count < 1:
        raise ConfigError(f"--count must be a positive integer, got {args.count}")
    poses = 0
    with PoseSubscriber(args.endpoints or [DEFAULT_ENDPOINT], streams=args.streams, topics=topics,
                        curve_server_key=args.curve_server_key, curve_secret=args.curve_secret) as subscriber:
        while args.count is None or poses < args.count:
            message = subscriber.recv(timeout=args.timeout)
            if message is None:
                log.error("no message for %.1f s", args.timeout)
                return 1
            line = json.dumps(to_json(message)) if args.json else describe(message)
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
            poses += isinstance(message, PoseMessage)
    return 0


def to_json(message) -> dict:
    """A message as plain JSON-able values, with its kind."""
    values = dataclasses.asdict(message)

    def plain(value):
        if isinstance(value, np.ndarray):
            return value.tolist()
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return {"kind": type(message).__name__.replace("Message", "").lower(), **plain(values)}


def describe(message) -> str:
    """One human-readable line per message."""
    from wildpose.stream.client import MetaMessage, PoseMessage
    from wildpose.training import joints

    if isinstance(message, PoseMessage):
        parts = [f"{'raw' if message.raw else 'pose'} {message.stream} seq={message.seq} people={len(message.people)} "
                 f"latency={message.latency_s * 1000:.1f}ms"]
        for person in message.people:
            pelvis = person.joints2d[joints.ROOT]
            head = person.joints3d[joints.INDEX["head_top"]]
            parts.append(f"[id={person.id} conf={person.conf.mean():.2f} pelvis=({pelvis[0]:.0f},{pelvis[1]:.0f})px "
                         f"head_top=({head[0]:.0f},{head[1]:.0f},{head[2]:.0f})mm"
                         f"{' tracked' if person.tracked else ''}]")
        return " ".join(parts)
    if isinstance(message, MetaMessage):
        return (f"meta joints={len(message.joints)} streams={sorted(message.streams)} scale=\"{message.scale}\" "
                f"weights=\"{message.model.get('weights')}\"")
    fps = " ".join(f"{stage}={value:.1f}" for stage, value in message.fps.items())
    total = message.latency_ms.get("total", {})
    drops = {k: v for k, v in message.drops.items() if v}
    return (f"stats {message.stream} fps {fps} latency p50={total.get('p50', float('nan')):.1f}ms "
            f"p95={total.get('p95', float('nan')):.1f}ms drops={drops or 0}")
