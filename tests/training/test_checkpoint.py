"""Checkpoints describe themselves, round-trip exactly and refuse weights that do not fit."""

import pytest
import torch

from wildpose.errors import CheckpointMismatchError, ModelFileError
from wildpose.training import checkpoint, joints
from wildpose.training.models import hourglass

TINY = hourglass.PRESETS["tiny"]


@pytest.fixture()
def saved(tmp_path):
    model = hourglass.build(TINY, seed=1)
    path = checkpoint.save(tmp_path / "tiny.pt", model, weights="untrained weights (random init, seed 1)",
                           trained=False, epoch=7, train_config={"lr": 2.5e-4})
    return model, path


def test_round_trip_is_bit_exact(saved):
    model, path = saved
    loaded, info = checkpoint.load(path)
    original = model.state_dict()
    assert all(torch.equal(original[k], v) for k, v in loaded.state_dict().items())
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model.eval()(image)[1], loaded(image)[1])
    assert info.model_config == TINY and info.epoch == 7 and info.train_config == {"lr": 2.5e-4}


def test_checkpoint_is_a_plain_dict_loadable_with_weights_only(saved):
    _, path = saved
    record = torch.load(path, weights_only=True)
    assert record["format"] == "wildpose-checkpoint"
    assert record["joints"] == list(joints.NAMES)
    assert record["model_config"] == TINY.to_dict()
    assert record["weights"].startswith("untrained weights")
    assert "git_commit" in record and "epoch" in record


def _rewrite(path, edit):
    record = torch.load(path, weights_only=True)
    edit(record)
    torch.save(record, path)


@pytest.mark.parametrize("edit, message", [
    (lambda r: r["state_dict"].pop("depth.linear.weight"), "1 missing keys .*depth.linear.weight"),
    (lambda r: r["state_dict"].update(extra=torch.zeros(1)), "1 unexpected keys .*extra"),
    (lambda r: r["model_config"].update(features=64), "weights do not match the model config"),
    (lambda r: r["model_config"].update(stacks=2), "missing keys"),
    (lambda r: r["model_config"].update(features=3), "invalid model config"),
    (lambda r: r["model_config"].update(colour="red"), "unknown keys"),
    (lambda r: r.update(joints=list(reversed(r["joints"]))), "joint order"),
])
def test_weights_that_do_not_fit_fail_with_a_clear_message(saved, edit, message):
    _, path = saved
    _rewrite(path, edit)
    with pytest.raises(CheckpointMismatchError, match=message):
        checkpoint.load(path)


def test_missing_corrupt_and_foreign_files_are_refused(tmp_path, saved):
    with pytest.raises(ModelFileError, match="checkpoint not found"):
        checkpoint.load(tmp_path / "nope.pt")
    _, path = saved
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ModelFileError, match="corrupt"):
        checkpoint.load(corrupt)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(ModelFileError, match="not a WildPose checkpoint"):
        checkpoint.load(foreign)
