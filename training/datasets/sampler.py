"""Training batches that mix 3D and 2D-only samples at a fixed ratio, the same on every run.

Every batch holds round(batch_size * mix_3d) 3D samples and the rest 2D-only ones (the reference
mixed 50/50 in expectation; a fixed count keeps every batch's losses comparable). The order of an
epoch is a function of (seed, stage, epoch) only, and each rank of a distributed run takes its own
disjoint slice of it, so a resumed run sees exactly the batches the uninterrupted one would have.
Each index comes with its draw's seed material (seed, stage, epoch, position in the epoch), from
which the dataset draws that sample's augmentation: no two draws share a seed, whatever the worker.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler

from wildpose.errors import ConfigError

Key = tuple[int, tuple[int, int, int, int]]


def _stream(rng: np.random.Generator, pool: np.ndarray, count: int) -> np.ndarray:
    """`count` indices from `pool`: fresh permutations back to back, so each sample is used once per
    pass and passes repeat only when the epoch needs more samples than the pool holds."""
    if count == 0:
        return np.zeros(0, np.int64)
    passes = math.ceil(count / len(pool))
    return np.concatenate([rng.permutation(pool) for _ in range(passes)])[:count]


class MixedBatchSampler(Sampler[list[Key]]):
    """Batch sampler over a concatenation of datasets whose per-sample `has_3d` flags are given."""

    def __init__(self, has_3d: np.ndarray, batch_size: int, mix_3d: float, steps: int, seed: int,
                 rank: int = 0, world_size: int = 1) -> None:
        has_3d = np.asarray(has_3d, bool)
        self.pool_3d, self.pool_2d = np.flatnonzero(has_3d), np.flatnonzero(~has_3d)
        self.count_3d = int(round(batch_size * mix_3d))
        self.count_2d = batch_size - self.count_3d
        if self.count_3d and not len(self.pool_3d):
            raise ConfigError(f"mix_3d = {mix_3d} asks for {self.count_3d} 3D samples per batch but the "
                              "training data has no 3D samples; set mix_3d = 0 or add a 3D dataset")
        if self.count_2d and not len(self.pool_2d):
            raise ConfigError(f"mix_3d = {mix_3d} asks for {self.count_2d} 2D-only samples per batch but "
                              "the training data has none; set mix_3d = 1 or add a 2D dataset")
        self.batch_size, self.steps, self.seed = batch_size, steps, seed
        self.rank, self.world_size = rank, world_size
        self.stage, self.epoch, self.start_step = 0, 0, 0

    def set_epoch(self, stage: int, epoch: int, start_step: int = 0) -> None:
        """Select the epoch to iterate, starting at batch `start_step` (to resume mid-epoch)."""
        self.stage, self.epoch, self.start_step = stage, epoch, start_step

    def __len__(self) -> int:
        return self.steps - self.start_step

    def __iter__(self) -> Iterator[list[Key]]:
        rng = np.random.default_rng([self.seed, self.stage, self.epoch])
        total_3d = self.steps * self.world_size * self.count_3d
        total_2d = self.steps * self.world_size * self.count_2d
        stream_3d = _stream(rng, self.pool_3d, total_3d)
        stream_2d = _stream(rng, self.pool_2d, total_2d)
        for step in range(self.start_step, self.steps):
            slot = step * self.world_size + self.rank  # this rank's batch in the epoch's global order
            positions = [*range(slot * self.count_3d, (slot + 1) * self.count_3d),
                         *range(total_3d + slot * self.count_2d, total_3d + (slot + 1) * self.count_2d)]
            indices = [*stream_3d[slot * self.count_3d:(slot + 1) * self.count_3d],
                       *stream_2d[slot * self.count_2d:(slot + 1) * self.count_2d]]
            yield [(int(i), (self.seed, self.stage, self.epoch, p)) for i, p in zip(indices, positions, strict=True)]


class Concat:
    """Concatenation of `PoseDataset`s that routes `(index, stream)` keys to the right member."""

    def __init__(self, datasets: list) -> None:
        if not datasets:
            raise ConfigError("no training datasets configured; add at least one [[data.train]] table")
        self.datasets = datasets
        self.offsets = np.cumsum([0] + [len(d) for d in datasets])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def has_3d(self) -> np.ndarray:
        return np.concatenate([np.asarray(d.has_3d, bool) for d in self.datasets])

    def __getitem__(self, key):
        index, stream = key if isinstance(key, tuple) else (int(key), None)
        member = int(np.searchsorted(self.offsets, index, side="right") - 1)
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} out of range for {len(self)} samples")
        local = index - int(self.offsets[member])
        return self.datasets[member][(local, stream) if stream is not None else local]
