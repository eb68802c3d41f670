"""Weight-space blends of a fine-tune with the weights it started from.

A long fine-tune on one kind of data (SynthPose's renders) sharpens what it trains on and loses some
of what carried elsewhere; averaging its weights with its start's, parameter by parameter, keeps much
of both (WiSE-FT, Wortsman et al. 2022). The two halves of the network blend separately: the 2D
module (stem and hourglass stacks) and the depth regressor that reads its features. The bundled demo
weights are such a blend (README, SynthPose): the long run's 2D module with a depth regressor half
its own, half its start's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from wildpose.errors import CheckpointMismatchError, ConfigError
from wildpose.training import checkpoint
from wildpose.training.models import hourglass


@dataclass(frozen=True)
class Shares:
    """How much of the fine-tune each part takes: 0 is the start, 1 the fine-tune."""

    module_2d: float
    depth: float

    def __post_init__(self) -> None:
        for name, value in (("2D share", self.module_2d), ("depth share", self.depth)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"the {name} is the fine-tune's part of the blend: expected a number in "
                                  f"[0, 1], got {value!r}")

    def of(self, key: str) -> float:
        return self.depth if key.startswith(hourglass.DEPTH_PREFIX) else self.module_2d


def _blend_state(start: dict[str, torch.Tensor], tuned: dict[str, torch.Tensor],
                 shares: Shares) -> dict[str, torch.Tensor]:
    """`share * tuned + (1 - share) * start` for every floating tensor (the same model's keys), computed
    in float64 so that shares of 0 and 1 give either side bit for bit; counters (batch norm's
    `num_batches_tracked`) come from the side with the larger share."""
    blended = {}
    for key, value in tuned.items():
        share, other = shares.of(key), start[key]
        if value.is_floating_point():
            blended[key] = (share * value.double() + (1.0 - share) * other.double()).to(value.dtype)
        else:
            blended[key] = (value if share >= 0.5 else other).clone()
    return blended


def blend(start_path: str | Path, tuned_path: str | Path, shares: Shares, output: str | Path,
          label: str | None = None) -> tuple[hourglass.PoseNet3D, checkpoint.Checkpoint]:
    """Write the blend of `tuned_path` (a fine-tune) with `start_path` to `output`: a checkpoint like any
    other, described by `label` or else by a line naming both sources and the shares (its `extra`
    records the sources and shares either way)."""
    start_model, start_info = checkpoint.load(start_path)
    tuned_model, tuned_info = checkpoint.load(tuned_path)
    if start_info.model_config != tuned_info.model_config:
        raise CheckpointMismatchError(f"{tuned_path} and {start_path} are different models "
                                      f"({tuned_info.model_config} against {start_info.model_config}); "
                                      "blend a fine-tune with the checkpoint it started from")
    tuned_model.load_state_dict(_blend_state(start_model.state_dict(), tuned_model.state_dict(), shares),
                                strict=True)
    start_name, tuned_name = Path(start_path).name, Path(tuned_path).name
    label = label or (f"a blend of {tuned_name} with {start_name}: the 2D module {shares.module_2d:g} of "
                      f"{tuned_name}, the depth regressor {shares.depth:g} of {tuned_name} (the rest from "
                      f"{start_name}); {tuned_name}: {tuned_info.weights}; {start_name}: {start_info.weights}")
    extra = {"blend": {"start": start_name, "tuned": tuned_name, "share_2d": shares.module_2d,
                       "share_depth": shares.depth, "start_weights": start_info.weights,
                       "tuned_weights": tuned_info.weights}}
    checkpoint.save(output, tuned_model, weights=label, trained=start_info.trained or tuned_info.trained,
                    epoch=tuned_info.epoch, train_config=tuned_info.train_config, extra=extra)
    return checkpoint.load(output)
