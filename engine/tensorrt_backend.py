"""TensorRT backend: an engine built (and cached) from our ONNX file, run with `execute_async_v3`.

Buffers are allocated once for the largest batch of the engine's profile: pinned host memory and
device memory through pycuda or cuda-python (`cuda_buffers`). Each call copies the batch into the
pinned input, uploads it, runs the engine and downloads the outputs, all on one CUDA stream.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from wildpose.engine import cuda_buffers, onnx_file
from wildpose.engine.base import Backend, EngineOutput
from wildpose.engine.cache import cache_dir
from wildpose.engine.metadata import OUTPUT_NAMES, sha256_bytes
from wildpose.engine.tensorrt_build import (
    EngineKey,
    build_serialized,
    cached_engine,
    check_options,
    entropy_calibrator,
    tensorrt_or_fail,
)
from wildpose.errors import BackendUnavailableError, ConfigError, ModelFileError

log = logging.getLogger(__name__)


class TensorRTBackend(Backend):
    """precision: "fp32", "fp16" or "int8" (INT8 needs `calibration`: float32 `(N, 3, S, S)` batches).
    The engine accepts batches of `min_batch`..`max_batch` crops; larger batches are split."""

    name = "tensorrt"

    def __init__(self, onnx_path: str | Path, *, precision: str = "fp16", min_batch: int = 1, opt_batch: int = 16,
                 max_batch: int = 64, calibration: list[np.ndarray] | None = None) -> None:
        check_options(precision, min_batch, opt_batch, max_batch)
        if precision == "int8" and not calibration:
            raise ConfigError("an INT8 engine needs calibration crops: pass --calibration VIDEO (real "
                              "footage, or the bundled demo clip)")
        trt = tensorrt_or_fail()
        api = cuda_buffers.open_api()
        data, self.metadata = onnx_file.load_verified(onnx_path)
        self.device, self.precision, self.max_batch = "cuda", precision, max_batch
        size = self.input_size
        calibration_sha = sha256_bytes(b"".join(b.tobytes() for b in calibration)) if calibration else ""
        key = EngineKey(onnx_sha256=sha256_bytes(data), precision=precision, min_batch=min_batch,
                        opt_batch=opt_batch, max_batch=max_batch, tensorrt_version=trt.__version__,
                        gpu_name=api.device_name(), calibration_sha256=calibration_sha if precision == "int8" else "")

        def build() -> bytes:
            calibrator = None
            if precision == "int8":
                calibrator = entropy_calibrator(
                    trt, calibration, cache_dir("tensorrt") / f"calibration-{calibration_sha[:24]}.cache", api)
            return build_serialized(data, self.metadata.input_name, size, precision, min_batch, opt_batch,
                                    max_batch, cache_dir("tensorrt") / "timing.cache", calibrator)

        self.engine_path, self.cache_hit = cached_engine(key, build)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self._engine is None:
            raise ModelFileError(f"TensorRT cannot load the cached engine {self.engine_path}; delete it "
                                 "and it will be rebuilt")
        self._context = self._engine.create_execution_context()
        self._stream = api.stream()
        self._input = api.buffer(max_batch * 3 * size * size * 4)
        self._outputs = {}
        for name in OUTPUT_NAMES:
            dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(name)))
            per_item = int(np.prod([d for d in self._engine.get_tensor_shape(name)[1:]]))
            self._outputs[name] = (api.buffer(max_batch * per_item * dtype.itemsize), dtype)
        self._context.set_tensor_address(self.metadata.input_name, self._input.device)
        for name, (buffer, _) in self._outputs.items():
            self._context.set_tensor_address(name, buffer.device)
        log.info("TensorRT %s %s engine for batches %d..%d on %s (%s, %s)", trt.__version__, precision,
                 min_batch, max_batch, api.device_name(), "cache hit" if self.cache_hit else "built",
                 self.metadata.weights)

    def describe(self) -> str:
        return super().describe() + f", {self.precision}, engine {self.engine_path.parent.name[:12]}"

    def _infer(self, batch: np.ndarray) -> EngineOutput:
        parts = [self._run(batch[i:i + self.max_batch]) for i in range(0, len(batch), self.max_batch)]
        if len(parts) == 1:
            return parts[0]
        return EngineOutput(*(np.concatenate(column) for column in zip(*parts, strict=True)))

    def _run(self, chunk: np.ndarray) -> EngineOutput:
        self._input.view(np.float32, chunk.shape)[...] = chunk
        self._stream.upload(self._input, chunk.nbytes)
        self._context.set_input_shape(self.metadata.input_name, chunk.shape)
        if not self._context.execute_async_v3(self._stream.handle):
            raise BackendUnavailableError("TensorRT failed to enqueue the engine (its log above says why)")
        shapes = {}
        for name, (buffer, dtype) in self._outputs.items():
            shapes[name] = tuple(self._context.get_tensor_shape(name))
            self._stream.download(buffer, int(np.prod(shapes[name])) * dtype.itemsize)
        self._stream.synchronize()
        return EngineOutput(*(self._outputs[name][0].view(self._outputs[name][1], shapes[name]).astype(np.float32)
                              for name in OUTPUT_NAMES))

    def close(self) -> None:
        for buffer in [self._input, *(b for b, _ in self._outputs.values())]:
            buffer.free()
        self._stream.close()
        self._context = self._engine = self._runtime = None
