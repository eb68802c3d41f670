"""Self-describing checkpoints: weights plus everything needed to rebuild and trust them.

A checkpoint is a plain dict of tensors, strings and numbers saved with `torch.save`, loadable with
`torch.load(weights_only=True)`: never a pickled module (the reference code's checkpoints died with
its PyTorch version). Loading needs no flags: the file names its model config, joint order, what the
weights were trained on, the training config, git commit and epoch. Weights that do not fit the
config fail loudly; there is no `strict=False` anywhere.
"""

from __future__ import annotations

import datetime
import shutil
import subprocess
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from wildpose import __version__
from wildpose.errors import CheckpointMismatchError, ConfigError, ModelFileError
from wildpose.training import joints
from wildpose.training.models import hourglass

FORMAT = "wildpose-checkpoint"
FORMAT_VERSION = 1
_MAX_KEYS_SHOWN = 5


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint file holds, besides the weights."""

    model_config: hourglass.ModelConfig
    weights: str  # what the weights are, e.g. "untrained weights (random init, seed 0)"
    trained: bool
    epoch: int | None = None
    train_config: dict[str, Any] | None = None
    git_commit: str = "unknown"
    wildpose_version: str = __version__
    created: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def git_commit() -> str:
    """The commit of the source tree this code runs from, or "unknown" outside a git checkout."""
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                                capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def save(path: str | Path, model: hourglass.PoseNet3D, *, weights: str, trained: bool,
         epoch: int | None = None, train_config: dict[str, Any] | None = None,
         extra: dict[str, Any] | None = None, resume: dict[str, Any] | None = None) -> Path:
    """Write `model` and its description to `path` (parent folders are created).

    `resume` is the trainer's state for continuing the run bit for bit (optimizer state, position in
    the schedule, RNG state): tensors and plain values only, so the file still loads with
    weights_only=True. The file is written to a temporary name and renamed, so an interrupted save
    never leaves a truncated checkpoint behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_config": model.config.to_dict(),
        "joints": list(joints.NAMES),
        "weights": weights,
        "trained": trained,
        "epoch": epoch,
        "train_config": train_config,
        "git_commit": git_commit(),
        "wildpose_version": __version__,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "extra": extra or {},
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    if resume is not None:
        record["resume"] = resume
    partial = path.with_name(path.name + ".partial")
    failure = None
    try:
        torch.save(record, partial)
        partial.replace(path)
    except (OSError, RuntimeError) as exc:  # a full disk: torch's zip writer raises RuntimeError
        failure = getattr(exc, "strerror", None) or "write failed"
    if failure is not None:  # out of the handler: its traceback kept torch's writer, and the file, open
        partial.unlink(missing_ok=True)
        needed = sum(t.numel() * t.element_size() for t in record["state_dict"].values())
        free = shutil.disk_usage(path.parent).free
        kept = f"the previous {path.name} is unchanged; " if path.is_file() else ""
        raise ModelFileError(f"cannot write the checkpoint {path} ({failure}; its weights alone take "
                             f"{needed / 1e6:.1f} MB, {free / 1e6:.1f} MB are free there); {kept}"
                             "free some space or write elsewhere")
    return path


def read_resume(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the raw checkpoint record, its trainer state) of a checkpoint written during training."""
    record = read(path)
    if not isinstance(record.get("resume"), dict):
        raise ModelFileError(f"{path} holds no training state to resume from (it was not written by "
                             "`wildpose train`); pass a last.pt or stage checkpoint of a training run")
    return record, record["resume"]


def read(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dict, after checking that the file is a WildPose checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"checkpoint not found: {path}; pass the path of a .pt file written by "
                             "wildpose (training or `wildpose export --init-seed`)")
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelFileError(f"cannot read checkpoint {path}: {reason}; the file is corrupt or not a "
                             "PyTorch checkpoint, re-export or re-download it") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a WildPose checkpoint (no format={FORMAT!r} record); "
                             "pass a checkpoint written by wildpose")
    if record.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{path}: checkpoint format version {record.get('format_version')!r} is "
                             f"not supported (this wildpose reads version {FORMAT_VERSION}); upgrade wildpose")
    if record.get("joints") != list(joints.NAMES):
        raise CheckpointMismatchError(f"{path}: checkpoint joint order {record.get('joints')} differs "
                                      f"from wildpose's {list(joints.NAMES)}")
    return record


def load(path: str | Path) -> tuple[hourglass.PoseNet3D, Checkpoint]:
    """Rebuild the model a checkpoint describes and load its weights exactly (no missing or extra keys).

    Returns the model in eval mode on the CPU, and the checkpoint's description.
    """
    record = read(path)
    try:
        config = hourglass.ModelConfig.from_dict(record["model_config"])
    except (ConfigError, TypeError, KeyError) as exc:
        raise CheckpointMismatchError(f"{path}: invalid model config in checkpoint: {exc}") from None
    model = hourglass.build(config)
    expected = set(model.state_dict())
    found = set(record["state_dict"])
    missing, unexpected = sorted(expected - found), sorted(found - expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[:_MAX_KEYS_SHOWN]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[:_MAX_KEYS_SHOWN]})")
        raise CheckpointMismatchError(f"{path}: weights do not match the model config {config}: "
                                      + "; ".join(parts))
    try:
        model.load_state_dict(record["state_dict"], strict=True)
    except RuntimeError as exc:
        detail = " ".join(line.strip() for line in str(exc).splitlines()[1:3])
        raise CheckpointMismatchError(f"{path}: weights do not match the model config {config}: "
                                      f"{detail}") from None
    model.eval()
    info = Checkpoint(
        model_config=config,
        weights=str(record.get("weights", "unknown weights")),
        trained=bool(record.get("trained", False)),
        epoch=record.get("epoch"),
        train_config=record.get("train_config"),
        git_commit=str(record.get("git_commit", "unknown")),
        wildpose_version=str(record.get("wildpose_version", "unknown")),
        created=str(record.get("created", "")),
        extra=dict(record.get("extra") or {}),
    )
    return model, info


def untrained_label(seed: int) -> str:
    return f"untrained weights (random init, seed {seed})"
