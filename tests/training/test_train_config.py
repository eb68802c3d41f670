"""The training config: one TOML file, checked whole, unknown keys refused with the known ones."""

from pathlib import Path

import pytest

from wildpose.errors import ConfigError
from wildpose.training import train_config
from wildpose.training.models import hourglass

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "train_example.toml"

MINIMAL = """
output = "out"
model = "tiny"
[[data.train]]
format = "folder"
annotations = "data/annotations.json"
"""


def write(tmp_path, text):
    path = tmp_path / "train.toml"
    path.write_text(text)
    return path


def test_the_example_config_is_the_papers_schedule():
    config = train_config.load(EXAMPLE)
    assert config.stages == train_config.PAPER_STAGES
    assert [s.name for s in config.stages] == ["heatmaps_2d", "depth", "geometric"]
    assert config.model == hourglass.PRESETS["paper"] and config.batch_size == 6
    assert (config.optimizer.alpha, config.optimizer.eps) == (0.99, 1e-8)
    assert [s.lr for s in config.stages] == [2.5e-4, 2.5e-4, 2.5e-5]
    assert [(s.depth_weight, s.geometric_weight) for s in config.stages] == [(0, 0), (0.1, 0), (0.1, 0.01)]
    assert {d.format for d in config.data.train} == {"h36m", "mpii"}


@pytest.mark.parametrize("path", sorted(EXAMPLE.parent.glob("*.toml")), ids=lambda path: path.name)
def test_every_shipped_config_loads(path):
    """The README and the GPU scripts quote these files; a renamed key must not break one unnoticed."""
    assert train_config.load(path).stages


def test_relative_paths_are_resolved_against_the_config_file(tmp_path):
    config = train_config.load(write(tmp_path, MINIMAL))
    assert config.output == str(tmp_path / "out")
    assert config.data.train[0].annotations == str(tmp_path / "data" / "annotations.json")


def test_a_config_saved_with_a_byte_order_mark_reads_like_any_other(tmp_path):
    """Windows editors save UTF-8 with a BOM; TOML parsers call it an invalid statement at line 1."""
    path = tmp_path / "train.toml"
    path.write_bytes(b"\xef\xbb\xbf" + MINIMAL.encode())
    assert train_config.load(path).output == str(tmp_path / "out")


def test_the_config_round_trips_through_its_plain_dict(tmp_path):
    config = train_config.load(EXAMPLE)
    assert train_config.TrainConfig.from_dict(config.to_dict()) == config
    assert "(" not in repr(type(config.to_dict()["stages"][1]["lr_drop_epochs"]))  # lists, not tuples


def test_the_learning_rate_drops_tenfold_from_each_listed_epoch():
    stage = train_config.StageConfig(name="depth", epochs=40, lr=2.5e-4, lr_drop_epochs=(30,))
    assert [stage.lr_at(e) for e in (0, 29, 30, 39)] == pytest.approx([2.5e-4, 2.5e-4, 2.5e-5, 2.5e-5])


def test_the_learning_rate_rises_over_the_warmup_steps_of_a_stage():
    stage = train_config.StageConfig(name="finetune", epochs=2, lr=1e-3, lr_drop_epochs=(1,), warmup_steps=4)
    assert [stage.lr_at(0, s) for s in range(6)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])
    assert stage.lr_at(0) == stage.lr_at(0, 4) == 1e-3 and stage.lr_at(1, 6) == pytest.approx(1e-4)
    assert train_config.StageConfig(name="plain", epochs=1, lr=1e-3).lr_at(0, 0) == 1e-3


def test_a_model_table_overrides_a_preset(tmp_path):
    text = MINIMAL.replace('model = "tiny"\n', "") + '[model]\npreset = "tiny"\nstacks = 2\n'
    config = train_config.load(write(tmp_path, text))
    assert config.model.stacks == 2 and config.model.features == 32


@pytest.mark.parametrize("addition, message", [
    ("colour = 1\n", r"config: unknown keys \['colour'\]; known keys are \[.*'batch_size'"),
    ("[augment]\nflip = 0.5\n", r"augment: unknown keys \['flip'\]; known keys are .*'flip_p'"),
    ("[logging]\nevery = 5\n", r"logging: unknown keys \['every'\]"),
    ("[[stages]]\nname = 's1'\nepochs = 1\nlr_drop = [1]\n", r"stages: unknown keys \['lr_drop'\]"),
    ("[[data.val]]\nformat = 'mpii'\nannotations = 'a.h5'\npath = 'x'\n", r"dataset: unknown keys \['path'\]"),
])
def test_unknown_keys_are_errors_that_list_the_known_ones(tmp_path, addition, message):
    text = MINIMAL.replace('model = "tiny"', 'model = "tiny"\n' + addition) if not addition.startswith("[") \
        else MINIMAL + addition
    with pytest.raises(ConfigError, match=message) as caught:
        train_config.load(write(tmp_path, text))
    assert "train.toml" in str(caught.value)


@pytest.mark.parametrize("text, message", [
    (MINIMAL.replace('"tiny"', '"huge"'), "unknown model preset 'huge'"),
    (MINIMAL.replace('format = "folder"', 'format = "cocoa"'), "dataset format 'cocoa' is unknown"),
    (MINIMAL + "[[stages]]\nname = 's1'\nepochs = 0\n", r"epochs must be an integer >= 1"),
    (MINIMAL + "[[stages]]\nname = 's1'\nepochs = 2\nmix_3d = 1.5\n", r"mix_3d is a share"),
    (MINIMAL + "[[stages]]\nname = 's1'\nepochs = 2\nlr_drop_epochs = [5]\n", r"lr_drop_epochs must list"),
    (MINIMAL + "[[stages]]\nname = 's1'\nepochs = 2\nwarmup_steps = -1\n", r"warmup_steps must be an integer >= 0"),
    (MINIMAL + "[[stages]]\nname = 's1'\nepochs = 2\ntrain = 'heads'\n", r"train must be one of 'all', 'depth'"),
    (MINIMAL + "[[stages]]\nname = 's1'\nepochs = 2\ntrain = 'depth'\n", r"give depth_weight or geometric_weight"),
    (MINIMAL + "[[stages]]\nepochs = 2\n", r"needs \['name'\]"),
    (MINIMAL + "[[stages]]\nname = 'a'\nepochs = 1\n[[stages]]\nname = 'a'\nepochs = 1\n", "names must be unique"),
    (MINIMAL.replace('output = "out"', 'batch_size = 0\noutput = "out"'), "batch_size must be an integer >= 1"),
    (MINIMAL.replace('output = "out"', 'device = "tpu"\noutput = "out"'), "device must be auto"),
    (MINIMAL.replace('output = "out"', 'precision = "fp16"\noutput = "out"'),
     "precision must be one of fp32, bf16, got 'fp16'"),
    (MINIMAL.replace('output = "out"\n', ""), "`output` is required"),
    ('output = "x"\n', "`data` is required"),
    ('output = "x"\n[data]\ntrain = []\n', "at least one"),
    ("output = = 1", "not valid TOML"),
])
def test_invalid_configs_are_refused_with_the_reason(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        train_config.load(write(tmp_path, text))


def test_a_missing_config_file_points_to_the_example(tmp_path):
    with pytest.raises(ConfigError, match="training config not found: .*nope.toml; see configs/train_example.toml"):
        train_config.load(tmp_path / "nope.toml")
