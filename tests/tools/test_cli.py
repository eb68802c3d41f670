"""The command line: real work on real files, and one clear line for every bad input."""

import json
import os
import re
import subprocess
import sys

import pytest


def wildpose(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wildpose.tools.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "WILDPOSE_DEBUG": ""})


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("wildpose: error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0]


def test_version():
    result = wildpose("--version")
    assert result.returncode == 0 and result.stdout.startswith("wildpose 0.")


def test_demo_runs_the_pipeline_on_the_bundled_weights_with_a_subscriber():
    from wildpose.engine import default_model, loader
    from wildpose.tools import democlip
    from wildpose.training.synthpose.domains import DEFAULT_MOCAP_DIR

    # the SynthPose-rendered take where the mocap is, else the 48-frame stick figure (democlip.demo_clip)
    frames = democlip.RENDERED_FRAMES if (DEFAULT_MOCAP_DIR / "131_02.bvh").is_file() else 48
    result = wildpose("demo", "--every-frame", "--detector", "none")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    weights = loader.read_metadata(default_model.BUNDLED_ONNX, "onnxruntime").weights \
        if default_model.BUNDLED_ONNX.is_file() else "untrained weights"
    assert lines[0].startswith("# weights: ") and weights in lines[0], "the weights in full, once"
    assert [line.split()[2] for line in lines[1:-1]] == [f"seq={i}" for i in range(frames)]
    assert all(line.startswith("pose demo") and "people=1" in line for line in lines[1:-1])
    assert lines[-1].startswith(f"# received {frames} frames (seq 0..{frames - 1})") and "latency p50" in lines[-1]
    expected = "trained on SynthPose only" if default_model.BUNDLED_ONNX.is_file() else "untrained weights"
    assert all(line.endswith(f"({expected})") for line in lines[1:-1]), "every pose line names the weights in short"


def test_with_untrained_weights_every_log_line_says_so(walker_clip):
    from wildpose.engine import default_model

    untrained = default_model.untrained_onnx("realtime", 0)
    result = subprocess.run([sys.executable, "-m", "wildpose.tools.cli", "run", "--source", str(walker_clip),
                             "--every-frame", "--detector", "none", "--model", str(untrained),
                             "--publish", "ipc:///tmp/wildpose-untrained-test.sock"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert any("final stats" in line for line in lines)
    assert all("untrained weights" in line for line in lines), [line for line in lines if "untrained" not in line]


def test_export_then_bench_a_preset(tmp_path):
    onnx_path = tmp_path / "tiny.onnx"
    result = wildpose("export", "--preset", "tiny", "--init-seed", "0", "-o", str(onnx_path))
    assert result.returncode == 0, result.stderr
    assert onnx_path.is_file() and onnx_path.with_suffix(".pt").is_file()
    result = wildpose("bench", "--engine-only", "--model", str(onnx_path.with_suffix(".pt")),
                      "--backends", "onnxruntime,torch", "--batch", "2", "--seconds", "0.2", "--flip-test")
    assert result.returncode == 0, result.stderr
    assert "to ONNX for onnxruntime" not in result.stderr  # the checkpoint's export above is reused
    table = result.stdout.splitlines()
    assert table[0].split("|")[1].strip() == "backend" and "frames/s" in table[0] and "GFLOP/frame" in table[0]
    assert table[0].split("|")[5].strip() == "flip test"
    rows = [line.split("|")[1:-1] for line in table[2:]]
    assert sorted((r[0].strip(), r[2].strip(), r[4].strip()) for r in rows) == [
        ("onnxruntime", "2", "no"), ("onnxruntime", "2", "yes"), ("torch", "2", "no"), ("torch", "2", "yes")]
    assert all(float(r[6]) > 0 and float(r[7]) > 0 for r in rows)  # frames/s and peak RSS measured


@pytest.mark.parametrize("args, fragments", [
    (["demo", "--model", "/no/such/model.onnx"], ["model file not found", "/no/such/model.onnx"]),
    (["run", "--source", "x.mp4", "--precision", "int8"], ["int8 needs engine.int8_calibration"]),
    (["run", "--source", "x.mp4", "--model", "/no/such.onnx"], ["model file not found"]),
    (["run", "--source", "x.mp4", "--device-crops", "--backend", "onnxruntime"],
     ["device_crops cuts crops with the torch backend, not onnxruntime", "--backend torch"]),
    (["bench", "--engine-only", "--backends", "nope"], ["--backends: unknown ['nope']"]),
    (["bench", "--engine-only", "--batch", "x"], ["--batch", "comma-separated list"]),
    (["bench", "--engine-only", "--model", "x.onnx", "--flip-test"], ["--flip-test", "needs a checkpoint"]),
    (["bench"], ["--engine-only"]),
    (["bench", "--faults", "--kill", "infer,publisher"], ["--faults: unknown publisher", "stages are capture"]),
    (["export", "-o", "x.onnx"], ["either a checkpoint or --preset"]),
    (["frobnicate"], ["invalid choice"]),
])
def test_bad_input_gets_one_clear_line_and_a_non_zero_exit(args, fragments):
    assert_one_line_error(wildpose(*args), *fragments)


def test_corrupt_model_files_get_one_clear_line(tmp_path):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(os.urandom(4096))
    assert_one_line_error(wildpose("run", "--source", "x.mp4", "--model", str(corrupt)), str(corrupt))
    checkpoint = tmp_path / "corrupt.pt"
    checkpoint.write_bytes(b"PK\x03\x04 not really a zip")
    assert_one_line_error(wildpose("run", "--source", "x.mp4", "--model", str(checkpoint), "--backend", "torch"),
                          "cannot read checkpoint")


def test_bench_streams_accounts_for_every_frame_of_every_stream(walker_clip, tmp_path):
    report = tmp_path / "streams.json"
    result = wildpose("bench", "--streams", "1,2", "--source", str(walker_clip), "--json", str(report))
    assert result.returncode == 0, result.stderr
    assert "deepest queues: preprocess->infer" in result.stdout
    assert re.search(r"CPU of one core: .*infer \d+ %", result.stdout), result.stdout
    rows = json.loads(report.read_text())
    assert [r["streams"] for r in rows] == [1, 2]
    for row in rows:
        assert row["frames_expected"] == 48 * row["streams"]
        dropped = sum(int(part.split("=")[1]) for part in row["drops"].split(", ")) if row["drops"] != "none" else 0
        assert row["frames_published"] + dropped == row["frames_expected"], row
        assert row["holds"] == (dropped == 0 and row["latency_p95_ms"] < 100.0)


def test_the_gpu_benchmark_names_its_paths_and_says_when_there_is_no_gpu():
    import torch

    unknown = wildpose("bench", "--gpu", "--paths", "compiled,frozen")
    assert_one_line_error(unknown, "--paths: unknown ['frozen']", "compiled-frozen")
    if not torch.cuda.is_available():
        assert_one_line_error(wildpose("bench", "--gpu"), "needs a CUDA device", "--engine-only")


def test_the_inductor_benchmark_names_its_variants_and_says_when_there_is_no_gpu():
    import torch

    unknown = wildpose("bench", "--inductor", "--variants", "fixed,fastest")
    assert_one_line_error(unknown, "--variants: unknown ['fastest']", "gemm-autotune")
    assert_one_line_error(wildpose("bench", "--inductor", "--batch", "8,64"), "--batch for --inductor is one size")
    if not torch.cuda.is_available():
        assert_one_line_error(wildpose("bench", "--inductor"), "needs a CUDA device")
