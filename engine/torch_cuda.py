"""The compiled CUDA path of the torch backend: fixed-shape CUDA graphs of the compiled network.

At batch 1 eager PyTorch spends most of its time launching a few hundred small kernels; replaying a
captured CUDA graph launches them all at once. At large batches `torch.compile` fuses the
element-wise work between convolutions; with inductor's `freezing` (`freeze`, off by default) the
weights become constants it can fold and lay out ahead of time, which every start pays for again
before the compile cache is read. A graph has fixed shapes, so one is captured per batch size
in `GRAPH_BATCHES` and a batch is padded up to the next captured size (larger batches are split).

Two input kinds are captured separately: float32 `(N, 3, S, S)` in [0, 1] (the `Backend.infer`
contract) and uint8 `(N, S, S, 3)` crops as the pipeline cuts them, which travel over PCIe at a
quarter of the size and are converted and normalised on the GPU inside the graph. Host buffers are
pinned, so uploads and downloads are asynchronous copies on the runner's own CUDA stream.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from wildpose.engine import frame_crops
from wildpose.engine.cache import cache_dir

log = logging.getLogger(__name__)

GRAPH_BATCHES = (1, 2, 4, 8, 16, 32, 64)
_WARMUP_CALLS = 3


def use_engine_cache_for_inductor() -> str:
    """Point inductor's (and Triton's) on-disk cache into the engine cache unless the user chose one,
    so a second start reuses the first start's compiled kernels."""
    return os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir("inductor")))


@dataclass
class _Graph:
    """One captured batch size of one input kind: pinned host buffers, device buffers, the graph."""

    host_input: torch.Tensor
    device_input: torch.Tensor
    graph: torch.cuda.CUDAGraph
    device_outputs: tuple[torch.Tensor, ...]
    host_outputs: tuple[torch.Tensor, ...]


class CudaGraphRunner:
    """Runs `network` (a `DecodedPoseNet`) on CUDA in `dtype`, channels-last, optionally compiled,
    optionally as CUDA graphs. Graphs are captured on first use of a (kind, batch size); `prepare`
    captures ahead of time."""

    def __init__(self, network: nn.Module, input_size: int, dtype: torch.dtype, *, compile: bool,
                 graphs: bool, batches: tuple[int, ...] = GRAPH_BATCHES, device: str = "cuda",
                 freeze: bool = False) -> None:
        self.input_size, self.dtype, self.device = input_size, dtype, torch.device(device)
        self.batches = tuple(sorted(set(batches)))
        self.use_graphs = graphs
        self.network = network.to(self.device, dtype).to(memory_format=torch.channels_last).eval()
        if compile:
            use_engine_cache_for_inductor()
            # freezing costs every start some seconds (it runs before the cache is read)
            self.forward_network = torch.compile(self.network, options={"freezing": True} if freeze else None)
        else:
            self.forward_network = self.network
        self.compiled = compile
        self.stream = torch.cuda.Stream(self.device)
        self._pool = torch.cuda.graph_pool_handle() if graphs else None
        self._graphs: dict[tuple[str, int], _Graph] = {}
        # One pinned upload buffer for every uint8 graph: the pipeline copies crops into it directly.
        self.staging = torch.empty((self.batches[-1], input_size, input_size, 3), dtype=torch.uint8,
                                   pin_memory=True) if graphs else None
        self.staging_array = self.staging.numpy() if graphs else None
        self._frame_staging: torch.Tensor | None = None  # pinned, for whole frames (`run_frames`)

    def prepare(self, kinds: tuple[str, ...] = ("uint8",)) -> float:
        """Compile and capture every batch size of `kinds` now (largest first, so smaller graphs reuse
        its memory pool); returns the seconds it took. Shows a progress bar: the first start
        compiles (about a minute for the paper preset), later starts read the compiled kernels back."""
        start = time.perf_counter()
        jobs = [(kind, size) for kind in kinds for size in reversed(self.batches)]
        for kind, size in tqdm(jobs, desc="compile + capture" if self.compiled else "capture", unit="graph",
                               disable=not self.use_graphs):
            if self.use_graphs:
                self._graph(kind, size)
        return time.perf_counter() - start

    def run(self, kind: str, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(joints2d_crop, conf, depth) float32 for a float32 NCHW or uint8 NHWC batch."""
        if not self.use_graphs:
            return self._run_eager(kind, batch)

        def upload(graph: _Graph, start: int, stop: int) -> None:
            chunk = batch[start:stop]
            if not (kind == "uint8" and start == 0 and _same_memory(chunk, self.staging_array)):
                graph.host_input[:len(chunk)].copy_(torch.from_numpy(chunk))
            graph.device_input.copy_(graph.host_input, non_blocking=True)

        return self._replay_in_parts(kind, len(batch), upload)

    def frame_staging(self, nbytes: int) -> np.ndarray:
        """A pinned flat uint8 buffer of at least `nbytes` to read whole frames into before
        `run_frames` (reused; grown to the next power of two when too small)."""
        if self._frame_staging is None or self._frame_staging.numel() < nbytes:
            self._frame_staging = torch.empty(1 << max(nbytes - 1, 1).bit_length(), dtype=torch.uint8,
                                              pin_memory=True)
        return self._frame_staging.numpy()[:nbytes]

    def run_frames(self, frames: list[np.ndarray], affines: list[np.ndarray]) -> tuple[np.ndarray, ...]:
        """(joints2d_crop, conf, depth) for the people of whole uint8 frames: each frame is uploaded
        once (asynchronously when it lies in `frame_staging`'s pinned buffer) and its people's crops
        are cut on the GPU into the uint8 graphs' input."""
        with torch.cuda.stream(self.stream), torch.inference_mode():
            crops = torch.cat([
                frame_crops.cut_with_torch(torch.from_numpy(frame).to(self.device, non_blocking=self._pinned(frame)),
                                           maps, self.input_size)
                for frame, maps in zip(frames, affines, strict=True)])
            if not self.use_graphs:
                outputs = tuple(output.cpu().numpy() for output in self._forward("uint8", crops))
        if not self.use_graphs:
            return outputs

        def place(graph: _Graph, start: int, stop: int) -> None:
            graph.device_input[:stop - start].copy_(crops[start:stop])

        return self._replay_in_parts("uint8", len(crops), place)

    def _replay_in_parts(self, kind: str, rows: int, fill) -> tuple[np.ndarray, ...]:
        """Replay the `kind` graphs over `rows` rows, at most the largest captured batch at a time (each
        part padded up to the next captured size); `fill(graph, start, stop)` puts rows [start, stop)
        into the graph's device input on the runner's stream. Returns the outputs' rows, in order."""
        parts = []
        largest = self.batches[-1]
        for start in range(0, rows, largest):
            stop = min(rows, start + largest)
            graph = self._graph(kind, next(b for b in self.batches if b >= stop - start))
            with torch.cuda.stream(self.stream), torch.inference_mode():
                fill(graph, start, stop)
                graph.graph.replay()
                for host, device in zip(graph.host_outputs, graph.device_outputs, strict=True):
                    host.copy_(device, non_blocking=True)
            self.stream.synchronize()  # the host buffers are reused by the next part and the next call
            parts.append([host[:stop - start].numpy().copy() for host in graph.host_outputs])
        if len(parts) == 1:
            return tuple(parts[0])
        return tuple(np.concatenate(column) for column in zip(*parts, strict=True))

    def _pinned(self, frame: np.ndarray) -> bool:
        """Whether `frame` lies in the pinned frame staging buffer (so its upload can be asynchronous)."""
        if self._frame_staging is None:
            return False
        start = self._frame_staging.data_ptr()
        address = frame.__array_interface__["data"][0]
        return start <= address and address + frame.nbytes <= start + self._frame_staging.numel()

    def time_on_device(self, batch: int, seconds: float) -> float:
        """Milliseconds per batch of `batch` uint8 crops already in GPU memory, timed with CUDA events
        over about `seconds` of back-to-back runs (graph replays, or eager calls)."""
        if self.use_graphs:
            step = self._graph("uint8", next(b for b in self.batches if b >= batch)).graph.replay
        else:
            device_input = torch.zeros((batch, self.input_size, self.input_size, 3), dtype=torch.uint8,
                                       device=self.device)
            step = lambda: self._forward("uint8", device_input)  # noqa: E731
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        with torch.inference_mode(), torch.cuda.stream(self.stream):
            for _ in range(_WARMUP_CALLS):
                step()
            start.record(self.stream)
            step()
            end.record(self.stream)
            end.synchronize()
            runs = max(10, int(seconds * 1000.0 / max(start.elapsed_time(end), 1e-3)))
            start.record(self.stream)
            for _ in range(runs):
                step()
            end.record(self.stream)
            end.synchronize()
        return start.elapsed_time(end) / runs

    def _forward(self, kind: str, device_input: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if kind == "uint8":  # (N, S, S, 3) viewed as (N, 3, S, S) is channels-last already
            image = device_input.permute(0, 3, 1, 2).to(self.dtype).mul_(1.0 / 255.0)
        else:
            image = device_input.to(self.dtype).contiguous(memory_format=torch.channels_last)
        if self.compiled and image.shape[0] > 1:
            torch._dynamo.mark_dynamic(image, 0)  # one compiled graph for every batch size above 1
        return self.forward_network(image)

    def _run_eager(self, kind: str, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with torch.inference_mode():
            device_input = torch.from_numpy(batch).pin_memory().to(self.device, non_blocking=True)
            outputs = self._forward(kind, device_input)
            return tuple(output.cpu().numpy() for output in outputs)

    def _graph(self, kind: str, size: int) -> _Graph:
        key = (kind, size)
        if key in self._graphs:
            return self._graphs[key]
        if kind == "uint8":
            shape, dtype = (size, self.input_size, self.input_size, 3), torch.uint8
        else:
            shape, dtype = (size, 3, self.input_size, self.input_size), torch.float32
        with torch.inference_mode():
            device_input = torch.zeros(shape, dtype=dtype, device=self.device)
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):  # warm-up (and compilation) outside the capture, as required
                for _ in range(_WARMUP_CALLS):
                    self._forward(kind, device_input)
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool):
                device_outputs = self._forward(kind, device_input)
            host_outputs = tuple(torch.empty(o.shape, dtype=o.dtype, pin_memory=True) for o in device_outputs)
        host_input = self.staging[:size] if kind == "uint8" else torch.empty(shape, dtype=dtype, pin_memory=True)
        captured = _Graph(host_input=host_input, device_input=device_input,
                          graph=graph, device_outputs=device_outputs, host_outputs=host_outputs)
        self._graphs[key] = captured
        return captured


def _same_memory(array: np.ndarray, buffer: np.ndarray) -> bool:
    """Whether `array` is a prefix view of `buffer` (filled in place by the caller)."""
    return array.__array_interface__["data"][0] == buffer.__array_interface__["data"][0]
