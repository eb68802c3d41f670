"""PyTorch backend: runs a checkpoint directly, on the CPU (eager float32, the reference) or on a
CUDA device (by default fp16, batch norm folded, channels-last, compiled, replayed as CUDA graphs)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from wildpose import __version__
from wildpose.engine.base import Backend, EngineOutput, Pending, check_crops, check_frames
from wildpose.engine.graph import DecodedPoseNet
from wildpose.engine.metadata import EngineMetadata, sha256_file
from wildpose.engine.torch_optimize import fold_batchnorm, fuse_conv_relu, precision_dtype
from wildpose.engine.torch_runner import GRAPH_BATCHES, TorchRunner
from wildpose.errors import BackendUnavailableError, ConfigError
from wildpose.training import checkpoint

log = logging.getLogger(__name__)

# The largest batch whose graph runs the hourglass branches on parallel streams by default: measured
# faster at batches 1 and 2, slower from 4 up (README, "GPU").
BRANCH_STREAMS = 2


class TorchBackend(Backend):
    """PyTorch on a checkpoint (`.pt`); on the CPU, the reference the other backends are tested against.

    precision: "fp32", "fp16" or "bf16" (None: fp16 on CUDA, fp32 on the CPU, which only runs fp32).
    compile: CUDA only (None: on): fold batch norm, `torch.compile`, and replay CUDA graphs captured
    per batch size in `graph_batches`. Off: plain eager PyTorch in `precision`, channels-last.
    freeze: with compile, let inductor fold the weights as constants: about 5 % more frames/s at batch
    64 on an H200 against a symbolic batch size, nothing measurable against the fixed one the largest
    batch now has, and every start takes 20-30 s longer (`wildpose bench --gpu --paths
    compiled,compiled-frozen` weighs both).
    branch_streams: CUDA only: batches up to this size run each hourglass level's full-resolution
    branch on a CUDA stream of its own (`engine/branch_streams.py`; 0: none; None: `BRANCH_STREAMS`
    when compiled). On an H200 that made batch 1 of the paper preset 1.37-1.41 ms instead of
    1.55-1.57 and batch 2 1.65 instead of 1.72, and from batch 4 up it was slower (2.00 against 1.94).
    flip_test: run each crop mirrored as well and average the heatmaps (`engine.graph`): twice the compute.
    inductor_options, fixed_largest_batch: for benchmarks that weigh inductor's settings
    (`wildpose bench --inductor`): options passed to `torch.compile`, and whether the largest captured
    batch is compiled with its size fixed (the default; 5 % faster on an H200 at batch 64) or shares
    the symbolic-batch graph of the smaller sizes; conv_relu: with compile, each ReLU after a
    convolution runs in cuDNN's convolution kernel (`torch_optimize.fuse_conv_relu`).
    """

    name = "torch"
    # Every batch goes through the runner, which overlaps it with the caller's next one (CUDA streams
    # on a GPU, a worker thread on the CPU): `infer_*` are `submit_*` waited for at once.
    overlaps = True

    def __init__(self, checkpoint_path: str | Path, *, device: str = "cpu", threads: int | None = None,
                 precision: str | None = None, compile: bool | None = None,
                 graph_batches: tuple[int, ...] | None = None, freeze: bool = False,
                 branch_streams: int | None = None, flip_test: bool = False, inductor_options: dict | None = None,
                 fixed_largest_batch: bool = True, conv_relu: bool = False) -> None:
        if device not in ("cpu", "cuda"):
            raise ConfigError(f"torch device must be 'cpu' or 'cuda', got {device!r}")
        if device == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailableError("the torch backend was asked for cuda, but PyTorch sees no "
                                          "CUDA device here; use --device cpu")
        on_cuda = device == "cuda"
        precision = precision or ("fp16" if on_cuda else "fp32")
        dtype = precision_dtype(precision)
        if not on_cuda and (precision != "fp32" or compile or freeze or branch_streams):
            raise ConfigError("the torch backend runs eager float32 on the CPU; --precision fp16/bf16, "
                              "compiling, freezing, CUDA graphs and branch streams need --device cuda")
        if threads is not None:
            if threads < 1:
                raise ConfigError(f"threads must be a positive integer, got {threads}")
            torch.set_num_threads(threads)
        network, info = checkpoint.load(checkpoint_path)
        self.metadata = EngineMetadata(
            model_config=info.model_config, weights=info.weights, trained=info.trained,
            checkpoint_sha256=sha256_file(checkpoint_path), wildpose_version=__version__,
            git_commit=info.git_commit, flip_test=flip_test,
        )
        self.device = device
        self.precision = precision
        graph = DecodedPoseNet(network, flip_test=flip_test).eval()
        if on_cuda:
            torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels
            compile = True if compile is None else compile
            if compile:
                fold_batchnorm(graph)
                if conv_relu:
                    fuse_conv_relu(graph)
            compiled = "compiled (frozen)" if freeze else "compiled"
            self.optimizations = (f"{precision}, BN folded, channels-last, {compiled}, CUDA graphs" if compile
                                  else f"{precision}, channels-last, eager")
            if branch_streams is None:
                branch_streams = BRANCH_STREAMS if compile else 0
            if branch_streams > 0:
                self.optimizations += f", branches on streams up to batch {branch_streams}"
        else:
            self.optimizations = "eager fp32"
        self._runner = TorchRunner(graph, self.input_size, dtype, device=device, compile=bool(compile),
                                   graphs=bool(compile), batches=graph_batches or GRAPH_BATCHES, freeze=freeze,
                                   branch_streams=branch_streams or 0, inductor_options=inductor_options,
                                   fixed_largest_batch=fixed_largest_batch)
        log.info("loaded %s with torch %s on %s (%s; %s)", checkpoint_path, torch.__version__, device,
                 self.optimizations, self.metadata.weights)

    def describe(self) -> str:
        return super().describe() + f", {self.optimizations}"

    def prepare(self, kinds: tuple[str, ...] = ("uint8",)) -> None:
        """CUDA: compile and capture every batch size now instead of on first use (logged with timing)."""
        if self.device != "cuda":
            return
        log.info("preparing %s for CUDA (the first start compiles; later ones read the inductor cache)",
                 self.optimizations)
        try:
            seconds = self._runner.prepare(kinds)
        except Exception as exc:  # inductor, Triton and the CUDA driver raise many unrelated types
            reason = (str(exc).strip().splitlines() or [""])[0][:200]
            raise BackendUnavailableError(f"compiling the network for CUDA failed ({type(exc).__name__}: "
                                          f"{reason}); run with --no-compile for plain eager PyTorch") from exc
        log.info("CUDA graphs for batches %s ready in %.1f s", list(self._runner.batches), seconds)
        self.prepare_seconds = seconds

    def device_timer(self):
        """CUDA only: `timer(batch, seconds)` -> ms per batch with the input already on the GPU."""
        if self.device != "cuda":
            raise ConfigError("on-device timing needs the torch backend on cuda")
        return self._runner.time_on_device

    def kernel_times(self, batch: int, runs: int = 3) -> dict[str, float]:
        """ms per batch in each CUDA kernel (CPU: operator) by name, for `wildpose bench --inductor`."""
        return self._runner.kernel_times(batch, runs)

    def _infer(self, batch: np.ndarray) -> EngineOutput:
        return EngineOutput(*self._runner.run_float32(batch))

    def staging(self, rows: int) -> np.ndarray:
        return self._runner.staging(rows)

    def frame_staging(self, nbytes: int) -> np.ndarray:
        return self._runner.frame_staging(nbytes)

    @property
    def batched_crops(self) -> bool:
        """Whether `infer_frames` cuts all of a batch's crops at once (the CUDA default) or one
        `grid_sample` a frame (the CPU default); settable, for benchmarks that compare the two."""
        return self._runner.batched_crops

    @batched_crops.setter
    def batched_crops(self, batched: bool) -> None:
        self._runner.batched_crops = bool(batched)

    def infer_crops(self, crops: np.ndarray) -> EngineOutput:
        return self.submit_crops(crops).result()

    def infer_frames(self, frames: list[np.ndarray], affines: list[np.ndarray]) -> EngineOutput:
        """Crops cut with torch where the model runs: on CUDA each frame is uploaded once and its
        people are cut on the GPU straight into the captured graph's input."""
        return self.submit_frames(frames, affines).result()

    def submit_crops(self, crops: np.ndarray) -> Pending:
        check_crops(crops, self.input_size)
        return _collected(self._runner.submit_crops(np.ascontiguousarray(crops)))

    def submit_frames(self, frames: list[np.ndarray], affines: list[np.ndarray]) -> Pending:
        check_frames(frames, affines)
        return _collected(self._runner.submit_frames(frames, affines))

    def close(self) -> None:
        if self._runner is not None:
            self._runner.close()
        self._runner = None
        if self.device == "cuda":
            torch.cuda.empty_cache()


def _collected(run) -> Pending:
    return Pending(lambda: EngineOutput(*run.result()))
