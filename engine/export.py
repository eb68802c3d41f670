"""Export a checkpoint to a self-describing ONNX file with decoding inside the graph.

The exported graph takes `image` `(N, 3, S, S)` with a dynamic batch and returns `joints2d_crop`,
`conf` and `depth` (see `engine.base.EngineOutput`); with `flip_test` it also runs each crop mirrored
inside the graph (`engine.graph`), so every backend that runs the file does. It is checked with
`onnx.checker` (full check, with shape inference) before it is written, and written atomically so a
crash never leaves a half-written model where a pipeline would load it.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path

import onnx
import torch

from wildpose import __version__
from wildpose.engine import onnx_file
from wildpose.engine.graph import DecodedPoseNet
from wildpose.engine.metadata import INPUT_NAME, OUTPUT_NAMES, EngineMetadata, sha256_file
from wildpose.errors import ConfigError
from wildpose.training import checkpoint

log = logging.getLogger(__name__)

DEFAULT_OPSET = 18
MIN_OPSET = 17
MAX_EXPORT_BATCH = 4096


def export_onnx(checkpoint_path: str | Path, onnx_path: str | Path,
                opset: int = DEFAULT_OPSET, flip_test: bool = False) -> EngineMetadata:
    """Write `onnx_path` from the checkpoint at `checkpoint_path`; return its metadata record."""
    if opset < MIN_OPSET:
        raise ConfigError(f"ONNX opset must be at least {MIN_OPSET}, got {opset}")
    network, info = checkpoint.load(checkpoint_path)
    graph = DecodedPoseNet(network, flip_test=flip_test).eval()
    size = info.model_config.input_size
    example = torch.rand(2, 3, size, size)  # batch 2: a batch of 1 would be specialised as a constant
    log.info("exporting %s (%s) to ONNX opset %d%s", checkpoint_path, info.weights, opset,
             ", flip test in the graph" if flip_test else "")
    # The exporter's chatter (deprecations, "torchvision is not installed") is not the user's
    # business; torch configures its loggers on import, so quieten them here, not at set-up.
    exporter_log = logging.getLogger("torch.onnx")
    previous_level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                graph, (example,), input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                opset_version=opset, dynamo=True, optimize=True, verbose=False,
                dynamic_shapes={"image": {0: torch.export.Dim("batch", min=1, max=MAX_EXPORT_BATCH)}},
            )
    finally:
        exporter_log.setLevel(previous_level)
    model = program.model_proto
    onnx.checker.check_model(model, full_check=True)
    metadata = EngineMetadata(
        model_config=info.model_config, weights=info.weights, trained=info.trained,
        checkpoint_sha256=sha256_file(checkpoint_path), opset=opset,
        graph_sha256=onnx_file.graph_sha256(model), wildpose_version=__version__,
        git_commit=info.git_commit, flip_test=flip_test,
    )
    onnx_file.attach_metadata(model, metadata)
    _write_atomically(Path(onnx_path), model.SerializeToString())
    log.info("wrote %s (%.1f MB, %s)", onnx_path, os.path.getsize(onnx_path) / 1e6, info.weights)
    return metadata


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes it private; a model file is not
        os.replace(temporary, path)
    except OSError as exc:  # a full disk: name the file the user asked for, not the temporary one
        Path(temporary).unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
