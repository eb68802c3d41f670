"""`wildpose bench --gpu`: engine speed on a CUDA GPU, plain PyTorch next to the compiled path.

Every (preset, path, precision) row set runs in a fresh process, so its compile time and GPU memory
are its own, and the eager baseline is measured in the same run as the compiled path, so their
ratio is honest on one machine. Timings per batch size:

- on-device: the input already in GPU memory, the batch timed by CUDA events over many runs (what
  the network costs; the figure GPU benchmarks usually quote);
- from host: `infer_crops` on uint8 crops in host memory, copies and synchronisation included (what
  the pipeline's inference stage pays per call);
- overlapped: the same crops submitted back to back, each batch's host copy and upload while the
  previous one runs (`submit_crops` before the previous `result()`, as the inference stage does);
- from frames: what the inference stage does with `--device-crops`: whole 640x480 frames (one person
  each, as in `bench --streams`) copied into the engine's frame staging and submitted back to back
  (`submit_frames`), the crops cut where the model runs; with the host's share of each batch (copying
  the frames in, cutting set up, launches) timed apart, so a slow row says which side is slow; and
  the same with one `grid_sample` a frame instead of all crops gathered at once (the CUDA default),
  so the two ways of cutting are compared in one run.
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import logging
import multiprocessing
import time
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from wildpose.errors import BackendUnavailableError, ConfigError
from wildpose.stream import crop
from wildpose.tools.bench import markdown_table

log = logging.getLogger(__name__)

PATHS = ("eager", "compiled", "compiled-whole", "compiled-branches", "compiled-frozen", "tensorrt")
# compiled: the product's default, branches on streams up to batch 2; -whole: never; -branches: at every size


@dataclass(frozen=True)
class GpuBenchConfig:
    presets: tuple[str, ...] = ("paper",)
    paths: tuple[str, ...] = ("eager", "compiled")
    precisions: tuple[str, ...] = ("fp16",)
    batches: tuple[int, ...] = (1, 8, 64)
    seconds: float = 2.0  # timing per row, after warm-up
    restarts: int = 1  # compiled path: start again this many times (reads the compile cache)

    def __post_init__(self) -> None:
        unknown = [p for p in self.paths if p not in PATHS]
        if unknown:
            raise ConfigError(f"--paths: unknown {unknown}; choose from {list(PATHS)}")
        if not self.batches or any(b < 1 for b in self.batches):
            raise ConfigError(f"--batch sizes must be positive integers, got {list(self.batches)}")


@dataclass(frozen=True)
class GpuBenchRow:
    preset: str
    path: str  # one of PATHS
    precision: str
    start: int  # 1: first start in this run; 2: second (compile cache warm)
    batch: int
    device_ms: float  # per batch, input resident on the GPU
    device_frames_per_s: float
    host_ms: float  # per batch, uint8 crops from host memory, copies included
    host_frames_per_s: float
    overlapped_ms: float  # per batch, from host, the next batch submitted before the previous is collected
    overlapped_frames_per_s: float
    frames_ms: float  # per batch, whole frames submitted back to back, crops cut on the device
    frames_frames_per_s: float
    frames_host_ms: float  # of frames_ms, the host's time in copying the frames in and submitting them
    per_frame_cut_frames_per_s: float  # as frames_frames_per_s, one grid_sample a frame
    per_frame_cut_host_ms: float
    prepare_s: float  # load + compile + CUDA graph capture (TensorRT: build or cache read)
    peak_gpu_mb: float
    gpu: str
    weights: str


def require_cuda(benchmark: str, hint: str) -> None:
    """One clear line when `benchmark` cannot run here: no PyTorch, or no CUDA device it sees."""
    try:
        import torch
    except ImportError:
        raise BackendUnavailableError(f"{benchmark} needs PyTorch with CUDA") from None
    if not torch.cuda.is_available():
        raise BackendUnavailableError(f"{benchmark} needs a CUDA device, and PyTorch sees none here; {hint}")


def run_gpu_bench(config: GpuBenchConfig) -> list[GpuBenchRow]:
    from wildpose.engine import default_model

    require_cuda("the GPU benchmark", "use `wildpose bench --engine-only` on the CPU")
    jobs = []
    for preset in config.presets:
        for path in config.paths:
            if path == "tensorrt" and importlib.util.find_spec("tensorrt") is None:
                log.warning("skipping the tensorrt rows: TensorRT is not installed here")
                continue
            for precision in config.precisions:
                starts = 1 + (config.restarts if path != "eager" else 0)
                jobs += [(preset, path, precision, start) for start in range(1, starts + 1)]
    rows: list[GpuBenchRow] = []
    context = multiprocessing.get_context("spawn")
    for preset, path, precision, start in tqdm(jobs, desc="GPU bench", unit="start"):
        model = (default_model.untrained_onnx if path == "tensorrt" else default_model.untrained_checkpoint)(
            preset, default_model.DEFAULT_SEED)
        with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            try:
                measured = pool.submit(measure_gpu, str(model), path, precision, config.batches,
                                       config.seconds).result()
            except BackendUnavailableError as exc:
                log.warning("skipping %s %s %s: %s", preset, path, precision, exc)
                continue
        for batch, timing in measured["batches"].items():
            rows.append(GpuBenchRow(
                preset=preset, path=path, precision=precision, start=start, batch=batch,
                device_ms=timing["device_ms"], device_frames_per_s=batch * 1000.0 / timing["device_ms"],
                host_ms=timing["host_ms"], host_frames_per_s=batch * 1000.0 / timing["host_ms"],
                overlapped_ms=timing["overlapped_ms"],
                overlapped_frames_per_s=batch * 1000.0 / timing["overlapped_ms"],
                frames_ms=timing["frames_ms"], frames_frames_per_s=batch * 1000.0 / timing["frames_ms"],
                frames_host_ms=timing["frames_host_ms"],
                per_frame_cut_frames_per_s=batch * 1000.0 / timing["per_frame_cut_ms"],
                per_frame_cut_host_ms=timing["per_frame_cut_host_ms"],
                prepare_s=measured["prepare_s"], peak_gpu_mb=measured["peak_gpu_mb"], gpu=measured["gpu"],
                weights=measured["weights"]))
        log.info("%s %s %s start %d: prepared in %.1f s", preset, path, precision, start, measured["prepare_s"])
    return rows


def measure_gpu(model: str, path: str, precision: str, batches: tuple[int, ...], seconds: float) -> dict:
    """Runs in a fresh process: load and prepare, then time every batch size both ways."""
    import torch

    from wildpose.engine import load
    from wildpose.engine.torch_runner import GRAPH_BATCHES

    started = time.perf_counter()
    if path == "tensorrt":
        engine = load(model, "tensorrt", precision=precision)
        timer = None
    else:
        engine = load(model, "torch", device="cuda", precision=precision, compile=path != "eager",
                      freeze=path == "compiled-frozen",
                      branch_streams={"compiled-whole": 0, "compiled-branches": GRAPH_BATCHES[-1]}.get(path))
        engine.prepare()
        timer = engine.device_timer()
    prepare_s = time.perf_counter() - started
    size = engine.input_size
    rng = np.random.default_rng(0)
    timings = {}
    for batch in batches:
        crops = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
        device_ms = timer(batch, seconds) if timer else float("nan")
        for _ in range(3):
            engine.infer_crops(crops)
        times = []
        deadline = time.perf_counter() + seconds
        while len(times) < 10 or time.perf_counter() < deadline:
            start = time.perf_counter()
            engine.infer_crops(crops)
            times.append(time.perf_counter() - start)
        frames_ms = frames_host_ms = per_frame_ms = per_frame_host_ms = float("nan")
        if path != "tensorrt":
            frames_ms, frames_host_ms = from_frames_ms(engine, batch, seconds, rng)
            engine.batched_crops = False
            per_frame_ms, per_frame_host_ms = from_frames_ms(engine, batch, seconds, rng)
            engine.batched_crops = True
        timings[batch] = {"device_ms": device_ms, "host_ms": float(np.median(times)) * 1000.0,
                          "overlapped_ms": overlapped_ms(engine, crops, seconds),
                          "frames_ms": frames_ms, "frames_host_ms": frames_host_ms,
                          "per_frame_cut_ms": per_frame_ms, "per_frame_cut_host_ms": per_frame_host_ms}
    result = {"batches": timings, "prepare_s": prepare_s, "gpu": torch.cuda.get_device_name(),
              "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20, "weights": engine.metadata.weights}
    engine.close()
    return result


def overlapped_ms(engine, crops: np.ndarray, seconds: float) -> float:
    """Milliseconds per batch over about `seconds` of batches submitted back to back, each submitted
    before the previous one's outputs are collected."""
    return back_to_back_ms(lambda: engine.submit_crops(crops), seconds)[0]


def back_to_back_ms(submit, seconds: float) -> tuple[float, float]:
    """(ms per batch, of which the host's ms in `submit`) over about `seconds` of `submit()` calls, each
    made before the previous one's outputs are collected, as the inference stage does."""
    start = time.perf_counter()
    pending, count = submit(), 0
    host = time.perf_counter() - start
    while count < 10 or time.perf_counter() < start + seconds:
        submitted = time.perf_counter()
        following = submit()
        host += time.perf_counter() - submitted
        pending.result()
        pending, count = following, count + 1
    pending.result()
    return (time.perf_counter() - start) * 1000.0 / (count + 1), host * 1000.0 / (count + 1)


FRAME_SHAPE = (480, 640, 3)  # the streams benchmark's frames


def centred_crop_map(frame_shape: tuple[int, ...], size: int) -> np.ndarray:
    """`(1, 2, 3)` frame -> crop map of the frame's central square (pixel centres at integers)."""
    height, width = frame_shape[:2]
    centre, half = np.array([(width - 1) / 2, (height - 1) / 2]), min(height, width) / 2
    return crop.box_to_affine(np.concatenate([centre - half, centre + half]), size)[None].astype(np.float32)


def from_frames_ms(engine, batch: int, seconds: float, rng: np.random.Generator,
                   frame_shape: tuple[int, ...] = FRAME_SHAPE) -> tuple[float, float]:
    """(ms per batch, of which host ms) for `batch` whole frames of one person each, copied into the
    engine's frame staging as the inference stage reads them from the rings and submitted back to back
    (`submit_frames` before the previous `result()`), the crops cut where the model runs."""
    sources = rng.integers(0, 256, (batch, *frame_shape), dtype=np.uint8)  # stands for the shared-memory rings
    affines = [centred_crop_map(frame_shape, engine.input_size)] * batch

    def submit():
        staging = engine.frame_staging(sources.nbytes)
        frames = []
        for i, source in enumerate(sources):
            frame = staging[i * source.nbytes:(i + 1) * source.nbytes].reshape(source.shape)
            frame[...] = source
            frames.append(frame)
        return engine.submit_frames(frames, affines)

    for _ in range(3):
        submit().result()
    return back_to_back_ms(submit, seconds)


def format_table(rows: list[GpuBenchRow]) -> str:
    headers = ["preset", "path", "precision", "start", "batch", "on-device ms", "on-device frames/s",
               "vs eager", "from-host ms", "from-host frames/s", "overlapped frames/s", "from-frames frames/s",
               "from-frames host ms", "per-frame cut frames/s", "per-frame cut host ms", "prepare s", "peak GPU MB"]
    eager = {(r.preset, r.precision, r.batch): r.device_frames_per_s for r in rows if r.path == "eager"}
    body = []
    for r in rows:
        baseline = eager.get((r.preset, r.precision, r.batch))
        body.append([r.preset, r.path, r.precision, str(r.start), str(r.batch), f"{r.device_ms:.2f}",
                     f"{r.device_frames_per_s:,.0f}",
                     f"{r.device_frames_per_s / baseline:.2f}x" if baseline else "-",
                     f"{r.host_ms:.2f}", f"{r.host_frames_per_s:,.0f}", f"{r.overlapped_frames_per_s:,.0f}",
                     f"{r.frames_frames_per_s:,.0f}", f"{r.frames_host_ms:.2f}",
                     f"{r.per_frame_cut_frames_per_s:,.0f}", f"{r.per_frame_cut_host_ms:.2f}",
                     f"{r.prepare_s:.1f}", f"{r.peak_gpu_mb:,.0f}"])
    gpu = rows[0].gpu if rows else "?"
    return markdown_table(headers, body) + f"\n({gpu}; {rows[0].weights if rows else ''}; eager = plain PyTorch, " \
        "same precision, channels-last; compiled = BN folded + torch.compile + CUDA graphs, " \
        "batches 1-2 with each hourglass level's full-resolution branch on a CUDA stream of its own; compiled-whole " \
        "= the same without; compiled-branches = with, at every batch size; " \
        "compiled-frozen = with inductor freezing; " \
        "from-frames = whole 640x480 frames of one person each, crops cut on the GPU as with --device-crops, all " \
        "of a batch at once; per-frame cut = the same, one grid_sample a frame)"
