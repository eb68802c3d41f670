"""The backend interface checks its input and refuses what it cannot run, with the fix in the message."""

import subprocess
import sys

import numpy as np
import pytest

from wildpose.engine import BACKENDS, load
from wildpose.errors import BackendUnavailableError, InputError, ModelFileError


@pytest.fixture(scope="module")
def tiny_engine(preset_models):
    _, onnx_path = preset_models("tiny")
    return load(onnx_path)


@pytest.mark.parametrize("batch, message", [
    (np.zeros((1, 3, 64, 64), np.float64), "must be float32"),
    (np.zeros((1, 3, 64, 64), np.uint8), "must be float32"),
    (np.zeros((3, 64, 64), np.float32), r"must have shape \(N, 3, 64, 64\)"),
    (np.zeros((1, 64, 64, 3), np.float32), "got \\(1, 64, 64, 3\\)"),
    (np.zeros((0, 3, 64, 64), np.float32), "must have shape"),
    ([[0.0]], "must be a numpy array"),
])
def test_wrong_input_is_refused_before_the_runtime_sees_it(tiny_engine, batch, message):
    with pytest.raises(InputError, match=message):
        tiny_engine.infer(batch)


def test_the_interface_reports_shapes_name_and_device(tiny_engine):
    assert tiny_engine.name == "onnxruntime" and tiny_engine.device == "cpu"
    assert tiny_engine.input_shape == (None, 3, 64, 64)
    assert tiny_engine.output_shapes == {"joints2d_crop": (None, 16, 2), "conf": (None, 16), "depth": (None, 16)}


def test_a_checkpoint_given_to_onnxruntime_is_exported_and_runs(preset_models):
    checkpoint_path, _ = preset_models("tiny")
    engine = load(checkpoint_path, "onnxruntime")
    assert engine.name == "onnxruntime"
    assert engine.infer(np.zeros((1, 3, 64, 64), np.float32)).depth.shape == (1, 16)


def test_an_unknown_backend_is_refused(preset_models):
    _, onnx_path = preset_models("tiny")
    with pytest.raises(BackendUnavailableError, match="unknown backend"):
        load(onnx_path, "tensorflow")


def test_the_torch_backend_needs_a_checkpoint(preset_models):
    _, onnx_path = preset_models("tiny")
    with pytest.raises(ModelFileError, match="needs a .pt checkpoint"):
        load(onnx_path, "torch")


def test_every_advertised_backend_is_handled():
    assert BACKENDS == ("auto", "onnxruntime", "torch", "tensorrt", "triton")


@pytest.mark.parametrize("name, content, message", [
    ("missing.onnx", None, "model file not found"),
    ("corrupt.onnx", b"\x08\x07garbage" * 50, "corrupt"),
    ("model.h5", b"", "unknown model file type"),
])
def test_missing_corrupt_and_unknown_model_files_are_refused(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelFileError, match=message):
        load(path)


def test_the_onnxruntime_backend_runs_without_importing_torch(preset_models):
    _, onnx_path = preset_models("tiny")
    code = ("import sys, numpy as np; from wildpose.engine import load; "
            f"load({str(onnx_path)!r}).infer(np.zeros((1, 3, 64, 64), np.float32)); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
