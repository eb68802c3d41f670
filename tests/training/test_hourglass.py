"""The paper's network: sizes, the stack update feeding depth, and config checks."""

import pytest
import torch

from wildpose.errors import ConfigError
from wildpose.training.models import hourglass

PAPER_PARAMETERS = 14.4e6  # paper-facts.md: "About 14.4 M parameters"


def test_paper_preset_has_the_papers_parameter_count(capsys):
    count = hourglass.parameter_count(hourglass.build(hourglass.PRESETS["paper"]))
    with capsys.disabled():  # shown in every test run's output, not only on failure
        print(f"\npaper preset: {count:,} parameters (paper-facts.md: about 14.4 M)")
    assert abs(count - PAPER_PARAMETERS) / PAPER_PARAMETERS < 0.01


def test_paper_depth_module_regresses_16_depths_from_4096_features():
    model = hourglass.build(hourglass.PRESETS["paper"])
    assert (model.depth.linear.in_features, model.depth.linear.out_features) == (4096, 16)
    assert len(model.stacks) == 2 and model.config.features == 256


@pytest.mark.parametrize("name", sorted(hourglass.PRESETS))
def test_every_preset_outputs_one_heatmap_per_stack_and_16_depths(name):
    config = hourglass.PRESETS[name]
    model = hourglass.build(config, seed=0).eval()
    with torch.no_grad():
        heatmaps, depth = model(torch.rand(2, 3, config.input_size, config.input_size))
    assert len(heatmaps) == config.stacks
    side = config.input_size // 4
    assert all(h.shape == (2, 16, side, side) for h in heatmaps)
    assert depth.shape == (2, 16)


def test_depth_reads_the_update_after_the_last_stack():
    """The last stack's feature update (1x1 of its heatmaps) must feed the depth module."""
    model = hourglass.build(hourglass.PRESETS["tiny"], seed=0)
    _, depth = model(torch.rand(2, 3, 64, 64))
    depth.sum().backward()
    assert model.stacks[-1].remap_heatmap.weight.grad.abs().sum() > 0
    assert model.stacks[-1].remap_features.weight.grad.abs().sum() > 0


def test_residual_is_pre_activation_with_nothing_after_the_sum():
    block = hourglass.Residual(64, 128)
    assert isinstance(block.body[0], torch.nn.BatchNorm2d)
    assert isinstance(block.body[-1], torch.nn.Conv2d)
    assert isinstance(block.skip, torch.nn.Conv2d)
    assert isinstance(hourglass.Residual(64, 64).skip, torch.nn.Identity)


def test_same_seed_gives_the_same_weights():
    a = hourglass.build(hourglass.PRESETS["tiny"], seed=3).state_dict()
    b = hourglass.build(hourglass.PRESETS["tiny"], seed=3).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("changes, message", [
    ({"stacks": 0}, "stacks must be a positive integer"),
    ({"features": 255}, "must be even"),
    ({"input_size": 200}, "input_size must be a multiple of 64"),
    ({"num_joints": 17}, "num_joints must be 16"),
    ({"features": "256"}, "features must be a positive integer"),
])
def test_invalid_configs_are_refused_with_the_reason(changes, message):
    with pytest.raises(ConfigError, match=message):
        hourglass.ModelConfig(**changes)


def test_unknown_config_keys_and_presets_are_refused():
    with pytest.raises(ConfigError, match="unknown keys"):
        hourglass.ModelConfig.from_dict({"stacks": 2, "widht": 3})
    with pytest.raises(ConfigError, match="unknown model preset"):
        hourglass.preset("huge")
