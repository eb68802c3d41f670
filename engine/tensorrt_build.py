"""Building TensorRT engines from our ONNX files, cached on disk (TensorRT 10+ Python API).

An engine is only valid for the TensorRT version and the GPU it was built on, and a build takes
minutes, so the serialised engine is kept under a key made of everything that shapes it: the ONNX
bytes, precision, batch range, TensorRT version, GPU name (and, for INT8, the calibration data).
Any change is a miss and a rebuild. The builder's timing cache is kept too, so rebuilds are faster.
TensorRT is imported only inside the functions that need it: this module imports without it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from wildpose.engine.cache import cache_dir
from wildpose.errors import BackendUnavailableError, ConfigError, ModelFileError

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")
_WORKSPACE_BYTES = 4 << 30


@dataclass(frozen=True)
class EngineKey:
    """Everything a serialised engine depends on."""

    onnx_sha256: str
    precision: str
    min_batch: int
    opt_batch: int
    max_batch: int
    tensorrt_version: str
    gpu_name: str
    calibration_sha256: str = ""  # INT8 only: the calibration crops

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()


def check_options(precision: str, min_batch: int, opt_batch: int, max_batch: int) -> None:
    if precision not in PRECISIONS:
        raise ConfigError(f"TensorRT precision must be one of {list(PRECISIONS)}, got {precision!r}")
    if not 1 <= min_batch <= opt_batch <= max_batch:
        raise ConfigError(f"TensorRT batch range must satisfy 1 <= min <= opt <= max, got "
                          f"{min_batch}/{opt_batch}/{max_batch}")


def cached_engine(key: EngineKey, build: Callable[[], bytes], root: Path | None = None) -> tuple[Path, bool]:
    """The engine file for `key`, built with `build()` on a miss. Returns (path, hit).

    The file is written under a temporary name and renamed, so an interrupted build never leaves a
    truncated engine behind that a later start would take for a hit.
    """
    folder = (root or cache_dir("tensorrt")) / key.digest()[:32]
    path = folder / "engine.plan"
    if path.is_file():
        log.info("TensorRT engine cache hit: %s", path)
        return path, True
    log.info("TensorRT engine cache miss: building %s (%s, batch %d..%d) into %s", key.precision,
             key.gpu_name, key.min_batch, key.max_batch, folder)
    data = build()
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".partial-{os.getpid()}")
    partial.write_bytes(data)
    (folder / "key.json").write_text(json.dumps(asdict(key), indent=2) + "\n")
    partial.replace(path)
    return path, False


def tensorrt_or_fail():
    """The `tensorrt` module, or a one-line error saying what is missing."""
    try:
        import tensorrt
    except ImportError:
        raise BackendUnavailableError("the tensorrt backend needs TensorRT 10+ for Python (`import tensorrt` "
                                      "failed) and an NVIDIA GPU; install NVIDIA's tensorrt wheel, or use "
                                      "--backend torch --device cuda, or --backend onnxruntime") from None
    major = int(tensorrt.__version__.split(".")[0])
    if major < 10:
        raise BackendUnavailableError(f"the tensorrt backend needs TensorRT 10 or later, found "
                                      f"{tensorrt.__version__}; upgrade it or use --backend torch")
    return tensorrt


def build_serialized(onnx_bytes: bytes, input_name: str, input_size: int, precision: str, min_batch: int,
                     opt_batch: int, max_batch: int, timing_cache: Path, calibrator=None,
                     channels_last: bool = False) -> bytes:
    """Parse the ONNX model and build a serialised engine with one optimisation profile.

    channels_last: the input is `(N, S, S, 3)` (the uint8 crops of a Triton repository's model)."""
    trt = tensorrt_or_fail()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelFileError(f"TensorRT cannot parse the ONNX model: {errors[:300]}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, _WORKSPACE_BYTES)
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)  # INT8 layers fall back to FP16, not FP32
    profile = builder.create_optimization_profile()
    shape = (input_size, input_size, 3) if channels_last else (3, input_size, input_size)
    profile.set_shape(input_name, (min_batch, *shape), (opt_batch, *shape), (max_batch, *shape))
    config.add_optimization_profile(profile)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = calibrator
        config.set_calibration_profile(profile)
    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    monitor = _progress_monitor(trt)
    config.progress_monitor = monitor
    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendUnavailableError("TensorRT could not build an engine from this model (its log above "
                                      "says why); use --backend torch --device cuda meanwhile")
    timing_cache.write_bytes(memoryview(config.get_timing_cache().serialize()))
    log.info("built the TensorRT %s engine in %.0f s", precision, time.perf_counter() - start)
    return bytes(serialized)


def _progress_monitor(trt):
    """An `IProgressMonitor` that shows the builder's phases as progress bars."""
    from tqdm import tqdm

    class Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._bars: dict[str, tqdm] = {}

        def phase_start(self, phase_name, parent_phase, num_steps) -> None:
            self._bars[phase_name] = tqdm(total=num_steps, desc=phase_name, leave=parent_phase is None,
                                          position=len(self._bars))

        def step_complete(self, phase_name, step) -> bool:
            bar = self._bars.get(phase_name)
            if bar is not None:
                bar.update(step + 1 - bar.n)
            return True  # False would cancel the build

        def phase_finish(self, phase_name) -> None:
            bar = self._bars.pop(phase_name, None)
            if bar is not None:
                bar.close()

    return Monitor()


def entropy_calibrator(trt, batches: list[np.ndarray], cache_path: Path, api):
    """An INT8 entropy calibrator fed by float32 `(N, 3, S, S)` batches; its result is cached at
    `cache_path`, so a rebuild with the same crops skips calibration."""

    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._batches = iter(batches)
            self._buffer = api.buffer(batches[0].nbytes)
            self._stream = api.stream()

        def get_batch_size(self) -> int:
            return len(batches[0])

        def get_batch(self, names):
            batch = next(self._batches, None)
            if batch is None:
                return None
            self._buffer.view(np.float32, batch.shape)[...] = batch
            self._stream.upload(self._buffer, batch.nbytes)
            self._stream.synchronize()
            return [self._buffer.device]

        def read_calibration_cache(self):
            return cache_path.read_bytes() if cache_path.is_file() else None

        def write_calibration_cache(self, cache) -> None:
            cache_path.write_bytes(bytes(cache))

    return Calibrator()

