"""Evaluation: run a model over a dataset, or take saved predictions, and score them by protocol.

Predictions are decoded the way inference decodes them (last stack's heatmaps, optionally averaged
with the mirrored crop's, argmax plus the reference's quarter-pixel step, `training.heatmaps`; depth
assembled by `training.pose3d`), so the numbers describe what users get. Which metrics apply follows
from the ground truth: 3D samples get the Human3.6M protocols (or 3DPCK/AUC for MPI-INF-3DHP),
samples with head sizes get PCKh, samples with box sizes (SynthPose) PCK@0.1 of the box.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from wildpose.errors import DatasetError
from wildpose.training import heatmaps, joints, metrics, pose3d
from wildpose.training.datasets.loader import data_loader
from wildpose.training.models.config import HEATMAP_STRIDE

log = logging.getLogger(__name__)


@torch.no_grad()
def predict(model: torch.nn.Module, dataset, batch_size: int = 32, device: torch.device | str = "cpu",
            workers: int = 0, progress: bool = False, flip_test: bool = False) -> dict[str, np.ndarray]:
    """Run `model` (eval mode) over `dataset` without augmentation; with `flip_test` each crop also
    runs mirrored and the heatmaps and depths are averaged (`heatmaps.average_mirrored`).

    Returns joints2d `(N, J, 2)` image px, joints2d_crop `(N, J, 2)` crop px, depth `(N, J)` (the
    network's normalised depth), confidence `(N, J)` and pose3d `(N, J, 3)` crop px, root-relative
    (weak perspective: no metric scale yet).
    """
    from tqdm import tqdm

    was_training = model.training
    model.eval()
    loader = data_loader(dataset, workers, batch_size=batch_size, shuffle=False)
    outputs: dict[str, list[np.ndarray]] = {"joints2d": [], "joints2d_crop": [], "depth": [], "confidence": []}
    input_size = model.config.input_size
    for batch in tqdm(loader, desc="eval", disable=None if progress else True, leave=False):
        image = batch["image"].to(device)
        maps, depth = model(heatmaps.with_mirrored(image) if flip_test else image)
        heatmap, depth = maps[-1].float(), depth.float()
        if flip_test:
            heatmap, depth = heatmaps.average_mirrored(heatmap, depth)
        coords, confidence = heatmaps.decode(heatmap)
        crop = heatmaps.heatmap_to_crop(coords, HEATMAP_STRIDE).cpu().double().numpy()
        transform = batch["transform"].double().numpy()  # (B, 2, 3) image -> crop
        linear, offset = transform[:, :, :2], transform[:, :, 2]
        image = np.einsum("bij,bkj->bki", np.linalg.inv(linear), crop - offset[:, None, :])
        outputs["joints2d"].append(image)
        outputs["joints2d_crop"].append(crop)
        outputs["depth"].append(depth.cpu().double().numpy())
        outputs["confidence"].append(confidence.cpu().numpy())
    model.train(was_training)
    result = {k: np.concatenate(v) if v else np.zeros((0, joints.NUM_JOINTS)) for k, v in outputs.items()}
    result["pose3d"] = pose3d.weak_perspective(result["joints2d_crop"], result["depth"], input_size)
    return result


def score(ground_truth: dict[str, np.ndarray], joints2d: np.ndarray | None,
          pose: np.ndarray | None, protocol_3d: str = "h36m", per_joint: bool = False) -> dict[str, float]:
    """Every metric that the ground truth supports, as {name: value}; with `per_joint`, the 2D PCK of
    each joint too (`pck@0.1/r_wrist`, ...) and the share of left/right swaps (`lr_swaps@0.1`): where
    and how a model misses.

    `ground_truth` is `PoseDataset.annotations()`. `joints2d` `(N, J, 2)` image px; `pose` `(N, J, 3)`
    root-relative 3D in any scale (a metric scale comes from the skeleton-sum prior, as at inference).
    `protocol_3d` is "h36m" (MPJPE protocols) or "mpi_inf_3dhp" (3DPCK, AUC).
    """
    results: dict[str, float] = {"samples": float(len(ground_truth["joints2d"]))}
    visible = ground_truth["visible"].astype(bool)
    if joints2d is not None:
        joints2d = np.asarray(joints2d, np.float64)
        if joints2d.shape != ground_truth["joints2d"].shape:
            raise DatasetError(f"predictions hold {joints2d.shape} 2D joints but the dataset has "
                               f"{ground_truth['joints2d'].shape}; predict on the same dataset and split")
        error = np.linalg.norm(joints2d - ground_truth["joints2d"], axis=-1)
        results["error_2d_px"] = float(error[visible].mean()) if visible.any() else float("nan")
        head = ground_truth["head_size"]
        if len(head) and (head[visible.any(axis=1)] > 0).all():
            pck = metrics.pckh(joints2d, ground_truth["joints2d"], visible, head)
            results["pckh@0.5"] = pck.total
        box = ground_truth.get("box_size", np.zeros(0))
        if len(box) and (box[visible.any(axis=1)] > 0).all():
            results["pck@0.1"] = metrics.pck_bbox(joints2d, ground_truth["joints2d"], visible, box)
            if per_joint:
                results["lr_swaps@0.1"] = metrics.swaps_bbox(joints2d, ground_truth["joints2d"], visible, box)
                for j, name in enumerate(joints.NAMES):
                    only = np.zeros_like(visible)
                    only[:, j] = visible[:, j]
                    if only.any():
                        results[f"pck@0.1/{name}"] = metrics.pck_bbox(joints2d, ground_truth["joints2d"], only, box)
    has_3d = np.isfinite(ground_truth["joints3d"]).all(axis=(1, 2))
    if pose is not None and has_3d.any():
        pose = np.asarray(pose, np.float64)
        if pose.shape != ground_truth["joints3d"].shape:
            raise DatasetError(f"predictions hold {pose.shape} 3D poses but the dataset has "
                               f"{ground_truth['joints3d'].shape}; predict on the same dataset and split")
        target = ground_truth["joints3d"][has_3d]
        metric = pose3d.metric_scale(pose[has_3d] - pose[has_3d][:, joints.ROOT:joints.ROOT + 1])
        if protocol_3d == "mpi_inf_3dhp":
            results["3dpck@150mm"] = metrics.pck3d(metric, target)
            results["auc_0_150mm"] = metrics.auc3d(metric, target)
        else:
            results["mpjpe_reference_mm"] = metrics.reference_mpjpe(pose[has_3d], target)
            results["mpjpe_protocol1_mm"] = metrics.protocol1_mpjpe(metric, target)
            results["pa_mpjpe_mm"] = metrics.pa_mpjpe(metric, target)
        results["bone_symmetry_mm"] = metrics.bone_symmetry_error(metric)
        results["bone_symmetry_gt_mm"] = metrics.bone_symmetry_error(target)
        if joints2d is not None:
            results.update(_root_depth(ground_truth, joints2d, pose, has_3d))
    return results


def _root_depth(ground_truth: dict[str, np.ndarray], joints2d: np.ndarray, pose: np.ndarray,
                has_3d: np.ndarray) -> dict[str, float]:
    """Where the camera is known: the root placed in camera space from the predicted 2D joints and
    metric skeleton (camera_space.solve_root, as the pipeline does), its depth error in per cent of
    the true distance (median and 90th percentile)."""
    from wildpose.training import camera_space

    matrices, roots = ground_truth.get("intrinsics"), ground_truth.get("root_cam")
    if matrices is None or roots is None:
        return {}
    known = has_3d & np.isfinite(matrices).all(axis=(1, 2)) & np.isfinite(roots).all(axis=1)
    if not known.any():
        return {}
    metric = pose3d.metric_scale(pose[known] - pose[known][:, joints.ROOT:joints.ROOT + 1])
    errors = []
    for k, m, points, truth in zip(metric, matrices[known], joints2d[known], roots[known], strict=True):
        size = (max(int(round(2 * m[0, 2] + 1)), 1), max(int(round(2 * m[1, 2] + 1)), 1))
        intrinsics = camera_space.Intrinsics(m[0, 0], m[1, 1], m[0, 2], m[1, 2], *size)
        root = camera_space.solve_root(points, k, intrinsics)
        errors.append(100.0 if root is None else 100.0 * abs(root[2] - truth[2]) / truth[2])
    return {"root_depth_error_pct": float(np.median(errors)),
            "root_depth_error_p90_pct": float(np.percentile(errors, 90))}


def evaluate(model: torch.nn.Module, dataset, batch_size: int = 32, device: torch.device | str = "cpu",
             workers: int = 0, progress: bool = False) -> dict[str, float]:
    """Predict with `model` on `dataset` and score the predictions."""
    predictions = predict(model, dataset, batch_size, device, workers, progress)
    return score(dataset.annotations(), predictions["joints2d"], predictions["pose3d"],
                 protocol_3d="mpi_inf_3dhp" if dataset.domain == "mpi_inf_3dhp" else "h36m")


def load_predictions(path: str | Path) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(joints2d, pose3d) from an .npz of predictions: `joints2d` `(N, 16, 2)` image px and/or `pose3d`
    `(N, 16, 3)` root-relative, any scale (e.g. what `wildpose eval --save-predictions` writes)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"predictions file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            joints2d = data["joints2d"] if "joints2d" in data.files else None
            pose = data["pose3d"] if "pose3d" in data.files else None
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read predictions {path}: {exc}; expected an .npz") from None
    if joints2d is None and pose is None:
        raise DatasetError(f"{path} holds neither `joints2d` nor `pose3d`; save predictions as an .npz "
                           "with one or both arrays")
    return joints2d, pose
