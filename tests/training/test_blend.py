"""Blending a fine-tune with its start: each part takes the share asked for, the ends are exact, and
the result is a checkpoint that says what it is."""

import dataclasses

import pytest
import torch
from support import assert_one_error_line, wildpose

from wildpose.errors import CheckpointMismatchError, ConfigError
from wildpose.training import blend, checkpoint
from wildpose.training.models import hourglass

TINY = hourglass.PRESETS["tiny"]


def tiny_checkpoint(path, seed, config=TINY):
    """A tiny model with its own weights and batch-norm statistics (one training-mode pass)."""
    model = hourglass.build(config, seed=seed)
    torch.manual_seed(seed)
    with torch.no_grad():
        model.train()(torch.rand(2, 3, config.input_size, config.input_size))
    return checkpoint.save(path, model, weights=f"tiny seed {seed}", trained=True, epoch=seed)


@pytest.fixture()
def start_and_tuned(tmp_path):
    return tiny_checkpoint(tmp_path / "start.pt", 1), tiny_checkpoint(tmp_path / "tuned.pt", 2)


def weights(path):
    return checkpoint.load(path)[0].state_dict()


def test_each_part_is_the_share_asked_for_of_the_fine_tune(start_and_tuned, tmp_path):
    start, tuned = start_and_tuned
    blend.blend(start, tuned, blend.Shares(0.25, 0.5), tmp_path / "blend.pt")
    a, b, mixed = weights(start), weights(tuned), weights(tmp_path / "blend.pt")
    for key in ("stem.0.weight", "stacks.0.heatmap.bias", "stem.1.running_var"):
        torch.testing.assert_close(mixed[key], 0.25 * b[key] + 0.75 * a[key])
    key = "depth.linear.weight"
    torch.testing.assert_close(mixed[key], 0.5 * (a[key] + b[key]))


def test_a_share_of_one_keeps_the_fine_tunes_2d_module_bit_for_bit(start_and_tuned, tmp_path):
    """The long-run blend's recipe: the fine-tune's heatmaps, exactly, with a blended depth regressor."""
    start, tuned = start_and_tuned
    model, _ = blend.blend(start, tuned, blend.Shares(1.0, 0.5), tmp_path / "blend.pt")
    fine_tune = checkpoint.load(tuned)[0]
    image = torch.rand(1, 3, TINY.input_size, TINY.input_size)
    with torch.no_grad():
        (maps, depth), (tuned_maps, tuned_depth) = model(image), fine_tune(image)
    assert all(torch.equal(m, t) for m, t in zip(maps, tuned_maps, strict=True))
    assert not torch.equal(depth, tuned_depth)


def test_a_share_of_zero_gives_back_the_start(start_and_tuned, tmp_path):
    start, tuned = start_and_tuned
    blend.blend(start, tuned, blend.Shares(0.0, 0.0), tmp_path / "blend.pt")
    original, mixed = weights(start), weights(tmp_path / "blend.pt")
    assert all(torch.equal(original[k], mixed[k]) for k in original)


def test_the_blend_names_its_sources_and_shares(start_and_tuned, tmp_path):
    start, tuned = start_and_tuned
    _, info = blend.blend(start, tuned, blend.Shares(1.0, 0.5), tmp_path / "blend.pt")
    assert info.weights.startswith("a blend of tuned.pt with start.pt: the 2D module 1 of tuned.pt, "
                                   "the depth regressor 0.5 of tuned.pt")
    assert "tiny seed 2" in info.weights and "tiny seed 1" in info.weights
    assert info.extra["blend"]["share_depth"] == 0.5 and info.model_config == TINY


def test_two_different_models_are_refused(tmp_path):
    start = tiny_checkpoint(tmp_path / "start.pt", 1)
    other = tiny_checkpoint(tmp_path / "other.pt", 2, dataclasses.replace(TINY, features=48))
    with pytest.raises(CheckpointMismatchError, match="are different models"):
        blend.blend(start, other, blend.Shares(0.5, 0.5), tmp_path / "blend.pt")


@pytest.mark.parametrize("share", [-0.1, 1.5, True])
def test_a_share_outside_zero_to_one_is_refused(share):
    with pytest.raises(ConfigError, match="expected a number in \\[0, 1\\]"):
        blend.Shares(share, 0.5)


def test_the_command_writes_a_blend_and_refuses_a_missing_checkpoint_in_one_line(start_and_tuned, tmp_path):
    start, tuned = start_and_tuned
    done = wildpose("blend", str(start), str(tuned), "--share", "1", "--depth-share", "0.5",
                    "--output", str(tmp_path / "blend.pt"))
    assert done.returncode == 0, done.stderr
    assert checkpoint.load(tmp_path / "blend.pt")[1].extra["blend"]["share_2d"] == 1.0
    assert_one_error_line(wildpose("blend", str(tmp_path / "nope.pt"), str(tuned), "--output",
                                   str(tmp_path / "x.pt")), "checkpoint not found", "nope.pt")


def test_a_label_given_describes_the_blend_and_the_sources_stay_recorded(start_and_tuned, tmp_path):
    start, tuned = start_and_tuned
    _, info = blend.blend(start, tuned, blend.Shares(1.0, 0.5), tmp_path / "blend.pt", label="demo weights v3")
    assert info.weights == "demo weights v3"
    assert info.extra["blend"]["tuned_weights"] == "tiny seed 2" and info.extra["blend"]["start"] == "start.pt"
