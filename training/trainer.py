"""The paper's three-stage training from one config: 2D heatmaps, + depth, + bone geometry.

`train(config)` runs every stage of `config.stages` in order with a fresh RMSprop per stage (the
reference ran each stage as a new job from the previous stage's weights) and writes, under
`config.output`: last.pt (after every epoch, and every `checkpoint.every_steps`), one
<n>_<stage>.pt per finished stage, metrics.csv, tensorboard/ and summary.json. Each checkpoint
can resume the run bit for bit: it holds the weights, the optimizer state, the position in the
schedule (stage, epoch, step) and the RNG state, and the data order and augmentations are functions
of (seed, stage, epoch, position) only (`datasets/sampler.py`). A run may also branch from another
run's stage checkpoint when the two configs differ only in the later stages, sharing the earlier
stages' compute (the SynthPose experiment's settings B and C share stages 1-2).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import json
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from wildpose.errors import CheckpointMismatchError, ConfigError
from wildpose.training import checkpoint, datasets, distributed, evaluate, losses
from wildpose.training.datasets.loader import data_loader
from wildpose.training.datasets.sampler import Concat, MixedBatchSampler
from wildpose.training.models import hourglass
from wildpose.training.models.config import ModelConfig
from wildpose.training.run_log import RunLog
from wildpose.training.train_config import OptimizerConfig, StageConfig, TrainConfig

log = logging.getLogger(__name__)

LOSS_NAMES = ("loss", "heatmap", "depth", "geometric")
# Config fields that do not change the numbers a run computes (so may differ on resume).
_NO_EFFECT = ("output", "workers", "logging", "checkpoint")


@dataclasses.dataclass(frozen=True)
class Position:
    """The next unit of work: stage index, epoch in the stage, step in the epoch; and steps done."""

    stage: int = 0
    epoch: int = 0
    step: int = 0
    global_step: int = 0


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """What a finished (or stopped) run leaves behind."""

    output: Path
    last_checkpoint: Path
    position: Position
    finished: bool
    weight_digests: tuple[str, ...]  # one per rank: equal when the replicas stayed in sync
    rank: int = 0


def memory_format_for(device: torch.device) -> torch.memory_format:
    """Channels-last on the CPU, where oneDNN's bf16 convolutions need it to be fast (README, Training);
    on CUDA the default layout, until it is measured there with deterministic kernels."""
    return torch.channels_last if device.type == "cpu" else torch.contiguous_format


def autocast_for(precision: str, device: torch.device) -> Callable[[], contextlib.AbstractContextManager]:
    """The forward pass's context: nothing for fp32, bfloat16 autocast for bf16 (weights stay fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"precision bf16: {torch.cuda.get_device_name(device)} has no bfloat16 support; "
                          "use precision = \"fp32\"")
    if device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        log.warning("precision bf16: this CPU has no bfloat16 instructions (AVX512-BF16 or AMX), so bf16 is "
                    "emulated and slower than fp32; set precision = \"fp32\"")
    return functools.partial(torch.autocast, device.type, dtype=torch.bfloat16)


def make_optimizer(model: torch.nn.Module, config: OptimizerConfig, lr: float) -> torch.optim.Optimizer:
    """RMSprop over the weights that train (`requires_grad`; see `set_trainable`)."""
    return torch.optim.RMSprop([p for p in model.parameters() if p.requires_grad], lr=lr, alpha=config.alpha,
                               eps=config.eps, momentum=config.momentum, weight_decay=config.weight_decay)


def set_trainable(model: torch.nn.Module, stage: StageConfig) -> None:
    """Mark what `stage` updates: every weight, or (`train = "depth"`) the depth regressor alone."""
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(stage.train == "all" or name.startswith(hourglass.DEPTH_PREFIX))


def keep_frozen_statistics(model: torch.nn.Module, stage: StageConfig) -> None:
    """After `train()`: a frozen 2D module goes back to eval mode, so its batch norm keeps its running
    statistics and its heatmaps stay those of the weights it started from."""
    if stage.train == "depth":
        for name, child in model.named_children():
            if name != hourglass.DEPTH_MODULE:
                child.eval()


def train_step(net: torch.nn.Module, optimizer: torch.optim.Optimizer,
               autocast: Callable[[], contextlib.AbstractContextManager], images: torch.Tensor,
               batch: dict[str, torch.Tensor], stage: StageConfig, input_size: int) -> dict[str, torch.Tensor]:
    """One update: the forward pass under `autocast`, the stage's losses in fp32, backward, step."""
    with autocast():
        heatmaps, depth = net(images)
    terms = losses.total_loss([h.float() for h in heatmaps], depth.float(), batch, stage.depth_weight,
                              stage.geometric_weight, input_size)
    optimizer.zero_grad(set_to_none=True)
    terms["loss"].backward()
    optimizer.step()
    return terms


def steps_per_epoch(stage: StageConfig, samples: int, batch_size: int, world_size: int) -> int:
    """The stage's `steps_per_epoch`, or one pass over all training samples across the ranks."""
    return stage.steps_per_epoch or max(1, math.ceil(samples / (batch_size * world_size)))


def _normalise(position: Position, stages: tuple[StageConfig, ...]) -> Position:
    """Roll a position past the end of an epoch or a stage over to the next one."""
    stage, epoch = position.stage, position.epoch
    if stage < len(stages) and epoch >= stages[stage].epochs:
        return Position(stage + 1, 0, 0, position.global_step)
    return position


class _Run:
    """One training process's state: the model, its data and where it is in the schedule."""

    def __init__(self, config: TrainConfig, context: distributed.Context) -> None:
        self.config, self.context = config, context
        self.output = Path(config.output)
        self.memory_format = memory_format_for(context.device)
        self.model = hourglass.build(config.model, seed=config.seed).to(context.device,
                                                                          memory_format=self.memory_format)
        self.autocast = autocast_for(config.precision, context.device)
        size = config.model.input_size
        self.train_data = Concat([datasets.build(d, size, config.augment, config.heatmap_sigma)
                                  for d in config.data.train])
        self.val_data = [(f"{i}_{d.format}", datasets.build(d, size, None, config.heatmap_sigma))
                         for i, d in enumerate(config.data.val)]
        self.net: torch.nn.Module = self.model
        if context.distributed:
            frozen = [stage.name for stage in config.stages if stage.train != "all"]
            if frozen:  # DDP reduces the gradients of the weights it was built with, every step
                raise ConfigError(f"stages {frozen} train part of the model (train = \"depth\"), which needs "
                                  "one process: run them without torchrun")
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[context.device.index] if context.device.type == "cuda" else None)
        self.run_log = RunLog(self.output, config.logging.tensorboard, enabled=context.is_main)
        self.position = Position()
        self.optimizer_state: dict[str, Any] | None = None
        self.optimizer_stage = -1

    # -- checkpoints -----------------------------------------------------------------------------
    def init_from(self, path: Path) -> None:
        """Start from `path`'s weights: fine-tuning. The optimizer and the schedule start afresh."""
        model, info = checkpoint.load(path)
        if model.config != self.config.model:
            raise CheckpointMismatchError(f"init {path}: its model {model.config} differs from the config's "
                                          f"{self.config.model}; give a checkpoint of the same model")
        self.model.load_state_dict(model.state_dict(), strict=True)
        log.info("starting from the weights of %s (%s)", path, info.weights)

    def resume_from(self, path: Path, branch: bool = False) -> None:
        record, state = checkpoint.read_resume(path)
        saved = ModelConfig.from_dict(record["model_config"])
        if saved != self.config.model:
            raise CheckpointMismatchError(f"{path}: its model {saved} differs from the config's "
                                          f"{self.config.model}; resume with the config that wrote it")
        position = _normalise(Position(**state["position"]), self.config.stages)
        ours, theirs = self.config.to_dict(), record.get("train_config") or {}
        if branch:
            self._check_branch(path, position, ours, theirs)
        else:
            differences = sorted(k for k, v in ours.items() if theirs.get(k) != v and k not in _NO_EFFECT)
            if differences:
                log.warning("resuming %s with a config that differs in %s: the run will not repeat the "
                            "original bit for bit", path, differences)
        self.model.load_state_dict(record["state_dict"], strict=True)
        self.position = position
        self.optimizer_state, self.optimizer_stage = state["optimizer"], state["optimizer_stage"]
        torch.set_rng_state(state["torch_rng"])
        log.info("resumed from %s at stage %d, epoch %d, step %d (%d steps done)", path,
                 self.position.stage, self.position.epoch, self.position.step, self.position.global_step)

    @staticmethod
    def _check_branch(path: Path, position: Position, ours: dict[str, Any], theirs: dict[str, Any]) -> None:
        """A branch starts at a stage boundary of a run whose config equals ours up to that stage."""
        if position.epoch or position.step:
            raise ConfigError(f"{path} was written inside a stage (epoch {position.epoch}, step {position.step}); "
                              "branch from a stage file (<n>_<stage>.pt) instead")
        differences = sorted(k for k, v in ours.items()
                             if k not in (*_NO_EFFECT, "stages") and theirs.get(k) != v)
        done = position.stage
        if (theirs.get("stages") or [])[:done] != ours["stages"][:done]:
            differences.append(f"stages[:{done}]")
        if differences:
            raise ConfigError(f"cannot branch from {path}: the config differs in {differences} before the "
                              f"branch point (stage {done + 1}); only the stages from there on may differ")

    def save(self, path: Path, position: Position, optimizer: torch.optim.Optimizer, stage_index: int,
             label: str) -> Path:
        state = {"position": dataclasses.asdict(position),
                 "optimizer": optimizer.state_dict(), "optimizer_stage": stage_index,
                 "torch_rng": torch.get_rng_state()}
        distributed.sync_buffers(self.context, self.model)
        if self.context.is_main:
            checkpoint.save(path, self.model, weights=label, trained=True, epoch=position.epoch,
                            train_config=self.config.to_dict(), resume=state,
                            extra={"stage": self.config.stages[min(position.stage, len(self.config.stages) - 1)].name,
                                   "global_step": position.global_step})
        distributed.barrier(self.context)
        return path

    # -- training ----------------------------------------------------------------------------------
    def run(self, stop_at_step: int | None) -> TrainResult:
        config, stages = self.config, self.config.stages
        last = self.output / "last.pt"
        position = self.position
        optimizer = None
        while position.stage < len(stages):
            stage_index, stage = position.stage, stages[position.stage]
            steps = steps_per_epoch(stage, len(self.train_data), config.batch_size, self.context.world_size)
            sampler = MixedBatchSampler(self.train_data.has_3d, config.batch_size, stage.mix_3d, steps,
                                        config.seed, self.context.rank, self.context.world_size)
            loader = data_loader(self.train_data, config.workers, batch_sampler=sampler,
                                 pin_memory=self.context.device.type == "cuda")
            set_trainable(self.model, stage)
            optimizer = make_optimizer(self.model, config.optimizer, stage.lr_at(position.epoch))
            if self.optimizer_state is not None and self.optimizer_stage == stage_index:
                optimizer.load_state_dict(self.optimizer_state)
            self.optimizer_state = None
            log.info("stage %d/%d %s: %d epochs x %d steps of %d samples (%d%% 3D), lr %g, depth weight "
                     "%g, geometric weight %g, %s on %s", stage_index + 1, len(stages), stage.name, stage.epochs,
                     steps, config.batch_size * self.context.world_size,
                     round(100 * sampler.count_3d / config.batch_size), stage.lr, stage.depth_weight,
                     stage.geometric_weight, config.precision, self.context.device)
            while position.epoch < stage.epochs:
                for group in optimizer.param_groups:
                    group["lr"] = stage.lr_at(position.epoch)
                sampler.set_epoch(stage_index, position.epoch, position.step)
                position, stopped = self._epoch(stage_index, stage, loader, optimizer, position, steps,
                                                stop_at_step)
                if stopped:
                    self.save(last, position, optimizer, stage_index, self._label(position))
                    return self._finish(last, position, finished=False)
                position = Position(stage_index, position.epoch + 1, 0, position.global_step)
                self.save(last, position, optimizer, stage_index, self._label(position))
                if config.checkpoint.keep_epochs:
                    self.save(self.output / "epochs" / f"{stage.name}_e{position.epoch:03d}.pt", position,
                              optimizer, stage_index, self._label(position))
                every = config.logging.val_every_epochs
                if self.val_data and ((every and position.epoch % every == 0) or position.epoch == stage.epochs):
                    self._validate(stage, position)
            position = _normalise(position, stages)
            stage_file = self.output / f"{stage_index + 1}_{stage.name}.pt"
            self.save(stage_file, position, optimizer, stage_index, self._label(position))
            log.info("stage %s done: %s", stage.name, stage_file)
        return self._finish(last, position, finished=True)

    def _epoch(self, stage_index: int, stage: StageConfig, loader: DataLoader, optimizer: torch.optim.Optimizer,
               position: Position, steps: int, stop_at_step: int | None) -> tuple[Position, bool]:
        from tqdm import tqdm

        config, device = self.config, self.context.device
        self.net.train()
        keep_frozen_statistics(self.model, stage)
        sums = dict.fromkeys(LOSS_NAMES, 0.0)
        count = 0
        bar = tqdm(total=steps, initial=position.step, desc=f"{stage.name} {position.epoch + 1}/{stage.epochs}",
                   disable=None if (config.logging.progress and self.context.is_main) else True, leave=False)
        # No bar (progress off, or output to a file or a pipe): a log line at each logging interval, so
        # a run under nohup or a batch scheduler still shows how far it is and how fast it goes.
        log_steps = bar.disable and self.context.is_main
        step, since, since_step = position.step, time.monotonic(), position.step
        # Time waiting for the loader against time in the update: the first says add workers (or render
        # faster), the second a faster device or precision.
        data_s = update_s = 0.0
        ready = time.monotonic()
        for batch in loader:
            fetched = time.monotonic()
            data_s += fetched - ready
            stage_step = position.epoch * steps + step
            if stage_step <= stage.warmup_steps:  # up to one step past it: the full lr again
                for group in optimizer.param_groups:
                    group["lr"] = stage.lr_at(position.epoch, stage_step)
            images = batch["image"].to(device, non_blocking=True).contiguous(memory_format=self.memory_format)
            tensors = {k: v.to(device, non_blocking=True) for k, v in batch.items() if isinstance(v, torch.Tensor)}
            terms = train_step(self.net, optimizer, self.autocast, images, tensors, stage, config.model.input_size)
            if not torch.isfinite(terms["loss"]):
                raise FloatingPointError(f"loss became {terms['loss'].item()} at stage {stage.name} epoch "
                                         f"{position.epoch} step {step}; lower the learning rate")
            step += 1
            position = Position(stage_index, position.epoch, step, position.global_step + 1)
            for name in LOSS_NAMES:
                sums[name] += float(terms[name].detach())
            count += 1
            update_s += time.monotonic() - fetched
            bar.update(1)
            if position.global_step % config.logging.every_steps == 0 or step == steps:
                means = distributed.mean_across_ranks(self.context, {k: v / count for k, v in sums.items()})
                seconds = {"data_s": data_s / count, "update_s": update_s / count}
                self.run_log.train(stage.name, position.epoch, step, position.global_step,
                                   optimizer.param_groups[0]["lr"], means, seconds)
                waiting = 100.0 * data_s / max(data_s + update_s, 1e-9)
                bar.set_postfix(loss=f"{means['loss']:.4g}", data=f"{waiting:.0f}%")
                if log_steps:
                    now = time.monotonic()
                    log.info("%s epoch %d/%d step %d/%d: loss %.4g (%s), %.2f s/step, %.0f %% of it waiting for "
                             "data", stage.name, position.epoch + 1, stage.epochs, step, steps, means["loss"],
                             ", ".join(f"{k} {means[k]:.4g}" for k in LOSS_NAMES if k != "loss"),
                             (now - since) / max(step - since_step, 1), waiting)
                    since, since_step = now, step
                sums, count = dict.fromkeys(LOSS_NAMES, 0.0), 0
                data_s = update_s = 0.0
            if stop_at_step is not None and position.global_step >= stop_at_step:
                bar.close()
                return position, True
            every = config.checkpoint.every_steps
            if every and position.global_step % every == 0 and step < steps:
                self.save(self.output / "last.pt", position, optimizer, stage_index, self._label(position))
            ready = time.monotonic()
        bar.close()
        return position, False

    def _validate(self, stage: StageConfig, position: Position) -> None:
        if self.context.is_main:
            for name, dataset in self.val_data:
                results = evaluate.evaluate(self.model, dataset, batch_size=self.config.batch_size,
                                            device=self.context.device, workers=self.config.workers)
                self.run_log.evaluation(stage.name, position.epoch, position.global_step, name, results)
        distributed.barrier(self.context)

    def _label(self, position: Position) -> str:
        stage = self.config.stages[min(position.stage, len(self.config.stages) - 1)]
        label = (f"trained by wildpose train (stage {stage.name}, epoch {position.epoch}, "
                 f"{position.global_step} steps, seed {self.config.seed})")
        return label if self.config.init is None else f"{label}, starting from {Path(self.config.init).name}"

    def _finish(self, last: Path, position: Position, finished: bool) -> TrainResult:
        distributed.sync_buffers(self.context, self.model)
        digests = distributed.gather_digests(self.context, self.model)
        if len(set(digests)) != 1:
            log.error("the ranks' weights differ after training (digests %s): a replica drifted", digests)
        if self.context.is_main:
            summary = {"finished": finished, "position": dataclasses.asdict(position), "last_checkpoint": str(last),
                       "world_size": self.context.world_size, "weight_digests": digests,
                       "stages": [s.name for s in self.config.stages]}
            (self.output / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        self.run_log.close()
        return TrainResult(output=self.output, last_checkpoint=last, position=position, finished=finished,
                           weight_digests=tuple(digests), rank=self.context.rank)


def train(config: TrainConfig, resume: str | Path | None = None, stop_at_step: int | None = None,
          branch_from: str | Path | None = None) -> TrainResult:
    """Run (or resume) the training `config` describes; stop early after `stop_at_step` total steps.

    `branch_from`: start from another run's stage checkpoint (<n>_<stage>.pt) instead of from scratch;
    that run's config must equal `config` except in the stages after the checkpoint. Under torchrun
    every process calls this; see `distributed.py`.
    """
    if stop_at_step is not None and stop_at_step < 1:
        raise ConfigError(f"stop_at_step must be >= 1, got {stop_at_step}")
    if resume is not None and branch_from is not None:
        raise ConfigError("give resume or branch_from, not both: a branch resumes from its own last.pt")
    previous = torch.are_deterministic_algorithms_enabled()
    if config.deterministic:
        # cuDNN and cuBLAS pick non-deterministic kernels by default, so on a GPU two runs (or a run
        # and its resumption) drift apart after a few steps. CPU runs are deterministic either way.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    context = distributed.setup(config.device)
    started = time.monotonic()
    run = None
    try:
        run = _Run(config, context)
        if resume is not None or branch_from is not None:
            run.resume_from(Path(resume if resume is not None else branch_from), branch=branch_from is not None)
        else:
            torch.manual_seed(config.seed)
            if config.init is not None:
                run.init_from(Path(config.init))
        result = run.run(stop_at_step)
    finally:
        # the run (its DistributedDataParallel wrapper) goes before the process group: see teardown
        run = None
        gc.collect()
        distributed.teardown(context)
        torch.use_deterministic_algorithms(previous)
    log.info("%s after %d steps in %.1f s; checkpoint %s", "finished" if result.finished else "stopped",
             result.position.global_step, time.monotonic() - started, result.last_checkpoint)
    return result
