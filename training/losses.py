"""The paper's three losses: heatmaps on every stack, depth on 3D samples, bone geometry on 2D ones.

Zhou et al. 2017, eq. 2-4, as the reference code computes them (pytorch-pose-hg-3d
`FusionCriterion.py`): each sample of a mixed batch contributes its own term (depth if it has 3D
ground truth, geometry if it has only 2D) and both are divided by the whole batch size. The stacks'
heatmap losses are summed: the reference had a loop that overwrote the loss instead (only the last
stack was supervised).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from wildpose.errors import InputError
from wildpose.training import joints

# paper-facts.md, "Losses".
DEPTH_WEIGHT = 0.1
GEOMETRIC_WEIGHT = 0.01
_LENGTH_EPS = 1e-12  # keeps sqrt differentiable for bones of zero length


def _check(name: str, tensor: torch.Tensor, shape: tuple[int | None, ...]) -> None:
    if tensor.dim() != len(shape) or any(s is not None and s != t for s, t in zip(shape, tensor.shape, strict=True)):
        expected = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise InputError(f"{name}: expected shape {expected}, got {tuple(tensor.shape)}")


def heatmap_loss(predicted: Sequence[torch.Tensor], target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """L_2D: the sum over stacks of the mean squared error against `target`.

    `predicted`: one `(B, J, H, W)` tensor per stack; `target` `(B, J, H, W)`; `weight` `(B, J)`
    (0 for joints that are not annotated: their maps do not count). Each stack's term is the mean
    over all B*J*H*W elements, as `nn.MSELoss` in the reference.
    """
    if not len(predicted):
        raise InputError("heatmap_loss: expected at least one stack's heatmaps, got none")
    _check("heatmap target", target, (None, joints.NUM_JOINTS, None, None))
    _check("heatmap weight", weight, tuple(target.shape[:2]))
    mask = weight[:, :, None, None]
    total = target.new_zeros(())
    for stack in predicted:
        _check("predicted heatmaps", stack, tuple(target.shape))
        total = total + ((stack - target) ** 2 * mask).mean()  # += : every stack counts
    return total


def depth_loss(predicted: torch.Tensor, target: torch.Tensor, has_3d: torch.Tensor) -> torch.Tensor:
    """L_dep (unweighted): per 3D sample the mean squared depth error over the J joints, summed over
    the 3D samples and divided by the batch size B. `predicted`, `target` `(B, J)`; `has_3d` `(B,)`."""
    _check("predicted depth", predicted, (None, joints.NUM_JOINTS))
    _check("depth target", target, tuple(predicted.shape))
    _check("has_3d", has_3d, (predicted.shape[0],))
    per_sample = ((predicted - target) ** 2).mean(dim=1)
    return (per_sample * has_3d).sum() / predicted.shape[0]


def geometric_terms(depth: torch.Tensor, joints2d: torch.Tensor, visible: torch.Tensor,
                    input_size: int) -> torch.Tensor:
    """`(B,)` the geometric term of each sample (before weighting and batch averaging).

    x, y come from the ground-truth 2D joints `(B, J, 2)` in crop px, normalised like depth (over half
    the crop side) and detached; z is the predicted `depth` `(B, J)`. For each group of
    `joints.BONE_GROUPS`, over the bones whose two joints are `visible` `(B, J)`: the sum of
    (l_e * w_e - mean)^2 divided by that bone count; the groups' terms are summed.
    """
    _check("predicted depth", depth, (None, joints.NUM_JOINTS))
    _check("joints2d", joints2d, (depth.shape[0], joints.NUM_JOINTS, 2))
    _check("visible", visible, tuple(depth.shape))
    xy = joints2d.detach().to(depth.dtype) / (input_size / 2.0)
    visible = visible.to(depth.dtype)
    total = depth.new_zeros(depth.shape[0])
    for group in joints.BONE_GROUPS.values():
        first = torch.tensor([a for (a, _), _ in group], device=depth.device)
        second = torch.tensor([b for (_, b), _ in group], device=depth.device)
        weights = torch.tensor([w for _, w in group], dtype=depth.dtype, device=depth.device)
        squared = ((xy[:, first] - xy[:, second]) ** 2).sum(dim=2) + (depth[:, first] - depth[:, second]) ** 2
        lengths = torch.sqrt(squared + _LENGTH_EPS) * weights  # (B, E)
        usable = visible[:, first] * visible[:, second]
        count = usable.sum(dim=1).clamp(min=1.0)
        mean = (lengths * usable).sum(dim=1) / count
        total = total + ((lengths - mean[:, None]) ** 2 * usable).sum(dim=1) / count
    return total


def geometric_loss(depth: torch.Tensor, joints2d: torch.Tensor, visible: torch.Tensor,
                   is_2d_only: torch.Tensor, input_size: int) -> torch.Tensor:
    """L_geo (unweighted): the geometric terms of the 2D-only samples (`is_2d_only` `(B,)`), summed and
    divided by the batch size B. The gradient reaches only the predicted depth."""
    _check("is_2d_only", is_2d_only, (depth.shape[0],))
    return (geometric_terms(depth, joints2d, visible, input_size) * is_2d_only).sum() / depth.shape[0]


def total_loss(heatmaps: Sequence[torch.Tensor], depth: torch.Tensor, batch: dict[str, torch.Tensor],
               depth_weight: float, geometric_weight: float, input_size: int) -> dict[str, torch.Tensor]:
    """All three losses of a mixed batch (the `sample.py` format) and their weighted sum "loss".

    A weight of 0 still keeps its term in the graph (times 0) so every parameter gets a gradient:
    DistributedDataParallel requires that, and the weights it leaves alone get a zero update.
    """
    has_3d = batch["has3d"].to(depth.dtype)
    terms = {
        "heatmap": heatmap_loss(heatmaps, batch["heatmaps"], batch["visible"]),
        "depth": depth_loss(depth, batch["depth"], has_3d),
        "geometric": geometric_loss(depth, batch["joints2d"], batch["visible"], 1.0 - has_3d, input_size),
    }
    terms["loss"] = terms["heatmap"] + depth_weight * terms["depth"] + geometric_weight * terms["geometric"]
    return terms
