"""`load()`: one entry point that picks and opens a backend for a model file."""

from __future__ import annotations

import logging
from pathlib import Path

from wildpose.engine.base import Backend
from wildpose.engine.cache import cache_dir
from wildpose.engine.metadata import sha256_file
from wildpose.errors import BackendUnavailableError, ModelFileError

log = logging.getLogger(__name__)

BACKENDS = ("auto", "onnxruntime", "torch", "tensorrt")
CHECKPOINT_SUFFIXES = (".pt", ".pth")


def load(model_path: str | Path | None = None, backend: str = "auto", *, device: str = "cpu",
         threads: int | None = None, spin: bool = True) -> Backend:
    """Open `model_path` (an `.onnx` file or a `.pt` checkpoint; None: the embedded default).

    backend: "auto" (ONNX Runtime on this CPU machine), "onnxruntime", "torch" or "tensorrt".
    A checkpoint given to ONNX Runtime is exported once and cached by its sha256.
    """
    path = resolve(model_path, backend)
    if backend == "torch":
        from wildpose.engine.torch_backend import TorchBackend

        return TorchBackend(path, device=device, threads=threads)
    from wildpose.engine.onnxruntime_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(path, device=device, threads=threads, spin=spin)


def resolve(model_path: str | Path | None, backend: str = "auto") -> Path:
    """The file `backend` will open for `model_path`: the default model when None, the cached ONNX
    export of a checkpoint for ONNX Runtime. Checks the backend name and the file type."""
    if backend not in BACKENDS:
        raise BackendUnavailableError(f"unknown backend {backend!r}; choose one of {list(BACKENDS)}")
    if backend == "tensorrt":
        raise BackendUnavailableError("the tensorrt backend is not implemented yet (the GPU engines "
                                      "issue adds it); use --backend onnxruntime or torch")
    if model_path is None:
        from wildpose.engine import default_model

        return default_model.checkpoint_path() if backend == "torch" else default_model.onnx_path()
    path = Path(model_path)
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}; pass an .onnx file made by "
                             "`wildpose export` or a .pt checkpoint")
    is_checkpoint = path.suffix in CHECKPOINT_SUFFIXES
    if path.suffix != ".onnx" and not is_checkpoint:
        raise ModelFileError(f"{path}: unknown model file type {path.suffix!r}; expected .onnx or "
                             f"one of {list(CHECKPOINT_SUFFIXES)}")
    if backend == "torch":
        if not is_checkpoint:
            raise ModelFileError(f"the torch backend needs a .pt checkpoint, and {path} is an ONNX "
                                 "file; use --backend onnxruntime, or pass the checkpoint")
        return path
    return _exported(path) if is_checkpoint else path


def _exported(checkpoint_path: Path) -> Path:
    """The cached ONNX export of a checkpoint, made on first use."""
    from wildpose.engine.export import export_onnx

    digest = sha256_file(checkpoint_path)
    onnx_path = cache_dir("exported") / f"{digest[:24]}.onnx"
    if not onnx_path.is_file():
        log.info("exporting %s to ONNX for onnxruntime (cached as %s)", checkpoint_path, onnx_path)
        export_onnx(checkpoint_path, onnx_path)
    return onnx_path
