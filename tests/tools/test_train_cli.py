"""`wildpose train` and `wildpose eval` on real files: a tiny run, its evaluation, one-line errors."""

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
from support import skip_without_small_disks, small_disk_command

from wildpose.training.datasets import synthetic

CONFIG = """
output = "run"
model = "tiny"
batch_size = 8
workers = 0
[logging]
every_steps = 2
tensorboard = false
progress = false
[[data.train]]
format = "h36m"
annotations = "h36m/annot.h5"
images = "h36m/images"
[[data.train]]
format = "folder"
annotations = "folder/annotations.json"
[[data.val]]
format = "h36m"
annotations = "h36m/annot.h5"
images = "h36m/images"
split = "test"
[[stages]]
name = "heatmaps_2d"
epochs = 1
steps_per_epoch = 4
[[stages]]
name = "depth"
epochs = 1
steps_per_epoch = 3
depth_weight = 0.1
"""


def wildpose(*args: str, cwd=None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wildpose.tools.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd,
                          # one intra-op thread: see tests/training/test_trainer.py::one_thread
                          env={**os.environ, "WILDPOSE_DEBUG": "", "OMP_NUM_THREADS": "1"})


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("wildpose: error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_cli")
    synthetic.write_h36m(root / "h36m", 40, seed=3)
    synthetic.write_folder(root / "folder", 24, seed=4)
    (root / "train.toml").write_text(CONFIG)
    result = wildpose("train", "--config", str(root / "train.toml"))
    return root, result


def test_train_runs_every_stage_from_one_config(trained):
    root, result = trained
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"finished after 7 steps: {root / 'run' / 'last.pt'}"
    assert {p.name for p in (root / "run").glob("*.pt")} == {"last.pt", "1_heatmaps_2d.pt", "2_depth.pt"}
    assert (root / "run" / "metrics.csv").is_file()


def test_a_disk_too_full_for_a_checkpoint_ends_training_in_one_line(trained):
    """It was a traceback from torch's zip writer, with a `.partial` file left behind."""
    root, _ = trained
    disk = root / "small-disk"
    disk.mkdir(exist_ok=True)
    skip_without_small_disks()
    train = [sys.executable, "-m", "wildpose.tools.cli", "train", "--config", root / "train.toml",
             "--output", disk / "run"]
    result = subprocess.run(small_disk_command(disk, "size=600k", train, then=f"ls -A {disk}/run"),
                            capture_output=True, text=True, timeout=300, cwd=root,
                            env={**os.environ, "WILDPOSE_DEBUG": "", "OMP_NUM_THREADS": "1"})
    assert_one_line_error(result, f"cannot write the checkpoint {disk / 'run'}", "MB are free there",
                          "free some space or write elsewhere")
    assert ".partial" not in result.stdout  # the listing of the run's folder


def test_eval_scores_a_checkpoint_on_a_dataset_given_by_flags(trained):
    root, _ = trained
    result = wildpose("eval", str(root / "run" / "2_depth.pt"), "--format", "h36m", "--annotations",
                      str(root / "h36m" / "annot.h5"), "--images", str(root / "h36m" / "images"),
                      "--json", str(root / "eval.json"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "| dataset | metric | value |"
    scores = json.loads((root / "eval.json").read_text())["0_h36m"]
    assert scores["samples"] == 8
    assert {"mpjpe_reference_mm", "mpjpe_protocol1_mm", "pa_mpjpe_mm", "bone_symmetry_mm"} <= set(scores)
    assert all(np.isfinite(v) and v > 0 for v in scores.values())


def test_eval_takes_the_validation_sets_of_a_training_config(trained):
    root, _ = trained
    result = wildpose("eval", str(root / "run" / "last.pt"), "--config", str(root / "train.toml"),
                      "--save-predictions", str(root / "predictions.npz"))
    assert result.returncode == 0, result.stderr
    assert "| 0_h36m | mpjpe_reference_mm |" in result.stdout
    with np.load(root / "predictions.npz") as saved:
        assert saved["joints2d"].shape == (8, 16, 2) and saved["pose3d"].shape == (8, 16, 3)


def test_eval_with_the_flip_test_scores_the_averaged_predictions(trained):
    root, _ = trained
    flags = ["--format", "h36m", "--annotations", str(root / "h36m" / "annot.h5"),
             "--images", str(root / "h36m" / "images")]
    scores = {}
    for name, extra in (("plain", []), ("flip", ["--flip-test"])):
        result = wildpose("eval", str(root / "run" / "2_depth.pt"), *flags, *extra,
                          "--json", str(root / f"{name}.json"))
        assert result.returncode == 0, result.stderr
        scores[name] = json.loads((root / f"{name}.json").read_text())["0_h36m"]
    assert scores["flip"]["samples"] == scores["plain"]["samples"] == 8
    assert scores["flip"]["mpjpe_reference_mm"] != scores["plain"]["mpjpe_reference_mm"]


def test_eval_scores_saved_predictions_without_images(shared_data, tmp_path):
    """MPII's validation annotations against themselves: PCKh 100, no images needed."""
    valid = shared_data / "mpii" / "valid.h5"
    with h5py.File(valid) as h5:
        np.savez(tmp_path / "truth.npz", joints2d=h5["part"][()])
    result = wildpose("eval", "--predictions", str(tmp_path / "truth.npz"), "--format", "mpii",
                      "--annotations", str(valid))
    assert result.returncode == 0, result.stderr
    assert "| 0_mpii | pckh@0.5 | 100 |" in result.stdout and "| 0_mpii | samples | 2958 |" in result.stdout


@pytest.mark.parametrize("config, fragments", [
    (CONFIG.replace("batch_size = 8", "batch_size = 8\nlearning_rate = 1"),
     ["unknown keys ['learning_rate']", "known keys are", "bad.toml"]),
    (CONFIG.replace('format = "folder"', 'format = "cocoa"'), ["dataset format 'cocoa' is unknown", "coco"]),
    (CONFIG.replace('annotations = "folder/annotations.json"', 'annotations = "folder/missing.json"'),
     ["annotation file not found", "missing.json"]),
    ("output = [", ["not valid TOML"]),
])
def test_bad_training_configs_get_one_clear_line(trained, config, fragments):
    root, _ = trained
    path = root / "bad.toml"
    path.write_text(config)
    assert_one_line_error(wildpose("train", "--config", str(path)), *fragments)


@pytest.mark.parametrize("args, fragments", [
    (["train", "--config", "/no/such/train.toml"], ["training config not found: /no/such/train.toml"]),
    (["train"], ["--config"]),
    (["eval", "--format", "h36m", "--annotations", "x.h5"], ["either a checkpoint or --predictions"]),
    (["eval", "model.pt"], ["--config FILE", "--format F"]),
    (["eval", "--predictions", "/no/p.npz", "--format", "mpii", "--annotations", "/no/a.h5"],
     ["predictions file not found: /no/p.npz"]),
    (["eval", "--predictions", "p.npz", "--format", "nope"], ["invalid choice: 'nope'"]),
    (["eval", "model.pt", "--format", "h36m", "--annotations", "x.h5", "--faces"],
     ["--faces applies to --format synthpose only"]),
])
def test_bad_command_lines_get_one_clear_line(args, fragments):
    assert_one_line_error(wildpose(*args), *fragments)


def test_resuming_from_a_file_that_is_not_a_training_checkpoint_is_refused(trained, tmp_path):
    from wildpose.training import checkpoint
    from wildpose.training.models import hourglass

    root, _ = trained
    plain = checkpoint.save(tmp_path / "tiny.pt", hourglass.build(hourglass.PRESETS["tiny"], seed=0),
                            weights=checkpoint.untrained_label(0), trained=False)
    assert_one_line_error(wildpose("train", "--config", str(root / "train.toml"), "--output",
                                   str(tmp_path / "out"), "--resume", str(plain)),
                          "holds no training state to resume from")
