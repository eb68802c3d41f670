"""The `wildpose` command: one verb per job, one-line errors, logs on stderr.

Known errors (`WildPoseError`) print as `wildpose: error: ...` with exit status 1 and no traceback;
set WILDPOSE_DEBUG=1 to see it. Anything else is a bug and propagates with its traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from wildpose import __version__, logs
from wildpose.tools import experiment_cli, report_errors, run_cli, serve_cli, train_cli, view_cli

log = logging.getLogger("wildpose")

EXAMPLES = """examples:
  wildpose demo                                  # the pipeline on the bundled demo clip
  wildpose run --source video.mp4 --every-frame  # every frame of a file, poses on tcp://127.0.0.1:5555
  wildpose subscribe                             # print what a running pipeline publishes
  wildpose export --preset paper --init-seed 0 -o paper.onnx
  wildpose export runs/stage3.pt -o model.onnx
  wildpose export --triton-repo models           # the bundled model as a Triton model repository
  wildpose bench --engine-only                   # both presets, onnxruntime and torch
  wildpose bench --engine-only --presets realtime --backends onnxruntime --batch 1,8
  wildpose bench --engine-only --model weights/realtime-synthpose.pt --flip-test   # what the flip test costs
  wildpose bench --faults                        # kill each stage mid-run: pause, frames lost
  wildpose bench --capture 1,4                   # the capture stage's host CPU a frame, 1 and 4 streams
  wildpose bench --smooth-stage 1,16             # one smoothing process's host CPU a frame, 1 and 16 streams
  wildpose bench --training                      # the trainer's update in fp32 and bf16, SynthPose rendering
  wildpose bench --loader 2,14                   # the trainer's data loader: samples/s with 2 and 14 workers
"""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line in one line, like every other wildpose error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"wildpose: error: {message} (see `{self.prog} --help`)\n")


def _csv(kind):
    def parse(text: str):
        try:
            return tuple(kind(part) for part in text.split(",") if part.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}") from None
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="wildpose", description="Realtime 3D human pose from video, over ZeroMQ.",
                     epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"wildpose {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--log-format", choices=logs.FORMATS,
                        help=f"text (default) or json: one JSON object a line, for log collectors (also "
                             f"{logs.FORMAT_VARIABLE}=json)")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)

    demo = verbs.add_parser("demo", help="the pipeline on the bundled demo clip, with a subscriber")
    demo.add_argument("--model", help="model file (.onnx or .pt); default: the embedded model")
    demo.add_argument("--backend", default="auto", help="auto, onnxruntime, torch or tensorrt")
    demo.add_argument("--detector", default="yolox", help="yolox (default), PATH to a YOLOX .onnx, hog or none")
    demo.add_argument("--every-frame", action="store_true", help="process every frame as fast as possible")
    demo.set_defaults(handler=_demo)

    export = verbs.add_parser("export", help="export a checkpoint to ONNX (decoding inside the graph)")
    export.add_argument("checkpoint", nargs="?",
                        help="checkpoint (.pt) to export (--triton-repo: or an .onnx file; default the bundled model)")
    export.add_argument("-o", "--output", help="ONNX file to write")
    export.add_argument("--triton-repo", metavar="DIR",
                        help="write a Triton Inference Server model repository (config.pbtxt + model) here")
    export.add_argument("--triton-max-batch", type=int, default=32,
                        help="--triton-repo: largest batch the server forms (default 32)")
    export.add_argument("--triton-queue-delay-us", type=int, default=2000,
                        help="--triton-repo: dynamic batching queue delay, microseconds (default 2000)")
    export.add_argument("--triton-instances", type=int, default=1,
                        help="--triton-repo: model instances (default 1)")
    export.add_argument("--triton-gpu", action="store_true",
                        help="--triton-repo: instances on the GPU, and a TensorRT plan where TensorRT is installed")
    export.add_argument("--preset", help="instead of a checkpoint: a preset (paper, realtime, tiny) ...")
    export.add_argument("--init-seed", type=int, help="... with untrained weights from this seed; the "
                        "checkpoint is written next to the output as .pt")
    export.add_argument("--opset", type=int, default=18, help="ONNX opset (>= 17, default 18)")
    export.add_argument("--flip-test", action="store_true",
                        help="the graph also runs each crop mirrored and averages the heatmaps (better joints, "
                             "twice the compute), in every backend that runs the file")
    export.set_defaults(handler=_export)

    build = verbs.add_parser("build-engine", help="build (or find in the cache) a TensorRT engine for a model")
    build.add_argument("--model", help="model file (.onnx or .pt); default: the embedded model")
    build.add_argument("--precision", default="fp16", help="fp32, fp16 (default) or int8")
    build.add_argument("--max-batch", type=int, default=64, help="largest batch the engine accepts (default 64)")
    build.add_argument("--int8-calibration", metavar="VIDEO",
                       help="int8: calibrate on this video's frames (default: the bundled demo clip)")
    build.set_defaults(handler=_build_engine)

    bench = verbs.add_parser("bench", help="measure speed and memory; prints a table")
    mode = bench.add_mutually_exclusive_group(required=True)
    mode.add_argument("--engine-only", action="store_true", help="time the engine alone per backend/preset/batch")
    mode.add_argument("--end-to-end", action="store_true",
                      help="time the whole pipeline (throughput, latency) next to the engine alone")
    mode.add_argument("--crowd", action="store_true",
                      help="frames/s and latency with 1, 3 and 6 people in view (needs ../shared/data)")
    mode.add_argument("--smoothing", action="store_true",
                      help="jitter and lag of the One Euro filter on CMU motion capture (--mocap DIR)")
    mode.add_argument("--gpu", action="store_true",
                      help="engine on a CUDA GPU: eager vs compiled (and TensorRT) per precision and batch")
    mode.add_argument("--inductor", action="store_true",
                      help="the compiled CUDA path under inductor's settings (--variants), where its time goes")
    mode.add_argument("--streams", type=_csv(int), metavar="N,N,...",
                      help="concurrent live streams of one file: drops and latency per count (e.g. 8,16,32)")
    mode.add_argument("--capture", type=_csv(int), metavar="N,N,...",
                      help="N capture processes decoding one file at its pace: host CPU a frame (e.g. 1,4,16)")
    mode.add_argument("--smooth-stage", type=_csv(int), metavar="N,N,...",
                      help="one smoothing process serving N streams at 30 frames/s: host CPU a frame (e.g. 1,16)")
    mode.add_argument("--triton", type=_csv(int), metavar="N,N,...",
                      help="N pipelines with the local engine, then against one `wildpose serve` (e.g. 1,2,4)")
    mode.add_argument("--training", action="store_true",
                      help="the trainer's update per precision (fp32, bf16) and SynthPose rendering (--mocap DIR)")
    mode.add_argument("--loader", type=_csv(int), metavar="N,N,...",
                      help="the trainer's SynthPose data loader with N worker processes: samples/s, OpenCV on "
                           "one thread a worker (the trainer's) and on its default (--mocap DIR)")
    mode.add_argument("--faults", action="store_true",
                      help="kill each pipeline stage mid-run (SIGKILL): pause, frames lost, accounting")
    bench.add_argument("--kill", type=_csv(str), default=("capture", "preprocess", "infer", "smooth"),
                       help="--faults: the stages to kill, one run each (default capture,preprocess,infer,smooth)")
    bench.add_argument("--queue-delay-us", type=int, default=2000,
                       help="--triton: the server's dynamic batching queue delay (default 2000)")
    bench.add_argument("--presets", type=_csv(str),
                       help="engine-only: comma-separated presets (default realtime,paper; --gpu: paper)")
    bench.add_argument("--paths", type=_csv(str), default=("eager", "compiled"),
                       help="--gpu: eager, compiled (the default CUDA path), compiled-whole (without branch streams), "
                            "compiled-branches (branch streams at every batch size), compiled-frozen (with inductor "
                            "freezing), tensorrt (default eager,compiled)")
    bench.add_argument("--variants", type=_csv(str),
                       help="--inductor: eager, symbolic, fixed, 1x1-as-mm, coordinate-descent, frozen, conv-relu, "
                            "gemm-autotune (default eager,symbolic,fixed)")
    bench.add_argument("--precisions", type=_csv(str),
                       help="--gpu: fp16, bf16, fp32 (int8 for tensorrt) (default fp16); --training: fp32, bf16 "
                            "(default both)")
    bench.add_argument("--restarts", type=int, default=1,
                       help="--gpu: start the compiled path again N times, reading the compile cache (default 1)")
    bench.add_argument("--backend", help="--streams, --crowd: the pipeline's backend (default auto)")
    bench.add_argument("--device-crops", action="store_true",
                       help="--streams, --crowd: the pipeline cuts person crops where the model runs (torch; "
                            "on CUDA, the GPU) instead of in each stream's preprocess process")
    bench.add_argument("--no-overlap", action="store_false", dest="overlap",
                       help="--streams: the pipeline waits for each inference batch before reading the next")
    bench.add_argument("--max-batch", type=int, default=64, help="--streams: crops per inference call (default 64)")
    bench.add_argument("--backends", type=_csv(str), default=("onnxruntime", "torch"),
                       help="engine-only: comma-separated backends (default onnxruntime,torch)")
    bench.add_argument("--batch", type=_csv(int), help="batch sizes (default 1,4; --gpu: 1,8,64)")
    bench.add_argument("--threads", type=int, help="inference (--training: PyTorch) threads (default: the runtime's)")
    bench.add_argument("--seconds", type=float,
                       help="timing per row, seconds (default 5; --capture, --smooth-stage 10; --training, "
                            "--loader 20; --inductor 1.5, three times)")
    bench.add_argument("--model", help="bench this model file instead of the presets / default model")
    bench.add_argument("--flip-test", action="store_true",
                       help="--engine-only: each row also with the flip test (a checkpoint --model), in the same run")
    bench.add_argument("--source", help="end-to-end, streams: video file (default: a generated 640x360 30 fps "
                       "clip); capture: video file (default ../shared/data/video/street_people_720p50.avi); "
                       "crowd: the one-person clip to tile (default ../shared/data/video/pose_squats.mp4)")
    bench.add_argument("--detector", help="crowd: YOLOX ONNX file (default ../shared/data/models/yolox_nano.onnx)")
    bench.add_argument("--mocap", help="smoothing, training: folder of CMU .bvh files (default "
                       "../shared/data/cmu_mocap)")
    bench.add_argument("--device", default="auto", help="--training: auto, cpu, cuda or cuda:N (default auto)")
    bench.add_argument("--json", help="also write the rows to this JSON file")
    bench.set_defaults(handler=_bench)
    soak = verbs.add_parser("soak", help="run the pipeline for minutes; report memory and file descriptors")
    soak.add_argument("--minutes", type=float, default=5.0, help="how long (default 5)")
    soak.add_argument("--interval", type=float, default=5.0, help="seconds between samples (default 5)")
    soak.add_argument("--source", help="video file, looped (default: the bundled demo clip)")
    soak.add_argument("--detector", default="none", help="the pipeline's detector (default none)")
    soak.add_argument("--model", help="the pipeline's model (default: the bundled weights)")
    soak.add_argument("--kill-every", type=float, metavar="SECONDS",
                      help="also kill a stage this often (SIGKILL; capture, preprocess, infer, smooth in turn)")
    soak.set_defaults(handler=_soak)
    run_cli.add_parsers(verbs)
    serve_cli.add_parsers(verbs)
    train_cli.add_parsers(verbs)
    experiment_cli.add_parsers(verbs)
    view_cli.add_parsers(verbs)
    return parser


def _soak(args: argparse.Namespace) -> int:
    from wildpose.tools import soak

    def progress(sample) -> None:
        log.info("soak %4.0f s: %d poses, RSS %.0f MB, %d file descriptors in %d processes", sample.t,
                 sample.poses, sum(sample.rss_mb.values()), sum(sample.fds.values()), len(sample.rss_mb))

    run_args = ["--detector", args.detector] + (["--model", args.model] if args.model else [])
    report = soak.soak(args.minutes * 60, args.interval, args.source, run_args, progress, args.kill_every)
    print(soak.format_table(report))
    return 0 if report.passed else 1


def _demo(args: argparse.Namespace) -> int:
    from wildpose.tools import demo

    return demo.run(demo.DemoConfig(model=args.model, backend=args.backend, detector=args.detector,
                                    every_frame=args.every_frame))


def _export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from wildpose.errors import ConfigError

    if args.triton_repo is not None:
        return _export_triton(args)
    if args.output is None:
        raise ConfigError("give -o FILE.onnx (or --triton-repo DIR for a Triton model repository)")
    if (args.checkpoint is None) == (args.preset is None):
        raise ConfigError("give either a checkpoint or --preset NAME --init-seed N, not both or neither")
    from wildpose.engine import loader  # PyTorch: after the checks
    from wildpose.engine.export import DEFAULT_OPSET, export_onnx

    source = args.checkpoint
    if args.preset is not None:
        if args.init_seed is None:
            raise ConfigError("--preset needs --init-seed N (untrained weights from that seed)")
        from wildpose.training import checkpoint
        from wildpose.training.models import hourglass

        source = Path(args.output).with_suffix(".pt")
        model = hourglass.build(hourglass.preset(args.preset), seed=args.init_seed)
        checkpoint.save(source, model, weights=checkpoint.untrained_label(args.init_seed), trained=False)
        logs.label_untrained(checkpoint.untrained_label(args.init_seed))
        log.info("wrote %s", source)
    metadata = export_onnx(source, args.output, opset=args.opset, flip_test=args.flip_test)
    if args.opset == DEFAULT_OPSET:
        loader.remember_export(source, args.output, flip_test=args.flip_test)
    flip = ", flip test" if metadata.flip_test else ""
    print(f"{args.output}: {metadata.model_config}, opset {metadata.opset}{flip}, {metadata.weights}")
    return 0


def _export_triton(args: argparse.Namespace) -> int:
    import importlib.util

    from wildpose.engine import loader, triton_repo
    from wildpose.errors import ConfigError

    if args.preset is not None or args.output is not None:
        raise ConfigError("--triton-repo takes a checkpoint or .onnx file (default: the bundled model), "
                          "not --preset or -o")
    onnx_path = loader.resolve(args.checkpoint, "onnxruntime", flip_test=args.flip_test)
    config = triton_repo.RepoConfig(max_batch=args.triton_max_batch, queue_delay_us=args.triton_queue_delay_us,
                                    instances=args.triton_instances, gpu=args.triton_gpu)
    plan_from = None
    if args.triton_gpu and importlib.util.find_spec("tensorrt") is not None:
        from wildpose.engine.cache import cache_dir
        from wildpose.engine.tensorrt_build import build_serialized

        size = loader.read_metadata(onnx_path, "onnxruntime").input_size
        plan_from = lambda onnx_bytes: build_serialized(  # noqa: E731
            onnx_bytes, triton_repo.CROPS_INPUT, size, "fp16", 1, max(1, config.max_batch // 2), config.max_batch,
            cache_dir("tensorrt") / "timing.cache", channels_last=True)
    elif args.triton_gpu:
        log.warning("TensorRT is not installed here: the repository serves the ONNX file with Triton's "
                    "ONNX Runtime backend (on the GPU through its CUDA provider)")
    repo = triton_repo.write(onnx_path, args.triton_repo, config, plan_from=plan_from)
    print(f"{repo}: models {triton_repo.MODEL_NAME} and {triton_repo.METADATA_MODEL_NAME}; serve with:\n"
          f"  docker run --rm -p 8000:8000 -p 8001:8001 -p 8002:8002 -v {repo.resolve()}:/models "
          f"nvcr.io/nvidia/tritonserver:24.08-py3 tritonserver --model-repository=/models")
    return 0


def _build_engine(args: argparse.Namespace) -> int:
    from wildpose.engine import loader
    from wildpose.engine.tensorrt_backend import TensorRTBackend

    path = loader.resolve(args.model, "tensorrt")
    calibration = None
    if args.precision == "int8":
        from wildpose.stream.calibration import calibration_batches
        from wildpose.tools import democlip

        size = loader.read_metadata(path, "tensorrt").input_size
        calibration = calibration_batches(args.int8_calibration or democlip.BUNDLED_CLIP, size)
    with TensorRTBackend(path, precision=args.precision, max_batch=args.max_batch,
                         opt_batch=min(16, args.max_batch), calibration=calibration) as engine:
        print(f"{engine.engine_path}: {engine.describe()} ({'cache hit' if engine.cache_hit else 'built'})")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from pathlib import Path

    from wildpose.errors import ConfigError
    from wildpose.tools import bench

    if args.seconds is None:
        args.seconds = (20.0 if args.training or args.loader else 1.5 if args.inductor
                        else 10.0 if args.capture or args.smooth_stage else 5.0)
    if args.crowd:
        from wildpose.tools import bench_crowd

        rows, weights = bench_crowd.run_crowds(
            detector=Path(args.detector) if args.detector else bench_crowd.DEFAULT_DETECTOR, model=args.model,
            source=Path(args.source) if args.source else bench_crowd.DEFAULT_CLIP,
            run_args=(*(("--backend", args.backend) if args.backend else ()),
                      *(("--device-crops",) if args.device_crops else ())))
        print(bench_crowd.format_table(rows, weights))
        if args.json:
            bench.write_json(rows, args.json)
        return 0
    if args.smoothing:
        from wildpose.stream.config import SmoothingConfig
        from wildpose.tools import bench_smoothing

        mocap = Path(args.mocap) if args.mocap else bench_smoothing.DEFAULT_MOCAP
        config = SmoothingConfig()
        results = bench_smoothing.evaluate(bench_smoothing.load_motions(mocap), config)
        print(bench_smoothing.format_table(results, config))
        if args.json:
            bench.write_json(results, args.json)
        return 0
    if args.gpu:
        from wildpose.tools import bench_gpu

        rows = bench_gpu.run_gpu_bench(bench_gpu.GpuBenchConfig(
            presets=args.presets or ("paper",), paths=args.paths, precisions=args.precisions or ("fp16",),
            batches=args.batch or (1, 8, 64), seconds=args.seconds, restarts=args.restarts))
        print(bench_gpu.format_table(rows))
        if args.json:
            bench.write_json(rows, args.json)
        return 0
    if args.inductor:
        from wildpose.tools import bench_inductor

        batch = args.batch or (64,)
        if len(batch) != 1:
            raise ConfigError(f"--batch for --inductor is one size, got {list(batch)}")
        rows = bench_inductor.run_inductor_bench(bench_inductor.InductorBenchConfig(
            variants=args.variants or bench_inductor.DEFAULT_VARIANTS, batch=batch[0],
            seconds=args.seconds, preset=(args.presets or ("paper",))[0]))
        print(bench_inductor.format_table(rows))
        if args.json:
            bench.write_json(rows, args.json)
        return 0
    if args.training:
        from wildpose.tools import bench_training

        batch = args.batch or (32,)
        if len(batch) != 1:
            raise ConfigError(f"--batch for --training is one size, got {list(batch)}")
        rows = bench_training.run_training_bench(bench_training.TrainingBenchConfig(
            presets=args.presets or ("realtime",), precisions=args.precisions or ("fp32", "bf16"), batch=batch[0],
            device=args.device, threads=args.threads, seconds=args.seconds, mocap=args.mocap))
        print(bench_training.format_table(rows))
        if args.json:
            bench.write_json(rows, args.json)
        return 0
    if args.loader:
        from wildpose.tools import bench_training

        batch = args.batch or (32,)
        if len(batch) != 1:
            raise ConfigError(f"--batch for --loader is one size, got {list(batch)}")
        rows = bench_training.run_loader_bench(args.loader, bench_training.TrainingBenchConfig(
            presets=args.presets or ("realtime",), batch=batch[0], seconds=args.seconds, mocap=args.mocap))
        print(bench_training.format_loader_table(rows))
        if args.json:
            bench.write_json(rows, args.json)
        return 0
    if args.faults:
        from wildpose.tools import bench_faults

        rows, clip = bench_faults.run_fault_bench(bench_faults.FaultBenchConfig(stages=args.kill))
        print(bench_faults.format_table(rows, clip))
        if args.json:
            bench.write_json(rows, args.json)
        return 0
    if args.capture:
        from wildpose.tools import bench_capture

        rows, clip = bench_capture.run_capture_bench(bench_capture.CaptureBenchConfig(
            counts=args.capture, source=Path(args.source) if args.source else bench_capture.DEFAULT_CLIP,
            seconds=args.seconds))
        print(bench_capture.format_table(rows, clip))
        if args.json:
            bench.write_json(rows, args.json)
        return 0
    if args.smooth_stage:
        from wildpose.tools import bench_smooth_stage

        rows = bench_smooth_stage.run_smooth_stage_bench(bench_smooth_stage.SmoothStageBenchConfig(
            counts=args.smooth_stage, seconds=args.seconds))
        print(bench_smooth_stage.format_table(rows))
        if args.json:
            bench.write_json(rows, args.json)
        return 0
    if args.triton:
        from wildpose.tools import bench_triton

        rows, clip = bench_triton.run_triton_bench(bench_triton.TritonBenchConfig(
            counts=args.triton, source=args.source, queue_delay_us=args.queue_delay_us))
        print(bench_triton.format_table(rows, clip))
        if args.json:
            bench.write_json(rows, args.json)
        return 0
    if args.streams:
        from wildpose.tools import bench_streams

        rows, clip = bench_streams.run_streams(bench_streams.StreamsBenchConfig(
            counts=args.streams, source=args.source, model=args.model, backend=args.backend or "auto",
            max_batch=args.max_batch, device_crops=args.device_crops,
            overlap=args.overlap))
        print(bench_streams.format_table(rows, clip))
        if args.json:
            bench.write_json(rows, args.json)
        return 0
    if args.end_to_end:
        from wildpose.tools import bench_pipeline

        rows, weights = bench_pipeline.run_end_to_end(bench_pipeline.PipelineBenchConfig(
            source=args.source, model=args.model, threads=args.threads, engine_seconds=args.seconds))
        print(bench_pipeline.format_table(rows, weights))
        if args.json:
            bench.write_json(rows, args.json)
        return 0
    config = bench.EngineBenchConfig(presets=args.presets or ("realtime", "paper"), backends=args.backends,
                                     batches=args.batch or (1, 4),
                                     threads=args.threads, seconds=args.seconds, model=args.model,
                                     flip_tests=(False, True) if args.flip_test else (False,))
    rows = bench.run_engine_only(config)
    print(bench.format_table(rows))
    if args.json:
        bench.write_json(rows, args.json)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.log_format:
        os.environ[logs.FORMAT_VARIABLE] = args.log_format  # for every process the command starts too
    problem = logs.check_format()
    if problem:
        print(f"wildpose: error: {problem}", file=sys.stderr)
        return 2
    logs.setup(verbose=args.verbose)
    if args.verb is None:
        parser.print_help()
        return 2
    if os.getpid() == 1:
        _stop_on_sigterm()
    return report_errors(lambda: args.handler(args))


def _stop_on_sigterm() -> None:
    """As a container's first process (pid 1) a process gets no default action for SIGTERM, so
    `docker stop` would wait its 10 s and kill it; stop as on Ctrl-C instead. Verbs that handle
    SIGTERM themselves (`run`, `proxy`, `web`, ...) replace this when they start."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, interrupt)


if __name__ == "__main__":
    sys.exit(main())
