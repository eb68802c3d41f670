"""PyTorch backend: runs a checkpoint directly, on the CPU or a CUDA device."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from wildpose import __version__
from wildpose.engine.base import Backend, EngineOutput
from wildpose.engine.graph import DecodedPoseNet
from wildpose.engine.metadata import EngineMetadata, sha256_file
from wildpose.errors import BackendUnavailableError, ConfigError
from wildpose.training import checkpoint

log = logging.getLogger(__name__)


class TorchBackend(Backend):
    """Eager PyTorch on a checkpoint (`.pt`); the reference the other backends are tested against."""

    name = "torch"

    def __init__(self, checkpoint_path: str | Path, *, device: str = "cpu",
                 threads: int | None = None) -> None:
        if device == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailableError("the torch backend was asked for cuda, but PyTorch sees no "
                                          "CUDA device here; use --device cpu")
        if device not in ("cpu", "cuda"):
            raise ConfigError(f"torch device must be 'cpu' or 'cuda', got {device!r}")
        if threads is not None:
            if threads < 1:
                raise ConfigError(f"threads must be a positive integer, got {threads}")
            torch.set_num_threads(threads)
        network, info = checkpoint.load(checkpoint_path)
        self.metadata = EngineMetadata(
            model_config=info.model_config, weights=info.weights, trained=info.trained,
            checkpoint_sha256=sha256_file(checkpoint_path), wildpose_version=__version__,
            git_commit=info.git_commit,
        )
        self.device = device
        self._graph = DecodedPoseNet(network).eval().to(device)
        log.info("loaded %s with torch %s on %s (%s)", checkpoint_path, torch.__version__, device,
                 self.metadata.weights)

    def _infer(self, batch: np.ndarray) -> EngineOutput:
        with torch.inference_mode():
            joints2d, conf, depth = self._graph(torch.from_numpy(batch).to(self.device))
        return EngineOutput(joints2d.cpu().numpy(), conf.cpu().numpy(), depth.cpu().numpy())

    def close(self) -> None:
        self._graph = None
