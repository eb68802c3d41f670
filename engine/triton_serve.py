"""`wildpose serve`: any of our engines behind a real Triton Inference Server, through PyTriton.

PyTriton (`nvidia-pytriton`) starts the `tritonserver` it bundles; Triton's dynamic batcher merges the
requests of every connected pipeline into one engine call, and Triton itself answers health
(`/v2/health/ready` on HTTP) and Prometheus metrics (`/metrics`). The models are the ones of
`engine.triton_repo`, so clients cannot tell this server from an official one.

Two facts about PyTriton 0.7 that this module checks before starting, each checked on this machine:
its Python backend stub loads libpython, so the interpreter must have a shared one (and we point the
loader at this interpreter's, not another Python's of the same version); and the stub is built
against NumPy 1, so under NumPy 2 every answer comes back empty.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wildpose.engine.base import Backend
from wildpose.engine.cache import cache_dir
from wildpose.engine.metadata import OUTPUT_NAMES
from wildpose.engine.triton_repo import (
    CROPS_INPUT,
    METADATA_INPUT,
    METADATA_MODEL_NAME,
    METADATA_OUTPUT,
    MODEL_NAME,
)
from wildpose.errors import BackendUnavailableError, ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeConfig:
    host: str = "127.0.0.1"  # loopback unless told otherwise: the server has no authentication
    grpc_port: int = 8001
    http_port: int = 8000  # health (/v2/health/ready) and the HTTP inference API
    metrics_port: int = 8002  # Prometheus (/metrics)
    max_batch: int = 32  # the largest batch the dynamic batcher forms
    queue_delay_us: int = 2000  # how long a request waits for others to join its batch

    def __post_init__(self) -> None:
        ports = (self.grpc_port, self.http_port, self.metrics_port)
        if any(not isinstance(p, int) or not 0 < p < 65536 for p in ports) or len(set(ports)) != 3:
            raise ConfigError(f"serve ports must be three different ports in 1..65535, got {ports}")
        if not isinstance(self.max_batch, int) or self.max_batch < 1:
            raise ConfigError(f"serve max_batch must be a positive integer, got {self.max_batch!r}")
        if not isinstance(self.queue_delay_us, int) or self.queue_delay_us < 0:
            raise ConfigError(f"serve queue delay must be >= 0 microseconds, got {self.queue_delay_us!r}")


def check_runtime() -> None:
    """Raise `BackendUnavailableError` (one line, with the fix) where PyTriton cannot work."""
    fix = "make the serve environment with `make serve-env` (see README, Beyond one machine)"
    try:
        import pytriton  # noqa: F401
    except ImportError:
        raise BackendUnavailableError(f"wildpose serve needs PyTriton (nvidia-pytriton), not installed "
                                      f"in {sys.prefix}; {fix}") from None
    if int(np.__version__.split(".")[0]) >= 2:
        raise BackendUnavailableError(f"PyTriton's backend stub is built against NumPy 1 and answers "
                                      f"empty tensors under NumPy {np.__version__}; {fix}")
    library = Path(sysconfig.get_config_var("LIBDIR") or "") / (sysconfig.get_config_var("LDLIBRARY") or "")
    if not sysconfig.get_config_var("Py_ENABLE_SHARED") or not library.is_file():
        raise BackendUnavailableError(f"this Python ({sys.executable}) has no shared libpython, which "
                                      "Triton's Python backend loads; make the serve environment with "
                                      "one that has (Debian's /usr/bin/python3): make serve-env "
                                      "SERVE_PYTHON=/usr/bin/python3")


def check_ports(config: ServeConfig) -> None:
    """Fail in one line when a port is taken; Triton itself would fail with a page of gRPC errors."""
    for name, port in (("grpc", config.grpc_port), ("http", config.http_port), ("metrics", config.metrics_port)):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((config.host, port))
            except OSError as exc:
                raise ConfigError(f"cannot listen on {config.host}:{port} ({name}): {exc.strerror}; another "
                                  f"server runs there? choose another --{name}-port") from None


def _use_this_libpython() -> None:
    """Make the backend stub load this interpreter's libpython: without this, a pyenv Python found
    Debian's library of the same minor version first and failed inside `multiprocessing`."""
    libdir = sysconfig.get_config_var("LIBDIR")
    paths = [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(":") if p and p != libdir]
    os.environ["LD_LIBRARY_PATH"] = ":".join([libdir, *paths])


def serve(engine: Backend, config: ServeConfig = ServeConfig()) -> None:
    """Serve `engine` until SIGINT/SIGTERM or the server dies; logs the endpoints once ready."""
    check_runtime()
    check_ports(config)
    if config.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s: Triton has no authentication of its own, anyone who reaches these ports "
                    "can use the server; keep them behind a firewall or a private network", config.host)
    _use_this_libpython()
    from pytriton.decorators import batch
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig

    size, joints = engine.input_size, len(engine.metadata.joints)
    record = np.array([engine.metadata.to_json().encode()], dtype=np.object_)

    @batch
    def infer(**inputs):
        out = engine.infer_crops(np.ascontiguousarray(inputs[CROPS_INPUT]))
        return dict(zip(OUTPUT_NAMES, out, strict=True))

    def metadata(requests):
        return [{METADATA_OUTPUT: record} for _ in requests]

    # The server's own log goes to a file: its start-up tables and CUDA probing on a CPU machine
    # would bury ours.
    server_log = cache_dir("triton") / f"tritonserver-{config.grpc_port}.log"
    logging.getLogger("pytriton").setLevel(logging.WARNING)
    triton_config = TritonConfig(
        grpc_address=config.host, grpc_port=config.grpc_port, http_address=config.host,
        http_port=config.http_port, metrics_address=config.host, metrics_port=config.metrics_port,
        log_verbose=0, log_file=server_log, exit_on_error=True)
    from pytriton.exceptions import PyTritonError

    try:
        triton = Triton(config=triton_config)
        triton.__enter__()
    except (PyTritonError, OSError, RuntimeError) as exc:
        raise BackendUnavailableError(f"Triton did not start ({str(exc).splitlines()[0][:200]}); its log: "
                                      f"{server_log}") from None
    try:
        triton.bind(MODEL_NAME, infer,
                    inputs=[Tensor(name=CROPS_INPUT, dtype=np.uint8, shape=(size, size, 3))],
                    outputs=[Tensor(name="joints2d_crop", dtype=np.float32, shape=(joints, 2)),
                             Tensor(name="conf", dtype=np.float32, shape=(joints,)),
                             Tensor(name="depth", dtype=np.float32, shape=(joints,))],
                    config=ModelConfig(max_batch_size=config.max_batch,
                                       batcher=DynamicBatcher(max_queue_delay_microseconds=config.queue_delay_us)))
        triton.bind(METADATA_MODEL_NAME, metadata,
                    inputs=[Tensor(name=METADATA_INPUT, dtype=np.int32, shape=(1,))],
                    outputs=[Tensor(name=METADATA_OUTPUT, dtype=bytes, shape=(1,))],
                    config=ModelConfig(batching=False))
        triton.connect()
        log.info("serving %s on grpc %s:%d (health and inference on http %s:%d, Prometheus metrics on "
                 "%s:%d/metrics); batches up to %d, queue delay %d us; server log %s", engine.describe(),
                 config.host, config.grpc_port, config.host, config.http_port, config.host,
                 config.metrics_port, config.max_batch, config.queue_delay_us, server_log)
        triton.serve()
    finally:
        triton.__exit__(None, None, None)
    log.info("server stopped")

