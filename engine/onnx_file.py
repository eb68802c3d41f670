"""Reading and writing the metadata record inside ONNX files, with the graph hash that guards it.

Kept free of torch so the ONNX Runtime backend (the CPU default) runs without PyTorch installed.
"""

from __future__ import annotations

from pathlib import Path

import onnx

from wildpose.engine.metadata import METADATA_KEY, EngineMetadata, sha256_bytes
from wildpose.errors import ModelFileError


def graph_sha256(model: onnx.ModelProto) -> str:
    return sha256_bytes(model.graph.SerializeToString())


def attach_metadata(model: onnx.ModelProto, metadata: EngineMetadata) -> None:
    """Store `metadata` (whose graph_sha256 must describe `model`'s graph) in the model in place."""
    entries = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(entries)
    model.metadata_props.add(key=METADATA_KEY, value=metadata.to_json())


def load_verified(path: str | Path) -> tuple[bytes, EngineMetadata]:
    """Read an ONNX file written by `wildpose export`; check its record and graph hash.

    Returns the file's bytes (so a runtime need not read it again) and its metadata.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}; pass an .onnx file made by "
                             "`wildpose export` or a .pt checkpoint")
    data = path.read_bytes()
    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:  # protobuf raises several unrelated types on corrupt input
        raise ModelFileError(f"cannot parse {path} as ONNX ({type(exc).__name__}); the file is corrupt "
                             "or not an ONNX model, re-export it with `wildpose export`") from None
    records = [p.value for p in model.metadata_props if p.key == METADATA_KEY]
    if not records:
        raise ModelFileError(f"{path} has no wildpose metadata record (key {METADATA_KEY!r}); it was "
                             "not made by `wildpose export` or the file is corrupt, re-export it")
    metadata = EngineMetadata.from_json(records[0], str(path))
    metadata.check_compatible(str(path))
    actual = graph_sha256(model)
    if actual != metadata.graph_sha256:
        raise ModelFileError(f"{path}: graph sha256 {actual[:12]}... does not match its metadata "
                             f"({metadata.graph_sha256[:12]}...); the file was altered or damaged, "
                             "re-export it")
    return data, metadata
