"""`wildpose bench --training`: how fast the trainer's update runs per precision, and how fast SynthPose
renders the samples that feed it.

One batch of SynthPose training samples (half `lab` 3D, half `wild` 2D-only, augmented, as the trainer
draws them) is rendered in this process and timed: that is the data side, per worker process. The
same batch then goes through `trainer.train_step` (forward pass under the precision's autocast, the
geometric stage's three losses, backward, RMSprop) again and again: the model side. Each precision
runs in a fresh process, so its peak resident memory is its own. A run's samples/s is at most the
smaller of the two sides' shares of the machine: on a CPU the workers and the update share the cores.

`wildpose bench --loader N,...` measures the data side as the trainer runs it: its DataLoader with N
worker processes rendering the same pools, with OpenCV on one thread a worker (the trainer's setting,
`training/datasets/loader.py`) and on OpenCV's default, each in a fresh process. A GPU run is fed at
most this fast.
"""

from __future__ import annotations

import concurrent.futures
import logging
import math
import multiprocessing
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from wildpose.errors import ConfigError
from wildpose.tools.bench import markdown_table, peak_rss_mb

log = logging.getLogger(__name__)

_LAB_SEED, _WILD_SEED = 1, 2  # the bundled demo run's training pools (configs/synthpose_demo.toml)


@dataclass(frozen=True)
class TrainingBenchConfig:
    """What `wildpose bench --training` measures."""

    presets: tuple[str, ...] = ("realtime",)
    precisions: tuple[str, ...] = ("fp32", "bf16")
    batch: int = 32
    device: str = "auto"
    threads: int | None = None  # PyTorch's intra-op threads; default its own choice
    seconds: float = 20.0  # timing per row, after two warm-up steps
    min_steps: int = 3
    mocap: str | None = None  # CMU BVH folder; default ../shared/data/cmu_mocap beside the project

    def __post_init__(self) -> None:
        from wildpose.training.models.config import PRESETS
        from wildpose.training.train_config import PRECISIONS

        unknown = [p for p in self.presets if p not in PRESETS]
        if unknown:
            raise ConfigError(f"--presets: unknown {unknown}; choose from {sorted(PRESETS)}")
        unknown = [p for p in self.precisions if p not in PRECISIONS]
        if unknown:
            raise ConfigError(f"--precisions for --training: unknown {unknown}; choose from {list(PRECISIONS)}")
        if self.batch < 2:
            raise ConfigError(f"--batch for --training must be at least 2 (half 3D, half 2D), got {self.batch}")
        if self.seconds <= 0 or self.min_steps < 1:
            raise ConfigError("--seconds must be > 0")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads must be a positive integer, got {self.threads}")


@dataclass(frozen=True)
class TrainingBenchRow:
    preset: str
    precision: str
    device: str
    threads: int
    batch: int
    step_ms: float  # median of the timed updates
    samples_per_s: float  # the update alone
    render_ms_per_sample: float  # rendering + augmentation + targets, one process
    peak_rss_mb: float


def run_training_bench(config: TrainingBenchConfig) -> list[TrainingBenchRow]:
    """One row per (preset, precision), each measured in a fresh process; progress on stderr."""
    jobs = [(preset, precision) for preset in config.presets for precision in config.precisions]
    return _each_in_a_fresh_process(measure_training, jobs, config, "bench training")


def _each_in_a_fresh_process(measure, jobs: list[tuple], config: TrainingBenchConfig, desc: str) -> list:
    """`measure(*job, config, mocap)` for each job, each in a fresh process (its memory and threads its
    own), after checking the mocap folder here; progress on stderr."""
    from wildpose.training.datasets.synthpose import check_mocap_dir, default_mocap_dir

    folder = Path(config.mocap) if config.mocap else default_mocap_dir()
    for domain in ("lab", "wild"):
        check_mocap_dir(folder, domain, "train")
    context = multiprocessing.get_context("spawn")
    rows = []
    for job in tqdm(jobs, desc=desc, unit="row"):
        with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            rows.append(pool.submit(measure, *job, config, str(folder)).result())
    return rows


def measure_training(preset: str, precision: str, config: TrainingBenchConfig, mocap: str) -> TrainingBenchRow:
    """Runs in a fresh process: render one batch (timed), then time the trainer's update on it."""
    import torch
    from torch.utils.data import DataLoader

    from wildpose.training import datasets, distributed, trainer
    from wildpose.training.datasets import DatasetConfig
    from wildpose.training.datasets.augment import AugmentConfig
    from wildpose.training.datasets.sampler import Concat, MixedBatchSampler
    from wildpose.training.models import hourglass
    from wildpose.training.train_config import OptimizerConfig, StageConfig

    if config.threads:
        torch.set_num_threads(config.threads)
    device = distributed.resolve_device(config.device)
    model_config = hourglass.preset(preset)
    data = Concat([datasets.build(DatasetConfig(format="synthpose", domain=domain, split="train", size=1000,
                                                seed=seed, mocap=mocap), model_config.input_size, AugmentConfig())
                   for domain, seed in (("lab", _LAB_SEED), ("wild", _WILD_SEED))])
    sampler = MixedBatchSampler(data.has_3d, config.batch, 0.5, 1, seed=0, rank=0, world_size=1)
    sampler.set_epoch(0, 0)
    data[0], data[len(data) - 1]  # one sample of each domain first: reading the motion capture is not rendering
    started = time.perf_counter()
    batch = next(iter(DataLoader(data, batch_sampler=sampler, num_workers=0)))
    render_ms = (time.perf_counter() - started) * 1000.0 / config.batch

    memory_format = trainer.memory_format_for(device)
    net = hourglass.build(model_config, seed=0).to(device, memory_format=memory_format).train()
    optimizer = trainer.make_optimizer(net, OptimizerConfig(), lr=1e-6)
    autocast = trainer.autocast_for(precision, device)
    stage = StageConfig(name="geometric", epochs=1, depth_weight=0.1, geometric_weight=0.01)
    images = batch["image"].to(device).contiguous(memory_format=memory_format)
    tensors = {k: v.to(device) for k, v in batch.items() if isinstance(v, torch.Tensor)}

    def step() -> float:
        start = time.perf_counter()
        terms = trainer.train_step(net, optimizer, autocast, images, tensors, stage, model_config.input_size)
        float(terms["loss"].detach())  # waits for the GPU
        return time.perf_counter() - start

    step(), step()
    times = []
    deadline = time.perf_counter() + config.seconds
    while len(times) < config.min_steps or time.perf_counter() < deadline:
        times.append(step())
    median_ms = float(np.median(times)) * 1000.0
    return TrainingBenchRow(preset=preset, precision=precision, device=str(device),
                            threads=torch.get_num_threads(), batch=config.batch,
                            step_ms=median_ms, samples_per_s=config.batch * 1000.0 / median_ms,
                            render_ms_per_sample=render_ms, peak_rss_mb=peak_rss_mb())


def format_table(rows: list[TrainingBenchRow]) -> str:
    headers = ["preset", "precision", "device", "threads", "batch", "update ms", "update samples/s",
               "render ms/sample (1 process)", "peak RSS MB"]
    body = [[r.preset, r.precision, r.device, str(r.threads), str(r.batch), f"{r.step_ms:.0f}",
             f"{r.samples_per_s:.1f}", f"{r.render_ms_per_sample:.1f}", f"{r.peak_rss_mb:.0f}"] for r in rows]
    return markdown_table(headers, body)


@dataclass(frozen=True)
class LoaderBenchRow:
    workers: int
    cpus: int  # the cores this process may use
    opencv_threads: str  # a worker's: "1" (the trainer's setting) or "default (N)"
    batch: int
    samples_per_s: float
    batches: int  # timed, after each worker's first batches


def run_loader_bench(workers: tuple[int, ...], config: TrainingBenchConfig) -> list[LoaderBenchRow]:
    """Two rows per worker count (OpenCV on one thread a worker, and on its default), each measured in a
    fresh process; progress on stderr."""
    from wildpose.training.datasets.loader import TRAINER_OPENCV_THREADS

    if not workers or min(workers) < 1:
        raise ConfigError(f"--loader: worker counts must be at least 1, got {list(workers)}")
    jobs = [(count, threads) for count in workers for threads in (TRAINER_OPENCV_THREADS, None)]
    return _each_in_a_fresh_process(measure_loader, jobs, config, "bench loader")


def measure_loader(workers: int, opencv_threads: int | None, config: TrainingBenchConfig,
                   mocap: str) -> LoaderBenchRow:
    """Runs in a fresh process: the trainer's loader over its two pools, timed after its warm-up."""
    import cv2

    from wildpose.training import datasets
    from wildpose.training.datasets import DatasetConfig
    from wildpose.training.datasets.augment import AugmentConfig
    from wildpose.training.datasets.loader import data_loader
    from wildpose.training.datasets.sampler import Concat, MixedBatchSampler
    from wildpose.training.models import hourglass

    label = str(opencv_threads) if opencv_threads is not None else f"default ({cv2.getNumThreads()})"
    input_size = hourglass.preset(config.presets[0]).input_size
    data = Concat([datasets.build(DatasetConfig(format="synthpose", domain=domain, split="train", size=100_000,
                                                seed=seed, mocap=mocap), input_size, AugmentConfig())
                   for domain, seed in (("lab", _LAB_SEED), ("wild", _WILD_SEED))])
    # Each worker's first batches were prepared while the others started: the timing starts after them.
    warm_up = 2 * workers + 1
    steps = warm_up + math.ceil(config.seconds * 20_000 / config.batch)  # more than any machine here renders
    sampler = MixedBatchSampler(data.has_3d, config.batch, 0.5, steps, seed=0)
    sampler.set_epoch(0, 0)
    loader = iter(data_loader(data, workers, opencv_threads, batch_sampler=sampler))
    for _ in range(warm_up):
        next(loader)
    timed, started = 0, time.perf_counter()
    deadline = started + config.seconds
    while time.perf_counter() < deadline or timed < config.min_steps:
        if next(loader, None) is None:
            break
        timed += 1
    elapsed = time.perf_counter() - started
    del loader  # stops the workers
    return LoaderBenchRow(workers=workers, cpus=len(os.sched_getaffinity(0)), opencv_threads=label,
                          batch=config.batch, samples_per_s=timed * config.batch / elapsed, batches=timed)


def format_loader_table(rows: list[LoaderBenchRow]) -> str:
    headers = ["workers", "CPUs", "OpenCV threads a worker", "batch", "samples/s", "batches timed"]
    body = [[str(r.workers), str(r.cpus), r.opencv_threads, str(r.batch), f"{r.samples_per_s:.0f}", str(r.batches)]
            for r in rows]
    return markdown_table(headers, body)
