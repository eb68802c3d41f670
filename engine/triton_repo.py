"""A Triton Inference Server model repository for our model, and the names both servers use.

The official server (ONNX Runtime or TensorRT backend) and `wildpose serve` (PyTriton) expose the
same two models, so one client talks to either:

- `wildpose`: uint8 RGB crops `(N, S, S, 3)` in, the decoded `joints2d_crop`, `conf`, `depth` out.
  uint8 crops are a quarter of the float32 input on the wire; the repository's ONNX file starts with
  the cast, transpose and 1/255 scale that `engine.base.crops_to_input` does on the client otherwise.
- `wildpose_metadata`: the model's metadata record (JSON) as one string, so a client checks joint
  set and input size against the server's model before the first frame (style rule 5).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import TensorProto, helper

from wildpose.engine import onnx_file
from wildpose.engine.metadata import OUTPUT_NAMES, EngineMetadata
from wildpose.errors import ConfigError

log = logging.getLogger(__name__)

MODEL_NAME = "wildpose"
METADATA_MODEL_NAME = "wildpose_metadata"
CROPS_INPUT = "crops"
METADATA_INPUT = "request"
METADATA_OUTPUT = "metadata"


@dataclass(frozen=True)
class RepoConfig:
    max_batch: int = 32  # largest batch the server forms (config.pbtxt max_batch_size)
    queue_delay_us: int = 2000  # dynamic batching: how long a request waits for others
    instances: int = 1  # model instances (instance_group count)
    gpu: bool = False  # instance_group kind: KIND_GPU (official server on a GPU) or KIND_CPU

    def __post_init__(self) -> None:
        for name in ("max_batch", "instances"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"triton {name} must be a positive integer, got {getattr(self, name)!r}")
        if not isinstance(self.queue_delay_us, int) or self.queue_delay_us < 0:
            raise ConfigError(f"triton queue delay must be >= 0 microseconds, got {self.queue_delay_us!r}")


def crops_model(model: onnx.ModelProto, input_size: int) -> onnx.ModelProto:
    """`model` (float32 `(N, 3, S, S)` input "image") behind a uint8 `(N, S, S, 3)` input "crops"."""
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    pre = helper.make_graph(
        [helper.make_node("Cast", [CROPS_INPUT], ["crops_float"], to=TensorProto.FLOAT),
         helper.make_node("Transpose", ["crops_float"], ["crops_nchw"], perm=[0, 3, 1, 2]),
         helper.make_node("Mul", ["crops_nchw", "inv255"], ["image"])],
        "wildpose_crops_to_image",
        [helper.make_tensor_value_info(CROPS_INPUT, TensorProto.UINT8, ["batch", input_size, input_size, 3])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, input_size, input_size])],
        initializer=[helper.make_tensor("inv255", TensorProto.FLOAT, [], [1.0 / 255.0])])
    pre_model = helper.make_model(pre, opset_imports=[helper.make_opsetid("", opset)],
                                  ir_version=model.ir_version)
    body = onnx.ModelProto()
    body.CopyFrom(model)
    del body.metadata_props[:]  # the record's graph hash describes the original graph only
    return onnx.compose.merge_models(pre_model, body, io_map=[("image", "image")])


def metadata_model(metadata: EngineMetadata) -> onnx.ModelProto:
    """A graph that returns the metadata JSON as a one-element string tensor, whatever it is asked."""
    graph = helper.make_graph(
        [helper.make_node("Constant", [], [METADATA_OUTPUT],
                          value=helper.make_tensor("record", TensorProto.STRING, [1],
                                                   [metadata.to_json().encode()]))],
        "wildpose_metadata",
        [helper.make_tensor_value_info(METADATA_INPUT, TensorProto.INT32, [1])],
        [helper.make_tensor_value_info(METADATA_OUTPUT, TensorProto.STRING, [1])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def write(onnx_path: str | Path, repo_dir: str | Path, config: RepoConfig = RepoConfig(),
          plan_from: object | None = None) -> Path:
    """Write the model repository for `onnx_path` (made by `wildpose export`) into `repo_dir`.

    plan_from: a callable `(crops_onnx_bytes) -> plan bytes` that builds a TensorRT engine; given,
    the `wildpose` model is a `tensorrt_plan` instead of an ONNX Runtime model.
    Returns the repository directory.
    """
    _, metadata = onnx_file.load_verified(onnx_path)
    repo = Path(repo_dir)
    size = metadata.input_size
    model = crops_model(onnx.load(str(onnx_path)), size)
    onnx.checker.check_model(model)
    try:
        version_dir = repo / MODEL_NAME / "1"
        version_dir.mkdir(parents=True, exist_ok=True)
        for stale in ("model.onnx", "model.plan"):
            (version_dir / stale).unlink(missing_ok=True)
        if plan_from is not None:
            (version_dir / "model.plan").write_bytes(plan_from(model.SerializeToString()))
            backend = 'platform: "tensorrt_plan"'
        else:
            onnx.save(model, str(version_dir / "model.onnx"))
            backend = 'backend: "onnxruntime"'
        (repo / MODEL_NAME / "config.pbtxt").write_text(model_config_text(metadata, config, backend))
        info_dir = repo / METADATA_MODEL_NAME / "1"
        info_dir.mkdir(parents=True, exist_ok=True)
        onnx.save(metadata_model(metadata), str(info_dir / "model.onnx"))
        (repo / METADATA_MODEL_NAME / "config.pbtxt").write_text(metadata_config_text())
    except OSError as exc:  # a full disk: name the repository when the writer does not
        if exc.filename is None:
            raise OSError(exc.errno, exc.strerror, str(repo)) from None
        raise
    log.info("wrote Triton model repository %s (%s, %s)", repo, backend, metadata.weights)
    return repo


def model_config_text(metadata: EngineMetadata, config: RepoConfig, backend: str) -> str:
    size, joints = metadata.input_size, len(metadata.joints)
    dims = {"joints2d_crop": [joints, 2], "conf": [joints], "depth": [joints]}
    outputs = ",\n".join(f'  {{ name: "{name}" data_type: TYPE_FP32 dims: {dims[name]} }}'
                         for name in OUTPUT_NAMES)
    kind = "KIND_GPU" if config.gpu else "KIND_CPU"
    return (f'name: "{MODEL_NAME}"\n{backend}\nmax_batch_size: {config.max_batch}\n'
            f'input [\n  {{ name: "{CROPS_INPUT}" data_type: TYPE_UINT8 dims: [{size}, {size}, 3] }}\n]\n'
            f"output [\n{outputs}\n]\n"
            f"dynamic_batching {{ max_queue_delay_microseconds: {config.queue_delay_us} }}\n"
            f"instance_group [ {{ count: {config.instances} kind: {kind} }} ]\n")


def metadata_config_text() -> str:
    return (f'name: "{METADATA_MODEL_NAME}"\nbackend: "onnxruntime"\nmax_batch_size: 0\n'
            f'input [ {{ name: "{METADATA_INPUT}" data_type: TYPE_INT32 dims: [1] }} ]\n'
            f'output [ {{ name: "{METADATA_OUTPUT}" data_type: TYPE_STRING dims: [1] }} ]\n'
            "instance_group [ { count: 1 kind: KIND_CPU } ]\n")
