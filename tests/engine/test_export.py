"""ONNX export: a checked graph with decoding inside, a dynamic batch and a verified metadata record."""

import json

import numpy as np
import onnx
import pytest

from wildpose.engine import default_model, load, onnx_file
from wildpose.engine.metadata import METADATA_KEY, sha256_file
from wildpose.errors import ModelFileError


def test_exported_graph_passes_the_checker_with_small_decoded_outputs(preset_models):
    _, onnx_path = preset_models("tiny")
    model = onnx.load(onnx_path)
    onnx.checker.check_model(model, full_check=True)
    assert max(op.version for op in model.opset_import if op.domain in ("", "ai.onnx")) >= 17
    (image,) = model.graph.input
    dims = image.type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, 64, 64]
    assert [o.name for o in model.graph.output] == ["joints2d_crop", "conf", "depth"]


def test_metadata_record_describes_the_model(preset_models):
    _, onnx_path = preset_models("tiny")
    _, metadata = onnx_file.load_verified(onnx_path)
    assert metadata.model_config.input_size == 64
    assert metadata.weights == "untrained weights (random init, seed 0)" and not metadata.trained
    assert len(metadata.checkpoint_sha256) == 64 and len(metadata.graph_sha256) == 64
    assert metadata.joints[6] == "pelvis"


def test_the_bundled_onnx_file_is_the_export_of_the_bundled_checkpoint():
    _, metadata = onnx_file.load_verified(default_model.BUNDLED_ONNX)
    assert metadata.checkpoint_sha256 == sha256_file(default_model.BUNDLED_CHECKPOINT)
    assert metadata.trained and metadata.weights.startswith("trained on SynthPose only")


def test_any_batch_size_runs(preset_models):
    _, onnx_path = preset_models("tiny")
    engine = load(onnx_path)
    for batch in (1, 3, 7):
        out = engine.infer(np.random.default_rng(batch).random((batch, 3, 64, 64), dtype=np.float32))
        assert out.joints2d_crop.shape == (batch, 16, 2) and out.conf.shape == out.depth.shape == (batch, 16)


def test_a_tampered_graph_is_refused(preset_models, tmp_path):
    _, onnx_path = preset_models("tiny")
    model = onnx.load(onnx_path)
    weight = next(t for t in model.graph.initializer if t.raw_data)
    weight.raw_data = bytes([weight.raw_data[0] ^ 0xFF]) + weight.raw_data[1:]
    tampered = tmp_path / "tampered.onnx"
    onnx.save(model, tampered)
    with pytest.raises(ModelFileError, match="does not match its metadata"):
        load(tampered)


def test_onnx_without_wildpose_metadata_is_refused(preset_models, tmp_path):
    _, onnx_path = preset_models("tiny")
    model = onnx.load(onnx_path)
    del model.metadata_props[:]
    foreign = tmp_path / "foreign.onnx"
    onnx.save(model, foreign)
    with pytest.raises(ModelFileError, match="no wildpose metadata"):
        load(foreign)


def test_a_model_of_another_joint_set_is_refused(preset_models, tmp_path):
    _, onnx_path = preset_models("tiny")
    model = onnx.load(onnx_path)
    record = next(p for p in model.metadata_props if p.key == METADATA_KEY)
    values = json.loads(record.value)
    values["joints"] = values["joints"][::-1]
    record.value = json.dumps(values)
    other = tmp_path / "other.onnx"
    onnx.save(model, other)
    with pytest.raises(ModelFileError, match="predicts joints"):
        load(other)
