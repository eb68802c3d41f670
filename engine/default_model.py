"""The embedded default model that `wildpose run` and `make demo` use when no model is named.

Until trained demo weights are bundled (the SynthPose issue), the default is the realtime preset
initialised from a fixed seed: the same weights on every machine, built on first use and cached,
and labelled "untrained weights" in every output.
"""

from __future__ import annotations

import logging
from pathlib import Path

from wildpose.engine.cache import cache_dir
from wildpose.errors import BackendUnavailableError

log = logging.getLogger(__name__)

DEFAULT_PRESET = "realtime"
DEFAULT_SEED = 0


def checkpoint_path() -> Path:
    """The default checkpoint (`.pt`), created from the seed on first use."""
    return untrained_checkpoint(DEFAULT_PRESET, DEFAULT_SEED)


def onnx_path() -> Path:
    """The default model as ONNX, exported from `checkpoint_path()` on first use."""
    return untrained_onnx(DEFAULT_PRESET, DEFAULT_SEED)


def untrained_checkpoint(preset: str, seed: int) -> Path:
    """A checkpoint of `preset` with weights initialised from `seed`, cached after the first call."""
    path = cache_dir("untrained") / f"{preset}-seed{seed}.pt"
    if not path.is_file():
        _torch_or_fail()
        from wildpose.training import checkpoint
        from wildpose.training.models import hourglass

        config = hourglass.preset(preset)
        log.info("creating the %s preset with untrained weights from seed %d", preset, seed)
        checkpoint.save(path, hourglass.build(config, seed=seed),
                        weights=checkpoint.untrained_label(seed), trained=False)
    return path


def untrained_onnx(preset: str, seed: int) -> Path:
    """`untrained_checkpoint(preset, seed)` exported to ONNX, cached after the first call."""
    path = cache_dir("untrained") / f"{preset}-seed{seed}.onnx"
    if not path.is_file():
        source = untrained_checkpoint(preset, seed)
        from wildpose.engine.export import export_onnx

        export_onnx(source, path)
    return path


def _torch_or_fail() -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise BackendUnavailableError("building the default model needs PyTorch; install it with "
                                      "`pip install torch==2.13.0` or pass --model FILE.onnx") from None
