"""Mixed batches: a fixed 3D share per batch, a data order that depends on (seed, stage, epoch) only,
and disjoint slices per rank."""

import numpy as np
import pytest

from wildpose.errors import ConfigError
from wildpose.training.datasets.sampler import MixedBatchSampler

HAS_3D = np.array([True] * 10 + [False] * 30)


def epoch(rank=0, world=1, stage=0, number=0, start=0, seed=3, mix=0.5, steps=6, batch=4):
    sampler = MixedBatchSampler(HAS_3D, batch, mix, steps, seed, rank, world)
    sampler.set_epoch(stage, number, start)
    return list(sampler)


@pytest.mark.parametrize("mix, expected_3d", [(0.5, 2), (0.25, 1), (0.0, 0), (1.0, 4), (0.6, 2)])
def test_every_batch_holds_the_configured_share_of_3d_samples(mix, expected_3d):
    for batch in epoch(mix=mix):
        assert len(batch) == 4 and sum(HAS_3D[i] for i, _ in batch) == expected_3d


def test_the_order_is_a_function_of_seed_stage_and_epoch():
    assert epoch() == epoch()
    assert epoch() != epoch(number=1) and epoch() != epoch(stage=1) and epoch() != epoch(seed=4)


def test_each_pass_uses_every_sample_once_before_repeating():
    indices = [i for batch in epoch(mix=0.0, steps=7, batch=4) for i, _ in batch]  # 28 of 30 2D samples
    assert len(set(indices)) == 28


def test_ranks_take_disjoint_slices_that_cover_the_global_order():
    ranks = [epoch(rank=r, world=2) for r in range(2)]
    keys = [key for r in ranks for batch in r for key in batch]
    positions = [stream[3] for _, stream in keys]
    assert len(set(positions)) == len(positions) == 2 * 6 * 4


def test_resuming_mid_epoch_yields_the_remaining_batches():
    assert epoch(start=4) == epoch()[4:]


@pytest.mark.parametrize("has_3d, mix, message", [
    (np.zeros(8, bool), 0.5, "has no 3D samples"),
    (np.ones(8, bool), 0.5, "has none"),
])
def test_a_mix_the_data_cannot_serve_is_refused(has_3d, mix, message):
    with pytest.raises(ConfigError, match=message):
        MixedBatchSampler(has_3d, 4, mix, 2, 0)
