"""`wildpose serve`: one of our engines as a Triton Inference Server (PyTriton) for many pipelines.

PyTriton needs NumPy 1 and the rest of WildPose needs NumPy 2, so the server runs from its own
environment (`make serve-env` builds `.venv-serve`). `wildpose serve` in the main environment hands
over to that environment's Python (same process id, same arguments); this module imports only the
engine room, so it runs there without OpenCV, PyAV or the pipeline.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from wildpose import logs
from wildpose.errors import BackendUnavailableError
from wildpose.tools import report_errors

log = logging.getLogger("wildpose")

SERVE_PYTHON_ENV = "WILDPOSE_SERVE_PYTHON"

EXAMPLES = """examples:
  wildpose serve                                  # the bundled model on grpc 127.0.0.1:8001
  wildpose serve --model paper.onnx --grpc-port 9001 --http-port 9000 --metrics-port 9002
  wildpose serve --backend torch --device cuda --model runs/stage3.pt --host 0.0.0.0
  wildpose run --source cam.mp4 --engine triton://127.0.0.1:8001        # a pipeline that uses it
"""


def add_parsers(verbs) -> None:
    serve = verbs.add_parser("serve", help="serve the engine through Triton Inference Server (PyTriton)",
                             epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(serve)
    serve.set_defaults(handler=_handover)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model file (.onnx or .pt); default: the embedded model")
    parser.add_argument("--backend", default="auto", help="auto (default), onnxruntime, torch or tensorrt")
    parser.add_argument("--device", default="auto", help="auto (default: a GPU when there is one), cpu or cuda")
    parser.add_argument("--precision", help="fp32/fp16/bf16 (torch), fp32/fp16/int8 (tensorrt)")
    parser.add_argument("--threads", type=int, help="inference threads (default: the runtime's)")
    parser.add_argument("--spin", action="store_true",
                        help="let idle ONNX Runtime threads spin: lower latency on a machine of its own, "
                             "but they take the cores from anything beside the server")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; the server has no authentication)")
    parser.add_argument("--grpc-port", type=int, default=8001, help="gRPC port, what pipelines use (default 8001)")
    parser.add_argument("--http-port", type=int, default=8000, help="HTTP port: health, inference (default 8000)")
    parser.add_argument("--metrics-port", type=int, default=8002, help="Prometheus metrics port (default 8002)")
    parser.add_argument("--max-batch", type=int, default=32,
                        help="largest batch Triton's dynamic batcher forms (default 32)")
    parser.add_argument("--queue-delay-us", type=int, default=2000,
                        help="how long a request waits for others to join its batch, microseconds (default 2000)")


def _handover(args: argparse.Namespace) -> int:
    """Serve here when this environment can; otherwise run the serve environment's Python."""
    from wildpose.engine.triton_serve import check_runtime

    try:
        check_runtime()
    except BackendUnavailableError as problem:
        python = serve_python()
        if python is None:
            raise
        log.debug("serving from %s (%s)", python, problem)
        argv = [str(python), "-m", "wildpose.tools.serve_cli"] + sys.argv[sys.argv.index("serve") + 1:]
        if args.verbose:
            argv.append("--verbose")
        os.execv(python, argv)
    return serve(args)


def serve_python() -> Path | None:
    """The serve environment's Python: $WILDPOSE_SERVE_PYTHON, else `<this venv>-serve/bin/python`."""
    configured = os.environ.get(SERVE_PYTHON_ENV)
    if configured:
        if not Path(configured).is_file():
            raise BackendUnavailableError(f"{SERVE_PYTHON_ENV}={configured} does not exist; point it at "
                                          "the serve environment's python (make serve-env)")
        return Path(configured)
    sibling = Path(sys.prefix).with_name(Path(sys.prefix).name + "-serve") / "bin" / "python"
    return sibling if sibling.is_file() else None


def serve(args: argparse.Namespace) -> int:
    from wildpose.engine import loader
    from wildpose.engine.triton_serve import ServeConfig
    from wildpose.engine.triton_serve import serve as serve_engine

    config = ServeConfig(host=args.host, grpc_port=args.grpc_port, http_port=args.http_port,
                         metrics_port=args.metrics_port, max_batch=args.max_batch,
                         queue_delay_us=args.queue_delay_us)
    signal.signal(signal.SIGTERM, _interrupt)  # PyTriton stops cleanly on KeyboardInterrupt
    with loader.load(args.model, args.backend, device=args.device, threads=args.threads, spin=args.spin,
                     precision=args.precision) as engine:
        engine.prepare()
        serve_engine(engine, config)
    return 0


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wildpose serve", epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    logs.setup(verbose=args.verbose)
    return report_errors(lambda: serve(args))


if __name__ == "__main__":
    sys.exit(main())
