"""The metadata record every exported model carries, checked before the first frame.

An ONNX file on its own says nothing about joint order, input range or what its weights were
trained on; a wrong file would run and publish nonsense. So export writes this record into the ONNX
file's `metadata_props` (key "wildpose"), with a sha256 of the graph it describes, and every backend
refuses a file whose record is missing, of another joint set, or whose graph no longer matches.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wildpose.errors import ModelFileError
from wildpose.training import joints
from wildpose.training.models.config import ModelConfig

METADATA_KEY = "wildpose"
FORMAT_VERSION = 1
INPUT_NAME = "image"
OUTPUT_NAMES = ("joints2d_crop", "conf", "depth")


@dataclass(frozen=True)
class EngineMetadata:
    """What a model file is: its network, input, outputs and weights."""

    model_config: ModelConfig
    weights: str  # e.g. "untrained weights (random init, seed 0)"
    trained: bool
    checkpoint_sha256: str  # of the checkpoint the model was built from
    joints: tuple[str, ...] = joints.NAMES
    input_name: str = INPUT_NAME
    input_dtype: str = "float32"
    input_range: str = "RGB in [0, 1], no mean subtraction"
    output_names: tuple[str, ...] = OUTPUT_NAMES
    depth_unit: str = "root-relative z / (input_size / 2), weak perspective"
    flip_test: bool = False  # each crop also runs mirrored, heatmaps averaged: twice the compute
    opset: int | None = None
    graph_sha256: str = ""  # of the ONNX graph without this record; empty for non-ONNX backends
    wildpose_version: str = ""
    git_commit: str = "unknown"
    format_version: int = FORMAT_VERSION

    @property
    def input_size(self) -> int:
        return self.model_config.input_size

    def to_json(self) -> str:
        values = dataclasses.asdict(self)
        values["model_config"] = self.model_config.to_dict()
        return json.dumps(values, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, source: str) -> EngineMetadata:
        try:
            values: dict[str, Any] = json.loads(text)
            if values.get("format_version") != FORMAT_VERSION:
                raise ModelFileError(f"{source}: model metadata version {values.get('format_version')!r} "
                                     f"is not supported (expected {FORMAT_VERSION}); re-export the model")
            values["model_config"] = ModelConfig.from_dict(values["model_config"])
            values["joints"] = tuple(values["joints"])
            values["output_names"] = tuple(values["output_names"])
            return cls(**values)
        except ModelFileError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelFileError(f"{source}: unreadable wildpose metadata ({exc}); re-export the model "
                                 "with `wildpose export`") from None

    def check_compatible(self, source: str) -> None:
        """Refuse a model whose joint set or outputs are not the ones this wildpose decodes."""
        if self.joints != joints.NAMES:
            raise ModelFileError(f"{source}: the model predicts joints {list(self.joints)}, but this "
                                 f"wildpose uses {list(joints.NAMES)}; re-export it with this version")
        if self.output_names != OUTPUT_NAMES or self.input_name != INPUT_NAME:
            raise ModelFileError(f"{source}: the model's input/outputs ({self.input_name} -> "
                                 f"{list(self.output_names)}) are not {INPUT_NAME} -> "
                                 f"{list(OUTPUT_NAMES)}; re-export it with `wildpose export`")


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
