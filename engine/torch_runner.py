"""How the torch backend runs its network: eager float32 on the CPU, or on CUDA in fp16/bf16,
channels-last, compiled and replayed as CUDA graphs; either way with the next batch prepared while the
current one runs.

At batch 1 eager PyTorch spends most of its time launching a few hundred small kernels; replaying a
captured CUDA graph launches them all at once. At large batches `torch.compile` fuses the
element-wise work between convolutions (two compiled graphs: the largest captured batch size fixed, the
sizes between 1 and it symbolic); with inductor's `freezing` (`freeze`, off by default) the
weights become constants it can fold and lay out ahead of time, which every start pays for again
before the compile cache is read. A graph has fixed shapes, so one is captured per batch size
in `GRAPH_BATCHES` and a batch is padded up to the next captured size (larger batches are split).
Graphs of batches up to `branch_streams` are captured from `BranchStreams` instead, which forks the
hourglass branches onto streams of their own: shorter at batch 1, longer once the GPU is full.

Two input kinds are captured separately: float32 `(N, 3, S, S)` in [0, 1] (the `Backend.infer`
contract) and uint8 `(N, S, S, 3)` crops as the pipeline cuts them, which travel over PCIe at a
quarter of the size and are converted and normalised on the device inside the graph. Whole frames
(`submit_frames`) are uploaded once and their people's crops cut on the device: on CUDA all of a
batch's crops by the same few dozen kernels (`frame_crops.gather_crops`), on the CPU one `grid_sample`
a frame.

Overlap: `submit_crops` and `submit_frames` return once the batch is queued, and `result()` waits for
its outputs. On CUDA the upload goes on a copy stream, and the crops, the graph replay and the download
of the small decoded outputs on a compute stream that waits for that upload only; on the CPU a worker
thread runs the batch. Meanwhile the caller reads the next batch into the other of two slots (host
buffers, pinned on CUDA; their device copies; host outputs), so reading it and uploading it overlap the
current batch's inference. A slot is handed out again only after its batch's outputs were collected,
so no buffer is ever written while a copy or the model still reads it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from wildpose.engine import frame_crops
from wildpose.engine.branch_streams import BranchStreams
from wildpose.engine.cache import cache_dir

log = logging.getLogger(__name__)

GRAPH_BATCHES = (1, 2, 4, 8, 16, 32, 64)
SLOTS = 2  # batches in flight: one running, one being prepared
_WARMUP_CALLS = 3


def use_engine_cache_for_inductor() -> str:
    """Point inductor's (and Triton's) on-disk cache into the engine cache unless the user chose one,
    so a second start reuses the first start's compiled kernels."""
    return os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir("inductor")))


@dataclass
class _Graph:
    """One captured batch size of one input kind: its device input, the graph, its device outputs."""

    device_input: torch.Tensor
    graph: torch.cuda.CUDAGraph
    device_outputs: tuple[torch.Tensor, ...]


class _Slot:
    """The buffers of one batch in flight. Host buffers grow (to a power of two) and are then reused."""

    def __init__(self) -> None:
        self.crops: torch.Tensor | None = None  # (R, S, S, 3) uint8 host staging
        self.frames: torch.Tensor | None = None  # flat uint8 host staging for whole frames
        self.crop_table: torch.Tensor | None = None  # (K, 9) float64 host: the frames' crops, when batched
        self.device: dict[str, torch.Tensor] = {}  # device copies of the above, by name (CUDA only)
        self.outputs: tuple[torch.Tensor, ...] | None = None  # host outputs, at least the batch's rows
        self.done: torch.cuda.Event | Future | None = None
        self.pending: PendingRun | None = None  # the batch whose outputs were not collected yet


class PendingRun:
    """A submitted batch; `result()` waits for it and returns (joints2d_crop, conf, depth) float32, once."""

    def __init__(self, slot: _Slot, rows: int) -> None:
        self.slot, self.rows = slot, rows

    def result(self) -> tuple[np.ndarray, ...]:
        slot = self.slot
        if slot.pending is not self:
            raise RuntimeError("this batch's outputs were collected already")
        try:
            if isinstance(slot.done, Future):
                slot.done.result()  # the worker's exception, if any, is raised here
            else:
                slot.done.synchronize()
            return tuple(output[:self.rows].numpy().copy() for output in slot.outputs)
        finally:
            slot.pending = None


class TorchRunner:
    """Runs `network` (a `DecodedPoseNet`) in `dtype` on `device`; on CUDA channels-last, optionally
    compiled, optionally as CUDA graphs (captured on first use of a (kind, batch size); `prepare`
    captures ahead of time)."""

    def __init__(self, network: nn.Module, input_size: int, dtype: torch.dtype, *, device: str = "cuda",
                 compile: bool = False, graphs: bool = False, batches: tuple[int, ...] = GRAPH_BATCHES,
                 freeze: bool = False, branch_streams: int = 0, batched_crops: bool | None = None,
                 inductor_options: dict | None = None, fixed_largest_batch: bool = True) -> None:
        self.input_size, self.dtype, self.device = input_size, dtype, torch.device(device)
        self.on_cuda = self.device.type == "cuda"
        # whole frames' crops: all at once (`frame_crops.gather_crops`, few launches) or a grid_sample a
        # frame (faster where launches are cheap); by default the former on CUDA only
        self.batched_crops = self.on_cuda if batched_crops is None else batched_crops
        if not self.on_cuda and (compile or graphs or dtype != torch.float32):
            raise ValueError("on the CPU the runner runs eager float32 only")
        self.batches = tuple(sorted(set(batches)))
        self.use_graphs = graphs
        self.memory_format = torch.channels_last if self.on_cuda else torch.contiguous_format
        self.network = network.to(self.device, dtype).to(memory_format=self.memory_format).eval()
        # freezing costs every start some seconds (it runs before the cache is read); other inductor
        # options are for benchmarks that weigh them (tools/bench_inductor.py)
        options = {**({"freezing": True} if freeze else {}), **(inductor_options or {})} or None
        if compile:
            use_engine_cache_for_inductor()
            self.forward_network = torch.compile(self.network, options=options)
        else:
            self.forward_network = self.network
        self.compiled = compile
        self.fixed_largest_batch = fixed_largest_batch
        # batches up to `branch_streams` run the hourglass branches side by side (engine/branch_streams.py)
        self.branch_streams = branch_streams
        self.branch_forward = (BranchStreams(self.network, compile=compile, options=options) if branch_streams > 0
                               else None)
        if self.on_cuda:
            self.stream = torch.cuda.Stream(self.device)  # crops, model, download
            self.copy_stream = torch.cuda.Stream(self.device)  # uploads
            self._worker = None
        else:
            self._worker = ThreadPoolExecutor(1, thread_name_prefix="wp-torch")
        self._pool = torch.cuda.graph_pool_handle() if graphs else None
        self._graphs: dict[tuple[str, int], _Graph] = {}
        self._slots = [_Slot() for _ in range(SLOTS)]
        self._next = 0

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

    def staging(self, rows: int) -> np.ndarray:
        """The next batch's uint8 `(rows, S, S, 3)` host buffer (pinned on CUDA) to copy crops into
        before `submit_crops`, which then uploads them from there without another copy."""
        slot = self._free_slot()
        if slot.crops is None or len(slot.crops) < rows:
            slot.crops = self._host((_grown(rows), self.input_size, self.input_size, 3), torch.uint8)
        return slot.crops.numpy()[:rows]

    def frame_staging(self, nbytes: int) -> np.ndarray:
        """The next batch's flat uint8 host buffer (pinned on CUDA) of `nbytes` to read whole frames
        into before `submit_frames`."""
        slot = self._free_slot()
        if slot.frames is None or slot.frames.numel() < nbytes:
            slot.frames = self._host((_grown(nbytes),), torch.uint8)
        return slot.frames.numpy()[:nbytes]

    def submit_crops(self, crops: np.ndarray) -> PendingRun:
        """Queue a uint8 `(N, S, S, 3)` batch (copied into `staging` unless it lies there already)."""
        rows = len(crops)
        staged = self.staging(rows)
        if not _same_memory(crops, staged):
            staged[...] = crops
        slot = self._slots[self._next]
        return self._launch(slot, "uint8", rows, lambda: self._upload(slot, "crops", rows * staged[0].nbytes)
                            .view(rows, self.input_size, self.input_size, 3))

    def submit_frames(self, frames: list[np.ndarray], affines: list[np.ndarray]) -> PendingRun:
        """Queue the people of whole uint8 `(H, W, 3)` frames, `affines[i]` the `(k, 2, 3)` frame ->
        crop maps of frame i: the frames are uploaded once (without a host copy when they lie one after
        another in `frame_staging`) and the crops cut on the device, in that order."""
        staged = self.frame_staging(sum(frame.nbytes for frame in frames))
        offsets, end = _offsets_in(frames, staged)
        if offsets is None:  # not read into the staging buffer: copy them there
            end, offsets = 0, []
            for frame in frames:
                staged[end:end + frame.nbytes] = frame.reshape(-1)
                offsets.append(end)
                end += frame.nbytes
        slot = self._slots[self._next]
        if self.batched_crops:
            table = frame_crops.crop_table([frame.shape for frame in frames], offsets, affines)
            if slot.crop_table is None or len(slot.crop_table) < len(table):
                slot.crop_table = self._host((_grown(len(table)), table.shape[1]), torch.float64)
            slot.crop_table.numpy()[:len(table)] = table

            def cut() -> torch.Tensor:
                flat = self._upload(slot, "frames", end)
                rows = self._upload(slot, "crop_table", table.nbytes).view(torch.float64).view(table.shape)
                return frame_crops.gather_crops(flat, rows, self.input_size)

            return self._launch(slot, "uint8", len(table), cut)

        def cut_each_frame() -> torch.Tensor:
            flat = self._upload(slot, "frames", end)
            return torch.cat([frame_crops.cut_with_torch(flat[offset:offset + frame.nbytes].view(frame.shape), maps,
                                                         self.input_size)
                              for frame, offset, maps in zip(frames, offsets, affines, strict=True)])

        return self._launch(slot, "uint8", sum(len(maps) for maps in affines), cut_each_frame)

    def run_float32(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        """(joints2d_crop, conf, depth) for a float32 `(N, 3, S, S)` batch, waited for."""
        slot = self._free_slot()
        return self._launch(slot, "float32", len(batch),
                            lambda: torch.from_numpy(batch).to(self.device)).result()

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

    def kernel_times(self, batch: int, runs: int = 3) -> dict[str, float]:
        """Milliseconds per batch of `batch` uint8 crops spent in each CUDA kernel (on the CPU: in each
        operator, itself), by name. The forward runs without its CUDA graph: a replay hides its kernels
        from the profiler; the kernels are the same."""
        from torch.profiler import ProfilerActivity, profile

        device_input = torch.zeros((batch, self.input_size, self.input_size, 3), dtype=torch.uint8,
                                   device=self.device)
        synchronize = torch.cuda.synchronize if self.on_cuda else (lambda: None)
        with torch.inference_mode():
            self._forward("uint8", device_input)  # compiled and warm before the profile starts
            synchronize()
            activity = ProfilerActivity.CUDA if self.on_cuda else ProfilerActivity.CPU
            with profile(activities=[activity]) as profiler:
                for _ in range(runs):
                    self._forward("uint8", device_input)
                synchronize()
        times: dict[str, float] = {}
        for event in profiler.key_averages():
            if self.on_cuda:
                if event.device_type != torch.autograd.DeviceType.CUDA:
                    continue
                microseconds = event.device_time_total
            else:
                microseconds = event.self_cpu_time_total
            if microseconds > 0:
                times[event.key] = times.get(event.key, 0.0) + microseconds / 1000.0 / runs
        return times

    def close(self) -> None:
        if self._worker is not None:
            self._worker.shutdown(wait=True)

    def _free_slot(self) -> _Slot:
        slot = self._slots[self._next]
        if slot.pending is not None:
            raise RuntimeError(f"the torch runner holds {SLOTS} batches whose outputs were not collected; "
                               "call result() on the oldest before submitting another")
        return slot

    def _host(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        return torch.empty(shape, dtype=dtype, pin_memory=self.on_cuda)

    def _upload(self, slot: _Slot, name: str, nbytes: int) -> torch.Tensor:
        """The first `nbytes` of the slot's host buffer `name` as flat uint8 on the device: on CUDA
        copied on the copy stream, the compute stream waiting for that copy only; on the CPU as it is."""
        host = getattr(slot, name).view(-1).view(torch.uint8)[:nbytes]
        if not self.on_cuda:
            return host
        device = slot.device.get(name)
        if device is None or device.numel() < getattr(slot, name).nbytes:
            # New memory may have held a tensor the compute stream still uses: the copy waits for that
            # stream once. (The slot's own earlier batch was collected, so its buffers are free.)
            device = slot.device[name] = torch.empty(getattr(slot, name).nbytes, dtype=torch.uint8, device=self.device)
            self.copy_stream.wait_stream(self.stream)
        with torch.cuda.stream(self.copy_stream):
            device[:nbytes].copy_(host, non_blocking=True)
            uploaded = torch.cuda.Event()
            uploaded.record(self.copy_stream)
        self.stream.wait_event(uploaded)
        return device[:nbytes]

    def _launch(self, slot: _Slot, kind: str, rows: int, device_rows: Callable[[], torch.Tensor]) -> PendingRun:
        """Queue `device_rows()` through the model (in parts of at most the largest captured batch,
        each padded up to the next captured size) and the outputs' download into the slot."""
        largest = self.batches[-1]
        parts = [(start, min(rows, start + largest)) for start in range(0, rows, largest)]
        graphs = [self._graph(kind, next(b for b in self.batches if b >= stop - start)) for start, stop in parts] \
            if self.use_graphs else None  # captured before the stream is switched

        def run() -> None:
            with torch.inference_mode():
                inputs = device_rows()
                if graphs is None:
                    self._download(slot, rows, self._forward(kind, inputs), 0)
                    return
                for graph, (start, stop) in zip(graphs, parts, strict=True):
                    graph.device_input[:stop - start].copy_(inputs[start:stop])
                    graph.graph.replay()
                    self._download(slot, rows, tuple(output[:stop - start] for output in graph.device_outputs), start)

        if self.on_cuda:
            with torch.cuda.stream(self.stream):
                run()
            slot.done = torch.cuda.Event()
            slot.done.record(self.stream)
        else:
            slot.done = self._worker.submit(run)
        slot.pending = PendingRun(slot, rows)
        self._next = (self._next + 1) % SLOTS
        return slot.pending

    def _download(self, slot: _Slot, rows: int, outputs: tuple[torch.Tensor, ...], start: int) -> None:
        """Copy outputs (rows [start, start + n) of the batch) into the slot's host outputs."""
        if slot.outputs is None or len(slot.outputs[0]) < rows:
            slot.outputs = tuple(self._host((_grown(rows), *output.shape[1:]), output.dtype) for output in outputs)
        for host, output in zip(slot.outputs, outputs, strict=True):
            host[start:start + len(output)].copy_(output, non_blocking=self.on_cuda)

    def _forward(self, kind: str, device_input: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if kind == "uint8":  # (N, S, S, 3) viewed as (N, 3, S, S) is channels-last already
            image = device_input.permute(0, 3, 1, 2).to(self.dtype).mul_(1.0 / 255.0)
        else:
            image = device_input.to(self.dtype)
        image = image.contiguous(memory_format=self.memory_format)
        if self.branch_forward is not None and image.shape[0] <= self.branch_streams:
            return self.branch_forward(image)
        # one compiled graph for the batch sizes above 1 with the batch symbolic, but the largest, which
        # a loaded pipeline runs, gets one of its own with the batch fixed (5 % faster on an H200 at 64)
        largest = image.shape[0] == self.batches[-1] and self.fixed_largest_batch
        if self.compiled and image.shape[0] > 1 and not largest:
            torch._dynamo.mark_dynamic(image, 0)
        return self.forward_network(image)

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
        captured = _Graph(device_input=device_input, graph=graph, device_outputs=device_outputs)
        self._graphs[key] = captured
        return captured


def _grown(count: int) -> int:
    """`count` rounded up to a power of two, so a growing buffer is reallocated a few times only."""
    return 1 << max(count - 1, 1).bit_length()


def _same_memory(array: np.ndarray, buffer: np.ndarray) -> bool:
    """Whether `array` starts where `buffer` does (was filled in place by the caller)."""
    return array.__array_interface__["data"][0] == buffer.__array_interface__["data"][0]


def _offsets_in(frames: list[np.ndarray], buffer: np.ndarray) -> tuple[list[int] | None, int]:
    """Each frame's byte offset in `buffer` and the end of the last, or (None, 0) unless every frame
    is a contiguous view lying inside it."""
    start = buffer.__array_interface__["data"][0]
    offsets, end = [], 0
    for frame in frames:
        offset = frame.__array_interface__["data"][0] - start
        if not frame.flags.c_contiguous or offset < 0 or offset + frame.nbytes > buffer.nbytes:
            return None, 0
        offsets.append(offset)
        end = max(end, offset + frame.nbytes)
    return offsets, end
