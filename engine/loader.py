"""`load()`: one entry point that picks and opens a backend for a model file."""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from pathlib import Path

from wildpose.engine.base import Backend
from wildpose.engine.cache import cache_dir
from wildpose.engine.metadata import EngineMetadata, sha256_file
from wildpose.errors import BackendUnavailableError, ModelFileError

log = logging.getLogger(__name__)

BACKENDS = ("auto", "onnxruntime", "torch", "tensorrt", "triton")
TRITON_SCHEME = "triton://"  # a "model" of this form is a list of Triton servers (engine/triton_backend.py)
DEVICES = ("auto", "cpu", "cuda")
CHECKPOINT_SUFFIXES = (".pt", ".pth")


def load(model_path: str | Path | None = None, backend: str = "auto", *, device: str = "auto",
         threads: int | None = None, spin: bool = True, precision: str | None = None,
         compile: bool | None = None, freeze: bool = False, branch_streams: int | None = None,
         calibration: list | None = None, flip_test: bool = False,
         timeout_s: float = 5.0) -> Backend:
    """Open `model_path` (an `.onnx` file or a `.pt` checkpoint; None: the embedded default; or
    `triton://HOST:PORT[,HOST2:PORT]`: Triton servers, each request timing out after `timeout_s`).

    backend: "auto", "onnxruntime", "torch", "tensorrt" or "triton". "auto" takes the fastest that can
    run here (TensorRT, then torch on CUDA, then ONNX Runtime on the CPU) and logs its choice.
    device: "auto" (a GPU when there is one), "cpu" or "cuda".
    precision: fp32/fp16/bf16 (torch), fp32/fp16/int8 (tensorrt; int8 needs `calibration` batches);
    None: each backend's default. compile: torch on CUDA only (None: on); freeze: with it, inductor
    freezing; branch_streams: batches up to this size run the hourglass branches on parallel CUDA
    streams (None: 2 when compiled; both: see `TorchBackend`).
    flip_test: each crop also runs mirrored, the heatmaps averaged (twice the compute). An ONNX file
    carries it in its graph (`wildpose export --flip-test`); an ONNX file exported with it runs it
    whatever this says.
    A checkpoint given to ONNX Runtime or TensorRT is exported to ONNX once and cached by its sha256.
    """
    backend, device = choose(backend, device, model_path)
    path = resolve(model_path, backend, flip_test=flip_test)
    if backend == "triton":
        from wildpose.engine.triton_backend import TritonBackend

        return TritonBackend(str(path), timeout_s=timeout_s)
    if backend == "torch":
        from wildpose.engine.torch_backend import TorchBackend

        return TorchBackend(path, device=device, threads=threads, precision=precision, compile=compile,
                            freeze=freeze, branch_streams=branch_streams, flip_test=flip_test)
    if backend == "tensorrt":
        from wildpose.engine.tensorrt_backend import TensorRTBackend

        return TensorRTBackend(path, precision=precision or "fp16", calibration=calibration)
    from wildpose.engine.onnxruntime_backend import OnnxRuntimeBackend

    if precision not in (None, "fp32"):
        raise BackendUnavailableError(f"onnxruntime runs the ONNX file in fp32; --precision {precision} "
                                      "needs --backend torch or tensorrt on a GPU")
    return OnnxRuntimeBackend(path, device=device, threads=threads, spin=spin)


def read_metadata(model_path: str | Path, backend: str, flip_test: bool = False) -> EngineMetadata:
    """The model's metadata, checked the way `backend` will open it, without starting a GPU runtime
    (the pipeline's supervisor calls this; the inference process loads the engine itself)."""
    if backend in ("torch", "onnxruntime", "triton"):
        with load(model_path, backend, device="cpu", threads=1, flip_test=flip_test) as engine:
            return engine.metadata
    from wildpose.engine import onnx_file

    return onnx_file.load_verified(model_path)[1]


def gpu_present() -> bool:
    """Whether the NVIDIA driver reports a GPU; cheap, and imports nothing (no torch on CPU machines)."""
    gpus = Path("/proc/driver/nvidia/gpus")
    return gpus.is_dir() and any(gpus.iterdir())


def choose(backend: str, device: str, model_path: str | Path | None = None) -> tuple[str, str]:
    """Resolve "auto" backend and device to what runs here; logs the choice when it was "auto"."""
    if device not in DEVICES:
        raise BackendUnavailableError(f"unknown device {device!r}; choose one of {list(DEVICES)}")
    if backend not in BACKENDS:
        raise BackendUnavailableError(f"unknown backend {backend!r}; choose one of {list(BACKENDS)}")
    is_remote = str(model_path or "").startswith(TRITON_SCHEME)
    if is_remote or backend == "triton":
        if not (is_remote and backend in ("auto", "triton")):
            raise BackendUnavailableError(f"the triton backend takes {TRITON_SCHEME}HOST:PORT as its model "
                                          f"(--engine {TRITON_SCHEME}HOST:PORT), got backend {backend!r} "
                                          f"and model {model_path!r}")
        return "triton", "cpu"  # the host side of a remote engine
    if backend != "auto":
        if device == "auto":
            device = "cuda" if backend == "tensorrt" or (backend == "torch" and _torch_cuda()) else "cpu"
        return backend, device
    if device != "cpu" and gpu_present():
        if importlib.util.find_spec("tensorrt") is not None:
            log.info("backend auto: TensorRT on the GPU")
            return "tensorrt", "cuda"
        is_onnx = model_path is not None and str(model_path).endswith(".onnx")
        if _torch_cuda() and not is_onnx:
            log.info("backend auto: torch on CUDA (TensorRT is not installed)")
            return "torch", "cuda"
        log.info("backend auto: onnxruntime on the CPU (%s)", "an .onnx file needs TensorRT or onnxruntime"
                 if is_onnx else "PyTorch sees no CUDA device")
        return "onnxruntime", "cpu"
    if device == "cuda":
        raise BackendUnavailableError("--device cuda was asked for, but no NVIDIA GPU is present here; "
                                      "use --device cpu")
    return "onnxruntime", "cpu"


def _torch_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def resolve(model_path: str | Path | None, backend: str = "auto", flip_test: bool = False) -> Path | str:
    """The file `backend` will open for `model_path`: the default model when None, the cached ONNX
    export of a checkpoint (with the flip test in its graph when `flip_test`) for ONNX Runtime and
    TensorRT; a Triton URL as it is. Checks the backend name and the file type."""
    if backend not in BACKENDS:
        raise BackendUnavailableError(f"unknown backend {backend!r}; choose one of {list(BACKENDS)}")
    if backend == "triton":
        from wildpose.engine.triton_backend import parse_url

        if flip_test:
            raise ModelFileError("a Triton server runs the model it was given: for the flip test, export it "
                                 "with `wildpose export --flip-test` and serve that file")
        parse_url(str(model_path))
        return str(model_path)
    if model_path is None:
        from wildpose.engine import default_model

        if backend == "torch":
            return default_model.checkpoint_path()
        return _exported(default_model.checkpoint_path(), flip_test=True) if flip_test else default_model.onnx_path()
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
    if is_checkpoint:
        return _exported(path, flip_test)
    if flip_test:
        from wildpose.engine import onnx_file

        if not onnx_file.load_verified(path)[1].flip_test:
            raise ModelFileError(f"{path} was exported without the flip test; export it with `wildpose export "
                                 "--flip-test`, or pass its .pt checkpoint")
    return path


def _exported_path(checkpoint_path: Path, flip_test: bool = False) -> Path:
    return cache_dir("exported") / f"{sha256_file(checkpoint_path)[:24]}{'-flip' if flip_test else ''}.onnx"


def _exported(checkpoint_path: Path, flip_test: bool = False) -> Path:
    """The cached ONNX export of a checkpoint, made on first use."""
    onnx_path = _exported_path(checkpoint_path, flip_test)
    if not onnx_path.is_file():
        if importlib.util.find_spec("torch") is None:
            raise BackendUnavailableError(f"exporting {checkpoint_path} to ONNX needs PyTorch, which is not "
                                          "installed here: `pip install torch==2.13.0`, or pass an .onnx file")
        from wildpose.engine.export import export_onnx

        log.info("exporting %s to ONNX for onnxruntime%s (cached as %s)", checkpoint_path,
                 " with the flip test" if flip_test else "", onnx_path)
        export_onnx(checkpoint_path, onnx_path, flip_test=flip_test)
    return onnx_path


def remember_export(checkpoint_path: str | Path, onnx_path: str | Path, flip_test: bool = False) -> None:
    """Keep an export made by `wildpose export` (default opset) as the checkpoint's cached export, so
    running or benchmarking the checkpoint with ONNX Runtime later does not export it again."""
    cached = _exported_path(Path(checkpoint_path), flip_test)
    if cached.is_file():
        return
    partial = cached.with_suffix(".partial")
    try:
        os.link(onnx_path, partial)  # same file system: no copy
    except OSError:
        shutil.copyfile(onnx_path, partial)
    os.replace(partial, cached)
