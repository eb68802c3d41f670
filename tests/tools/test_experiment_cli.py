"""`wildpose experiment synthpose --quick`: a real, tiny run of the three settings that writes the
full table; and `wildpose eval --format synthpose` scoring its checkpoints the same way."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from wildpose.training import joints
from wildpose.training.synthpose import experiment

COLUMNS = ["setting", "training", "samples", "mpjpe_reference_mm", "mpjpe_protocol1_mm", "pa_mpjpe_mm",
           "bone_symmetry_mm", "pck@0.1", "git_commit"]


def wildpose(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wildpose.tools.cli", *args], capture_output=True, text=True,
                          # one intra-op thread: see tests/training/test_trainer.py::one_thread
                          timeout=timeout, env={**os.environ, "WILDPOSE_DEBUG": "", "OMP_NUM_THREADS": "1"})


@pytest.fixture(scope="module")
def quick(shared_data, tmp_path_factory):
    output = tmp_path_factory.mktemp("experiment") / "quick"
    result = wildpose("experiment", "synthpose", "--quick", "--output", str(output), "--device", "cpu",
                      "--threads", "1")
    return output, result


def test_the_quick_experiment_prints_and_writes_one_row_per_setting(quick):
    output, result = quick
    assert result.returncode == 0, result.stderr
    header = result.stdout.splitlines()[0]
    assert header == "| setting | training data | " + " | ".join(h for _, h in experiment.METRICS) + " |"
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and line[2] in "ABC"]
    assert [row[2] for row in rows] == ["A", "B", "C"]
    assert "B and C share stages 1-2" in result.stdout and "Commit " in result.stdout
    with (output / "results.csv").open() as handle:
        table = list(csv.DictReader(handle))
    assert list(table[0]) == COLUMNS and [r["setting"] for r in table] == ["A", "B", "C"]
    record = json.loads((output / "results.json").read_text())
    assert record["git_commit"] == table[0]["git_commit"] != ""
    for row in record["table"]:
        assert row["samples"] == 8
        assert all(np.isfinite(row[key]) and row[key] >= 0 for key, _ in experiment.METRICS)
        assert 0 <= row["pck@0.1"] <= 100


def test_c_branches_from_b_after_stage_2_and_a_trains_on_lab_only(quick):
    output, _ = quick
    assert {p.name for p in (output / "C").glob("*.pt")} == {"3_geometric.pt", "last.pt"}
    assert {p.name for p in (output / "B").glob("*.pt")} == {"1_heatmaps_2d.pt", "2_depth.pt", "3_low_lr.pt", "last.pt"}
    config = experiment.train_config(experiment.ExperimentConfig.quick(str(output)), "A")
    assert [(d.domain, d.split) for d in config.data.train] == [("lab", "train")]
    assert all(stage.mix_3d == 1.0 and stage.geometric_weight == 0.0 for stage in config.stages)


def test_an_output_folder_holding_a_run_is_refused(quick):
    output, _ = quick
    result = wildpose("experiment", "synthpose", "--quick", "--output", str(output))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "already holds" in result.stderr and "choose another output folder" in result.stderr


def test_eval_scores_a_checkpoint_on_synthpose_wild_test(quick):
    output, _ = quick
    result = wildpose("eval", str(output / "C" / "last.pt"), "--format", "synthpose", "--domain", "wild",
                      "--split", "test", "--size", "4", "--per-joint", "--json", str(output / "eval.json"))
    assert result.returncode == 0, result.stderr
    scores = json.loads((output / "eval.json").read_text())["0_synthpose"]
    assert scores["samples"] == 4 and {key for key, _ in experiment.METRICS} <= set(scores)
    per_joint = [scores[f"pck@0.1/{name}"] for name in joints.NAMES]
    assert scores["pck@0.1"] == pytest.approx(sum(per_joint) / len(per_joint))  # every joint scored, 4 samples each
