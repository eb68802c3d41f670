"""`wildpose bench`: engine speed measured and printed as a table, never asserted in tests.

Each row runs in a fresh process so its peak resident memory is its own (a backend loaded earlier
in the same process would otherwise set everyone's peak). Times are the median of repeated runs on
one fixed input after a warm-up; frames/s is batch size over that median.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import logging
import multiprocessing
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from wildpose.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineBenchConfig:
    """What `wildpose bench --engine-only` measures."""

    presets: tuple[str, ...] = ("realtime", "paper")
    backends: tuple[str, ...] = ("onnxruntime", "torch")
    batches: tuple[int, ...] = (1, 4)
    threads: int | None = None
    seconds: float = 5.0  # measuring time per row, after warm-up
    min_iterations: int = 10
    warmup: int = 3
    model: str | None = None  # bench this file instead of the presets' untrained weights
    flip_tests: tuple[bool, ...] = (False,)  # (False, True): each row also with the flip test, in the same run

    def __post_init__(self) -> None:
        if not self.batches or any(b < 1 for b in self.batches):
            raise ConfigError(f"--batch sizes must be positive integers, got {list(self.batches)}")
        if self.seconds <= 0 or self.min_iterations < 1 or self.warmup < 0:
            raise ConfigError("--seconds must be > 0, --min-iterations >= 1 and --warmup >= 0")
        from wildpose.engine.loader import BACKENDS
        from wildpose.training.models.config import PRESETS

        unknown = [b for b in self.backends if b not in BACKENDS]
        if unknown:
            raise ConfigError(f"--backends: unknown {unknown}; choose from {list(BACKENDS)}")
        unknown = [p for p in self.presets if p not in PRESETS]
        if unknown and self.model is None:
            raise ConfigError(f"--presets: unknown {unknown}; choose from {sorted(PRESETS)}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads must be a positive integer, got {self.threads}")
        if True in self.flip_tests and self.model is not None and not self.model.endswith((".pt", ".pth")):
            raise ConfigError("--flip-test compares a model with and without it, so it needs a checkpoint: "
                              "--model FILE.pt")


@dataclass(frozen=True)
class EngineBenchRow:
    backend: str
    preset: str
    batch: int
    threads: str
    flip_test: bool
    median_ms: float
    frames_per_s: float
    peak_rss_mb: float
    gflop_per_frame: float
    weights: str


def run_engine_only(config: EngineBenchConfig) -> list[EngineBenchRow]:
    """Measure every (preset, backend, batch) combination; shows a progress bar on stderr."""
    from wildpose.engine import default_model, load

    models = []  # (preset label, checkpoint or None, onnx or None)
    if config.model:
        backend = load(config.model, "torch" if config.model.endswith((".pt", ".pth")) else "onnxruntime",
                       device="cpu")
        label = _config_label(backend.metadata.model_config)
        backend.close()
        models.append((label, config.model))
    else:
        for preset in config.presets:
            models.append((preset, None))
    jobs = []
    for label, model_file in models:
        for backend_name in config.backends:
            for flip_test in config.flip_tests:
                if model_file is not None:
                    path = model_file
                elif backend_name == "torch" or flip_test:  # a checkpoint: exported with the flip test on demand
                    path = str(default_model.untrained_checkpoint(label, default_model.DEFAULT_SEED))
                else:
                    path = str(default_model.untrained_onnx(label, default_model.DEFAULT_SEED))
                for batch in config.batches:
                    jobs.append((label, path, backend_name, flip_test, batch))
    flops = {}
    rows = []
    context = multiprocessing.get_context("spawn")
    for label, path, backend_name, flip_test, batch in tqdm(jobs, desc="bench", unit="row"):
        if label not in flops:
            flops[label] = _gflop_per_frame(path if path.endswith((".pt", ".pth")) else None, label)
        with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            measured = pool.submit(measure_engine, path, backend_name, batch, config.threads, config.warmup,
                                   config.min_iterations, config.seconds, flip_test).result()
        rows.append(EngineBenchRow(
            backend=backend_name, preset=label, batch=batch,
            threads=str(config.threads) if config.threads else "default", flip_test=flip_test,
            median_ms=measured["median_ms"], frames_per_s=batch * 1000.0 / measured["median_ms"],
            peak_rss_mb=measured["peak_rss_mb"], gflop_per_frame=flops[label],
            weights=measured["weights"],
        ))
    return rows


def measure_engine(path: str, backend_name: str, batch: int, threads: int | None, warmup: int,
                   min_iterations: int, seconds: float, flip_test: bool = False) -> dict:
    """Runs in a fresh process: load, warm up, time; returns median ms and this process's peak RSS."""
    from wildpose.engine import load

    # the CPU table; GPUs: bench --gpu
    engine = load(path, backend_name, device="cpu", threads=threads, flip_test=flip_test)
    size = engine.input_size
    images = np.random.default_rng(0).random((batch, 3, size, size), dtype=np.float32)
    for _ in range(warmup):
        engine.infer(images)
    times = []
    deadline = time.perf_counter() + seconds
    while len(times) < min_iterations or time.perf_counter() < deadline:
        start = time.perf_counter()
        engine.infer(images)
        times.append(time.perf_counter() - start)
    return {"median_ms": float(np.median(times)) * 1000.0, "peak_rss_mb": peak_rss_mb(),
            "weights": engine.metadata.weights}


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB.

    VmHWM belongs to the process image and starts afresh at exec; getrusage's ru_maxrss does not
    (Linux keeps it across fork and exec), so a spawned child would report its parent's peak.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _gflop_per_frame(checkpoint_path: str | None, preset: str) -> float:
    """Multiply-adds x 2 of one frame, counted by PyTorch's FLOP counter on the network."""
    try:
        import torch
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:
        return float("nan")
    from wildpose.training import checkpoint
    from wildpose.training.models import hourglass

    if checkpoint_path:
        network, _ = checkpoint.load(checkpoint_path)
    else:
        network = hourglass.build(hourglass.preset(preset), seed=0).eval()
    size = network.config.input_size
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        network(torch.zeros(1, 3, size, size))
    return counter.get_total_flops() / 1e9


def _config_label(config) -> str:
    from wildpose.training.models.config import PRESETS

    for name, preset in PRESETS.items():
        if preset == config:
            return name
    return f"{config.stacks}x{config.features}@{config.input_size}"


def format_table(rows: list[EngineBenchRow]) -> str:
    headers = ["backend", "preset", "batch", "threads", "median ms", "frames/s", "peak RSS MB",
               "GFLOP/frame", "weights"]
    body = [[r.backend, r.preset, str(r.batch), r.threads, f"{r.median_ms:.1f}", f"{r.frames_per_s:.1f}",
             f"{r.peak_rss_mb:.0f}", f"{r.gflop_per_frame:.2f}", r.weights] for r in rows]
    if any(r.flip_test for r in rows):  # the column only where it varies, so the usual table stays as it was
        headers.insert(4, "flip test")
        for line, row in zip(body, rows, strict=True):
            line.insert(4, "yes" if row.flip_test else "no")
    return markdown_table(headers, body)


def markdown_table(headers: list[str], body: list[list[str]]) -> str:
    """Rows of strings as an aligned Markdown table."""
    widths = [max([len(h)] + [len(line[i]) for line in body]) for i, h in enumerate(headers)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |" for line in body]
    return "\n".join(lines)


def cpu_seconds(process) -> float:
    """User + system CPU time of a `psutil.Process`, all its threads, as the OS counts it."""
    times = process.cpu_times()
    return times.user + times.system


def write_json(rows: list, path: str | Path) -> None:
    """Dataclass rows as a JSON list."""
    Path(path).write_text(json.dumps([dataclasses.asdict(r) for r in rows], indent=2) + "\n")
