"""The shared sample pipeline: image and joints move together, flips swap sides and negate camera x,
and augmentation draws are unique and identical whatever the number of DataLoader workers."""

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from wildpose.errors import DatasetError
from wildpose.training import joints
from wildpose.training.datasets import DatasetConfig, augment, build, folder
from wildpose.training.datasets.sampler import Concat, MixedBatchSampler

PERM = joints.flip_permutation()


@pytest.fixture()
def dot_dataset(tmp_path):
    """A black 200x200 image with one white dot at r_ankle (61, 141); the other joints elsewhere."""
    image = np.zeros((200, 200, 3), np.uint8)
    cv2.circle(image, (61, 141), 4, (255, 255, 255), -1)
    cv2.imwrite(str(tmp_path / "dot.png"), image)
    points = np.random.default_rng(0).uniform(40, 160, (16, 2))
    points[0] = [61, 141]
    annotations = folder.write(tmp_path / "annotations.json", [{
        "image": "dot.png", "joints_2d": points, "joints_3d": np.c_[points * 5, np.arange(16) * 10.0],
        "box": [100, 100, 160]}])
    return build(DatasetConfig("folder", str(annotations)), input_size=64)


def centroid(image: torch.Tensor) -> np.ndarray:
    weights = image.sum(dim=0).numpy()
    ys, xs = np.mgrid[: weights.shape[0], : weights.shape[1]]
    return np.array([(xs * weights).sum(), (ys * weights).sum()]) / weights.sum()


@pytest.mark.parametrize("draw", [
    augment.IDENTITY,
    augment.Augmentation(scale=1.4),
    augment.Augmentation(scale=0.8, rotation=35.0),
    augment.Augmentation(rotation=-60.0, flip=True),
    augment.Augmentation(scale=1.2, flip=True),
])
def test_the_image_and_its_joints_move_together(dot_dataset, draw):
    sample = dot_dataset.make_sample(0, dot_dataset.record(0), draw)
    ankle = PERM[0] if draw.flip else 0  # after a flip the dot is labelled as the left ankle
    assert centroid(sample["image"]) == pytest.approx(sample["joints2d"][ankle].numpy(), abs=0.3)


def test_flip_swaps_left_and_right_and_mirrors_x_only(dot_dataset):
    plain = dot_dataset.make_sample(0, dot_dataset.record(0), augment.IDENTITY)
    flipped = dot_dataset.make_sample(0, dot_dataset.record(0), augment.Augmentation(flip=True))
    assert torch.allclose(flipped["image"], plain["image"].flip(2), atol=1 / 255)
    assert torch.allclose(flipped["joints2d"][PERM, 0], 63 - plain["joints2d"][:, 0], atol=1e-4)
    assert torch.allclose(flipped["joints2d"][PERM, 1], plain["joints2d"][:, 1], atol=1e-4)
    # camera x negated, y and z kept (the reference negated y)
    assert torch.allclose(flipped["joints3d"][PERM], plain["joints3d"] * torch.tensor([-1.0, 1.0, 1.0]))
    assert torch.allclose(flipped["depth"][PERM], plain["depth"], atol=1e-6)
    assert torch.equal(flipped["heatmaps"][PERM], plain["heatmaps"].flip(2))


def test_rotation_turns_the_3d_pose_about_the_optical_axis_and_keeps_depth(dot_dataset):
    plain = dot_dataset.make_sample(0, dot_dataset.record(0), augment.IDENTITY)
    turned = dot_dataset.make_sample(0, dot_dataset.record(0), augment.Augmentation(rotation=30.0))
    rotation = torch.from_numpy(augment.rotation_matrix(30.0)).float()
    assert torch.allclose(turned["joints3d"][:, :2], plain["joints3d"][:, :2] @ rotation.T, atol=1e-3)
    assert torch.allclose(turned["depth"], plain["depth"], atol=1e-5)


def test_colour_gains_scale_each_channel_and_clip(dot_dataset):
    plain = dot_dataset.make_sample(0, dot_dataset.record(0), augment.IDENTITY)
    tinted = dot_dataset.make_sample(0, dot_dataset.record(0), augment.Augmentation(gains=(0.6, 1.0, 1.4)))
    expected = (plain["image"] * torch.tensor([0.6, 1.0, 1.4])[:, None, None]).clamp(0, 1)
    assert torch.allclose(tinted["image"], expected, atol=1e-6)


def test_every_sample_has_the_one_format(synthetic_data):
    dataset = build(DatasetConfig("h36m", str(synthetic_data.h36m_annotations), str(synthetic_data.h36m_images)), 64)
    sample = dataset[0]
    shapes = {k: tuple(v.shape) for k, v in sample.items() if isinstance(v, torch.Tensor)}
    assert shapes == {"image": (3, 64, 64), "heatmaps": (16, 16, 16), "visible": (16,), "joints2d": (16, 2),
                      "joints2d_image": (16, 2), "joints3d": (16, 3), "depth": (16,), "has3d": (), "box": (3,),
                      "transform": (2, 3), "head_size": (), "augmentation": (6,), "index": ()}
    assert sample["image"].dtype == torch.float32 and 0 <= sample["image"].min() <= sample["image"].max() <= 1
    assert sample["domain"] == "h36m" and sample["has3d"] == 1.0


def epoch_draws(data, workers):
    sampler = MixedBatchSampler(data.has_3d, batch_size=6, mix_3d=0.5, steps=8, seed=5)
    sampler.set_epoch(stage=0, epoch=1)
    loader = DataLoader(data, batch_sampler=sampler, num_workers=workers)
    batches = [(b["index"], b["augmentation"]) for b in loader]
    return torch.cat([i for i, _ in batches]), torch.cat([a for _, a in batches])


def test_dataloader_workers_draw_unique_augmentations_identical_to_a_single_process(synthetic_data):
    augmentation = augment.AugmentConfig()
    data = Concat([
        build(DatasetConfig("h36m", str(synthetic_data.h36m_annotations), str(synthetic_data.h36m_images)), 64,
              augmentation),
        build(DatasetConfig("folder", str(synthetic_data.folder_annotations)), 64, augmentation)])
    single_index, single_draws = epoch_draws(data, workers=0)
    multi_index, multi_draws = epoch_draws(data, workers=2)
    assert torch.equal(single_index, multi_index) and torch.equal(single_draws, multi_draws)
    assert len(torch.unique(multi_draws, dim=0)) == len(multi_draws) == 48  # no two draws alike


def test_a_missing_image_names_the_file(tmp_path):
    annotations = folder.write(tmp_path / "annotations.json", [
        {"image": "nowhere/gone.jpg", "joints_2d": np.full((16, 2), 50.0) + np.arange(16)[:, None]}])
    dataset = build(DatasetConfig("folder", str(annotations)), 64)
    with pytest.raises(DatasetError, match=r"image file not found: .*nowhere/gone\.jpg"):
        dataset[0]


def test_a_corrupt_image_names_the_file(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg at all")
    annotations = folder.write(tmp_path / "annotations.json", [
        {"image": "bad.jpg", "joints_2d": np.full((16, 2), 50.0) + np.arange(16)[:, None]}])
    with pytest.raises(DatasetError, match=r"cannot decode image file .*bad\.jpg"):
        build(DatasetConfig("folder", str(annotations)), 64)[0]


def test_joints_that_are_not_annotated_get_an_empty_map_and_zero_weight(tmp_path):
    cv2.imwrite(str(tmp_path / "grey.png"), np.full((100, 100, 3), 90, np.uint8))
    visible = np.ones(16)
    visible[[3, 9]] = 0
    annotations = folder.write(tmp_path / "annotations.json", [
        {"image": "grey.png", "joints_2d": np.full((16, 2), 30.0) + np.arange(16)[:, None] * 2, "visible": visible}])
    sample = build(DatasetConfig("folder", str(annotations)), 64)[0]
    assert sample["visible"].tolist() == visible.tolist()
    assert sample["heatmaps"][[3, 9]].abs().sum() == 0 and sample["heatmaps"][0].max() == 1.0
