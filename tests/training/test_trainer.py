"""Training for real on generated data: the losses fall, checkpoints resume bit for bit, and two
data-parallel processes end with identical weights."""

import csv
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import tomllib

import psutil
import pytest
import torch

from wildpose.errors import CheckpointMismatchError, ConfigError
from wildpose.training import checkpoint, run_log, train_config, trainer
from wildpose.training.models import hourglass

STAGES = [
    {"name": "heatmaps_2d", "epochs": 2, "steps_per_epoch": 6, "lr": 1e-3},
    {"name": "depth", "epochs": 1, "steps_per_epoch": 6, "lr": 1e-3, "depth_weight": 0.1},
    {"name": "geometric", "epochs": 1, "steps_per_epoch": 6, "lr": 1e-4, "depth_weight": 0.1,
     "geometric_weight": 0.01},
]
TOTAL_STEPS = 24


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on a 2-core machine shared with other work, two OpenMP threads spin-wait
    on each other and a 5 s run can take minutes (CPU results are bit-exact for a fixed count)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def make_config(data, output, tensorboard=False, **changes):
    values = {
        "output": str(output), "model": "tiny", "seed": 0, "batch_size": 8, "workers": 0,
        "logging": {"every_steps": 2, "tensorboard": tensorboard, "progress": False},
        "data": {"train": [
            {"format": "h36m", "annotations": str(data.h36m_annotations), "images": str(data.h36m_images)},
            {"format": "folder", "annotations": str(data.folder_annotations)}],
            "val": [{"format": "h36m", "annotations": str(data.h36m_annotations),
                     "images": str(data.h36m_images), "split": "test"}]},
        "stages": STAGES,
    }
    values.update(changes)
    return train_config.TrainConfig.from_dict(values)


@pytest.fixture(scope="module")
def full_run(synthetic_data, tmp_path_factory):
    output = tmp_path_factory.mktemp("full")
    result = trainer.train(make_config(synthetic_data, output, tensorboard=True))
    return result, run_log.read(output / "metrics.csv")


def train_rows(rows, stage=None):
    return [r for r in rows if r["kind"] == "train" and (stage is None or r["stage"] == stage)]


def test_a_short_run_goes_through_all_three_stages_and_the_losses_fall(full_run):
    result, rows = full_run
    assert result.finished and result.position.global_step == TOTAL_STEPS
    stage1 = train_rows(rows, "heatmaps_2d")
    first, last = float(stage1[0]["heatmap"]), float(stage1[-1]["heatmap"])
    print(f"heatmap loss {first:.4g} -> {last:.4g}")
    assert last < 0.25 * first
    depth = [float(r["depth"]) for r in train_rows(rows, "depth")]
    print(f"depth loss {depth[0]:.4g} -> {depth[-1]:.4g}")
    assert depth[-1] < 0.7 * depth[0]
    # the stages' weights are applied: stage 1 trains heatmaps only, stage 3 adds the geometric term
    assert all(float(r["loss"]) == pytest.approx(float(r["heatmap"])) for r in stage1)
    for r in train_rows(rows, "geometric"):
        expected = float(r["heatmap"]) + 0.1 * float(r["depth"]) + 0.01 * float(r["geometric"])
        assert float(r["loss"]) == pytest.approx(expected, rel=1e-5)


def test_the_run_leaves_checkpoints_logs_and_a_summary(full_run):
    result, rows = full_run
    output = result.output
    assert {p.name for p in output.glob("*.pt")} == {"last.pt", "1_heatmaps_2d.pt", "2_depth.pt", "3_geometric.pt"}
    model, info = checkpoint.load(output / "3_geometric.pt")
    assert info.trained and info.model_config == hourglass.PRESETS["tiny"]
    assert info.train_config["stages"][2]["geometric_weight"] == 0.01 and "geometric" in info.weights
    record = torch.load(output / "last.pt", weights_only=True)
    assert set(record["resume"]) == {"position", "optimizer", "optimizer_stage", "torch_rng"}
    assert list((output / "tensorboard").glob("events.out.tfevents.*"))
    evaluations = [r for r in rows if r["kind"] == "eval" and r["metric"] == "mpjpe_reference_mm"]
    assert len(evaluations) == 4 and all(float(r["value"]) > 0 for r in evaluations)
    summary = json.loads((output / "summary.json").read_text())
    assert summary["finished"] and summary["weight_digests"] == list(result.weight_digests)


def test_without_a_progress_bar_each_logging_interval_is_a_log_line(synthetic_data, tmp_path, caplog):
    """Output to a file (nohup, a batch job) gets no bar; the log still says how far and how fast."""
    config = make_config(synthetic_data, tmp_path / "logged", stages=[STAGES[0]])
    with caplog.at_level(logging.INFO, logger="wildpose.training.trainer"):
        trainer.train(config)
    lines = [r.getMessage() for r in caplog.records if " step " in r.getMessage()]
    assert [line.split(":")[0] for line in lines] == [
        f"heatmaps_2d epoch {epoch}/2 step {step}/6" for epoch in (1, 2) for step in (2, 4, 6)]
    assert all("loss " in line and "heatmap " in line and re.search(r", [0-9.]+ s/step, \d+ % of it waiting for data$",
                                                                    line) for line in lines)


def test_each_logged_row_says_where_the_time_went(full_run):
    """Waiting for the loader against the update: which side a faster run needs."""
    _, rows = full_run
    for row in train_rows(rows):
        assert float(row["data_s"]) > 0.0 and float(row["update_s"]) > 0.0


def test_a_run_resumed_into_an_older_metrics_file_keeps_its_header(synthetic_data, tmp_path):
    """metrics.csv from before the timing columns: the resumed run appends rows that line up with it."""
    config = make_config(synthetic_data, tmp_path / "old", stages=[STAGES[0]])
    stopped = trainer.train(config, stop_at_step=4)
    metrics = tmp_path / "old" / "metrics.csv"
    old_columns = run_log.COLUMNS[:13]
    with metrics.open(newline="") as handle:
        rows = [{c: r[c] for c in old_columns} for r in csv.DictReader(handle)]
    with metrics.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, old_columns)
        writer.writeheader()
        writer.writerows(rows)
    trainer.train(config, resume=stopped.last_checkpoint)
    with metrics.open(newline="") as handle:
        lines = list(csv.reader(handle))
    assert lines[0] == list(old_columns) and all(len(line) == len(old_columns) for line in lines)
    assert [int(r["global_step"]) for r in train_rows(run_log.read(metrics))] == [2, 4, 6, 8, 10, 12]


@pytest.mark.parametrize("stop_at_step", [9, 12])  # mid-epoch of stage 1, and the end of stage 1
def test_a_stopped_run_resumes_bit_for_bit(full_run, synthetic_data, tmp_path, stop_at_step):
    full, full_rows = full_run
    config = make_config(synthetic_data, tmp_path / "resumed")
    stopped = trainer.train(config, stop_at_step=stop_at_step)
    assert not stopped.finished and stopped.position.global_step == stop_at_step
    resumed = trainer.train(config, resume=stopped.last_checkpoint)
    assert resumed.finished and resumed.weight_digests == full.weight_digests
    assert torch.equal(*(checkpoint.load(r.last_checkpoint)[0].state_dict()["depth.linear.weight"]
                         for r in (full, resumed)))
    def losses(rows):  # windows wholly after the stop, without the timings
        return [{k: v for k, v in r.items() if k not in ("data_s", "update_s")}
                for r in train_rows(rows) if int(r["global_step"]) > stop_at_step + 2]

    assert losses(run_log.read(tmp_path / "resumed" / "metrics.csv")) == losses(full_rows)


def test_a_bf16_run_computes_in_bfloat16_keeps_fp32_weights_and_resumes_bit_for_bit(synthetic_data, tmp_path):
    one_stage = [dict(STAGES[0], epochs=1, steps_per_epoch=8)]
    conv_outputs = set()  # the training steps' (validation runs in fp32, in eval mode)
    hook = torch.nn.modules.module.register_module_forward_hook(
        lambda module, inputs, output: conv_outputs.add(output.dtype)
        if isinstance(module, torch.nn.Conv2d) and module.training else None)
    try:
        whole = trainer.train(make_config(synthetic_data, tmp_path / "whole", precision="bf16", stages=one_stage))
    finally:
        hook.remove()
    assert conv_outputs == {torch.bfloat16}
    config = make_config(synthetic_data, tmp_path / "resumed", precision="bf16", stages=one_stage)
    resumed = trainer.train(config, resume=trainer.train(config, stop_at_step=3).last_checkpoint)
    assert resumed.finished and resumed.weight_digests == whole.weight_digests
    model, _ = checkpoint.load(whole.last_checkpoint)
    assert {p.dtype for p in model.state_dict().values() if p.is_floating_point()} == {torch.float32}
    # the same steps in fp32 end elsewhere: the first losses (same weights, same batches) agree to within
    # bf16's rounding, later ones part ways (by up to 28 % at step 8 on a CPU without AMX), and both runs learn
    fp32 = trainer.train(make_config(synthetic_data, tmp_path / "fp32", stages=one_stage))
    assert fp32.weight_digests != whole.weight_digests
    losses = [[float(r["heatmap"]) for r in train_rows(run_log.read(r.output / "metrics.csv"))] for r in (whole, fp32)]
    print("heatmap losses bf16", losses[0], "fp32", losses[1])
    assert losses[0][0] == pytest.approx(losses[1][0], rel=0.1)
    assert all(run[-1] < 0.5 * run[0] for run in losses)


WARMED = [{"name": "finetune", "epochs": 2, "steps_per_epoch": 3, "lr": 1e-3, "warmup_steps": 4}]


def test_a_warmup_raises_the_learning_rate_step_by_step_across_epochs(synthetic_data, tmp_path):
    trainer.train(make_config(synthetic_data, tmp_path / "warm", stages=WARMED,
                              logging={"every_steps": 1, "tensorboard": False, "progress": False}))
    logged = [float(r["lr"]) for r in train_rows(run_log.read(tmp_path / "warm" / "metrics.csv"))]
    assert logged == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])


def test_a_run_stopped_within_its_warmup_resumes_bit_for_bit(synthetic_data, tmp_path):
    full = trainer.train(make_config(synthetic_data, tmp_path / "full", stages=WARMED))
    config = make_config(synthetic_data, tmp_path / "resumed", stages=WARMED)
    stopped = trainer.train(config, stop_at_step=2)
    resumed = trainer.train(config, resume=stopped.last_checkpoint)
    assert resumed.finished and resumed.weight_digests == full.weight_digests


def test_a_stage_checkpoint_resumes_the_next_stage(full_run, tmp_path, synthetic_data):
    full, _ = full_run
    resumed = trainer.train(make_config(synthetic_data, tmp_path / "from_stage"),
                            resume=full.output / "2_depth.pt")
    assert resumed.position.global_step == TOTAL_STEPS and resumed.weight_digests == full.weight_digests


def test_a_branch_from_a_stage_file_runs_only_the_later_stages(full_run, tmp_path, synthetic_data):
    """The SynthPose experiment's B/C split: the same stage 3 reproduces the full run; another stage 3
    (no geometric loss) starts from the same weights and ends elsewhere."""
    full, _ = full_run
    same = trainer.train(make_config(synthetic_data, tmp_path / "same"), branch_from=full.output / "2_depth.pt")
    assert same.position.global_step == TOTAL_STEPS and same.weight_digests == full.weight_digests
    other_stages = [*STAGES[:2], {**STAGES[2], "name": "no_geometric", "geometric_weight": 0.0}]
    other = trainer.train(make_config(synthetic_data, tmp_path / "other", stages=other_stages),
                          branch_from=full.output / "2_depth.pt")
    assert other.finished and other.weight_digests != full.weight_digests
    written = {p.name for p in (tmp_path / "other").glob("*.pt")}
    assert written == {"3_no_geometric.pt", "last.pt"}  # stages 1-2 came from the branch point


@pytest.mark.parametrize("change, inside_a_stage, message", [
    ({"stages": [{**STAGES[0], "lr": 5e-4}, *STAGES[1:]]}, False, r"differs in \['stages\[:2\]'\]"),
    ({"seed": 1}, False, r"differs in \['seed'\] before the branch point \(stage 3\)"),
    ({}, True, "written inside a stage"),
])
def test_a_branch_that_would_not_share_the_earlier_stages_is_refused(full_run, tmp_path, synthetic_data, change,
                                                                     inside_a_stage, message):
    full, _ = full_run
    source = full.output / "2_depth.pt"
    if inside_a_stage:
        source = trainer.train(make_config(synthetic_data, tmp_path / "stopped"), stop_at_step=3).last_checkpoint
    with pytest.raises(ConfigError, match=message):
        trainer.train(make_config(synthetic_data, tmp_path / "branch", **change), branch_from=source)


def test_a_run_with_init_starts_from_that_checkpoints_weights_with_a_fresh_schedule(full_run, tmp_path,
                                                                                   synthetic_data):
    full, _ = full_run
    source = full.output / "3_geometric.pt"
    still = [{"name": "finetune", "epochs": 1, "steps_per_epoch": 1, "lr": 1e-12}]  # a step that moves nothing
    tuned = trainer.train(make_config(synthetic_data, tmp_path / "tuned", init=str(source), stages=still))
    assert tuned.finished and tuned.position.global_step == 1  # its own schedule, not the source run's
    weights = checkpoint.load(tuned.last_checkpoint)[0].state_dict()
    start = checkpoint.load(source)[0].state_dict()
    scratch = hourglass.build(hourglass.PRESETS["tiny"], seed=0).state_dict()
    key = "depth.linear.weight"
    assert torch.allclose(weights[key], start[key], atol=1e-6) and not torch.allclose(weights[key], scratch[key])
    info = checkpoint.load(tuned.last_checkpoint)[1]
    assert info.train_config["init"] == str(source) and info.weights.endswith("starting from 3_geometric.pt")


def test_a_depth_only_stage_leaves_the_2d_module_bit_for_bit_and_retunes_the_depth(full_run, tmp_path,
                                                                                  synthetic_data):
    """`train = "depth"`: after a 2D fine-tune, the 3D is retuned without moving a heatmap."""
    full, _ = full_run
    source = full.output / "3_geometric.pt"
    depth_only = [{"name": "retune_depth", "epochs": 1, "steps_per_epoch": 4, "lr": 1e-3, "depth_weight": 0.1,
                   "geometric_weight": 0.01, "train": "depth"}]
    tuned = trainer.train(make_config(synthetic_data, tmp_path / "depth", init=str(source), stages=depth_only))
    before, after = checkpoint.load(source)[0].state_dict(), checkpoint.load(tuned.last_checkpoint)[0].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith("depth."))  # batch norm too
    moved = [k for k in before if k.startswith("depth.") and not torch.equal(before[k], after[k])]
    assert "depth.linear.weight" in moved


def test_a_depth_only_stage_is_refused_in_a_data_parallel_run(synthetic_data, tmp_path):
    stages = [{"name": "retune_depth", "epochs": 1, "depth_weight": 0.1, "train": "depth"}]
    context = trainer.distributed.Context(rank=0, world_size=2, local_rank=0, device=torch.device("cpu"))
    with pytest.raises(ConfigError, match=r"stages \['retune_depth'\] train part of the model"):
        trainer._Run(make_config(synthetic_data, tmp_path / "ddp", stages=stages), context)


def test_init_from_another_models_checkpoint_is_refused(full_run, tmp_path, synthetic_data):
    full, _ = full_run
    with pytest.raises(CheckpointMismatchError, match="init .*differs from the config's"):
        trainer.train(make_config(synthetic_data, tmp_path / "other", model="realtime",
                                  init=str(full.output / "last.pt")))


def sha256_of(state_dict):
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        digest.update(key.encode())
        digest.update(state_dict[key].contiguous().numpy().tobytes())
    return digest.hexdigest()


def test_two_data_parallel_processes_end_with_identical_weights(synthetic_data, tmp_path):
    config = make_config(synthetic_data, tmp_path / "ddp", batch_size=4, stages=STAGES[1:2])
    config_path = tmp_path / "ddp.toml"
    config_path.write_text(to_toml(config.to_dict()))
    assert tomllib.loads(config_path.read_text())["batch_size"] == 4
    launcher = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "wildpose.tools.cli", "train", "--config", str(config_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        stdout, stderr = launcher.communicate(timeout=180)
    finally:
        if launcher.poll() is None:
            # torchrun starts each worker in a session of its own: kill them by name, not by group
            workers = psutil.Process(launcher.pid).children(recursive=True)
            for process in [launcher, *workers]:
                process.kill()
            launcher.wait()
    result = subprocess.CompletedProcess(launcher.args, launcher.returncode, stdout, stderr)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["position"]["global_step"] == 6
    saved = torch.load(tmp_path / "ddp" / "last.pt", weights_only=True)["state_dict"]
    untrained = hourglass.build(hourglass.PRESETS["tiny"], seed=0).state_dict()
    assert summary["weight_digests"] == [sha256_of(saved)] * 2  # both ranks hold the saved weights
    assert sha256_of(saved) != sha256_of(untrained)
    assert result.stdout.count("finished after 6 steps") == 1  # rank 0 speaks for the run


def to_toml(values, prefix=""):
    """Just enough TOML for a TrainConfig dict (no TOML writer in the standard library)."""
    def scalar(v):
        return json.dumps(v)

    lines, tables = [], []
    for key, value in values.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            tables.extend((key, item, True) for item in value)
        else:
            lines.append(f"{key} = {scalar(value)}")
    for entry in tables:
        key, value = entry[0], entry[1]
        name = f"{prefix}{key}"
        if len(entry) == 3:
            lines.append(f"[[{name}]]")
            lines.extend(f"{k} = {scalar(v)}" for k, v in value.items())
        else:
            lines.append(to_toml(value, prefix=f"{name}."))
            if not any(isinstance(v, (dict, list)) and v and isinstance(v if isinstance(v, dict) else v[0], dict)
                       for v in value.values()):
                lines[-1] = f"[{name}]\n" + lines[-1]
    return "\n".join(lines) + "\n"
