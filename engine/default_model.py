"""The embedded default model that `wildpose run` and `make demo` use when no model is named.

The default is the bundled demo weights in `weights/`: the realtime preset trained on SynthPose
alone (synthetic renders of CMU motion capture; see the README for what that means for real video).
A checkout without them falls back to the realtime preset initialised from a fixed seed: the same
weights on every machine, built on first use and cached, and labelled "untrained weights" in every
output. Untrained models of any preset (tests, benchmarks) come from here too.
"""

from __future__ import annotations

import logging
from pathlib import Path

from wildpose.engine.cache import cache_dir
from wildpose.errors import BackendUnavailableError

log = logging.getLogger(__name__)

DEFAULT_PRESET = "realtime"
DEFAULT_SEED = 0
BUNDLED = Path(__file__).resolve().parent.parent / "weights"
BUNDLED_CHECKPOINT = BUNDLED / "realtime-synthpose.pt"
BUNDLED_ONNX = BUNDLED / "realtime-synthpose.onnx"


def checkpoint_path() -> Path:
    """The default checkpoint (`.pt`): the bundled weights, else untrained ones from the seed."""
    if BUNDLED_CHECKPOINT.is_file():
        return BUNDLED_CHECKPOINT
    return untrained_checkpoint(DEFAULT_PRESET, DEFAULT_SEED)


def onnx_path() -> Path:
    """The default model as ONNX: the bundled file, else the untrained checkpoint exported."""
    if BUNDLED_ONNX.is_file():
        return BUNDLED_ONNX
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
