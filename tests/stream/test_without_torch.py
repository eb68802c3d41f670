"""The pipeline on ONNX Runtime needs no PyTorch: `pip install wildpose` without the `[torch]` extra runs
it, and a checkpoint it cannot export is one line saying what to install. Each test runs `wildpose` in a
virtual environment that has every package of this one but PyTorch."""

import importlib.util
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from support import assert_one_error_line

PROJECT = Path(__file__).resolve().parents[2]
TORCH_DISTRIBUTIONS = ("torch", "functorch", "torchgen")


@pytest.fixture(scope="module")
def python_without_torch(tmp_path_factory) -> Path:
    if importlib.util.find_spec("torch") is None:
        return Path(sys.executable)
    venv = tmp_path_factory.mktemp("no-torch") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    theirs = Path(subprocess.check_output([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                          text=True).strip())
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if entry.name.split("-")[0] not in TORCH_DISTRIBUTIONS:
            (theirs / entry.name).symlink_to(entry)
    probe = "import importlib.util, wildpose.tools.cli; print(importlib.util.find_spec('torch'))"
    assert subprocess.check_output([python, "-c", probe], text=True, cwd="/").strip() == "None"
    return python


def wildpose_without_torch(python: Path, cache: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-m", "wildpose.tools.cli", *args], capture_output=True, text=True, timeout=300,
                          cwd="/", env={**os.environ, "WILDPOSE_DEBUG": "", "WILDPOSE_CACHE": str(cache)})


def test_the_pipeline_on_the_bundled_model_runs_without_pytorch(python_without_torch, walker_clip, tmp_path):
    result = wildpose_without_torch(python_without_torch, tmp_path, "run", "--source", str(walker_clip),
                                    "--every-frame", "--detector", "none",
                                    "--publish", f"ipc://{tmp_path}/no-torch.sock")
    assert result.returncode == 0, result.stderr
    assert "captured 48, published 48, dropped 0" in result.stderr
    assert "onnxruntime" in result.stderr


def test_a_checkpoint_without_pytorch_is_one_line_saying_what_to_install(python_without_torch, tmp_path):
    result = wildpose_without_torch(python_without_torch, tmp_path, "run", "--source", "cam=0",
                                    "--model", str(PROJECT / "weights" / "realtime-synthpose.pt"))
    assert_one_error_line(result, "needs PyTorch", "pip install torch==2.13.0", "or pass an .onnx file")
