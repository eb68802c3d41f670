"""The synthpose dataset format: rendered samples in the one sample format, 3D only where the domains
allow it, the same sample for the same index in any process, and clear errors for bad configs."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from wildpose.errors import ConfigError, DatasetError
from wildpose.training.datasets import DatasetConfig, augment, build, synthpose
from wildpose.training.datasets.sampler import Concat, MixedBatchSampler
from wildpose.training.synthpose import domains
from wildpose.training.synthpose.render import DEFAULT_CROP_PADDING

RENDER = 96  # small renders keep these tests quick; the pipeline is the same at any size
INPUT = 64


@pytest.fixture(scope="module")
def mocap(shared_data):
    return str(shared_data / "cmu_mocap")


def dataset(mocap, domain, split, size=4, seed=5, **changes):
    config = DatasetConfig("synthpose", domain=domain, split=split, size=size, seed=seed, mocap=mocap,
                           render_size=RENDER, **changes)
    return build(config, INPUT, augment.AugmentConfig())


@pytest.mark.parametrize("domain, split, has_3d", [
    ("lab", "train", True),
    ("lab", "test", True),
    ("wild", "train", False),  # the 2D-only samples of the geometric loss
    ("wild", "test", True),  # held out for 3D evaluation
])
def test_only_wild_training_samples_come_without_3d(mocap, domain, split, has_3d):
    data = dataset(mocap, domain, split)
    assert data.has_3d.tolist() == [has_3d] * 4
    sample = data[(0, (0, 0, 0, 0))]
    assert sample["image"].shape == (3, INPUT, INPUT) and sample["heatmaps"].shape == (16, INPUT // 4, INPUT // 4)
    assert sample["has3d"].item() == float(has_3d)
    assert bool(sample["joints3d"].abs().sum() > 0) == has_3d and bool(sample["depth"].abs().sum() > 0) == has_3d
    truth = data.annotations()
    assert np.isfinite(truth["joints3d"]).all() == has_3d and np.isnan(truth["joints3d"]).all() != has_3d


def test_a_sample_is_the_renderer_output_cropped_at_1_25_x_its_joint_box(mocap):
    data = dataset(mocap, "wild", "test")
    rendered = domains.sample("wild", "test", 5, 2, domains.SynthConfig(mocap_dir=mocap, width=RENDER, height=RENDER))
    record = data.record(2)
    assert np.array_equal(record.joints2d, rendered.joints2d) and np.array_equal(record.joints3d, rendered.joints3d_cam)
    longer = float(np.ptp(rendered.joints2d, axis=0).max())
    assert record.box_size == pytest.approx(longer) and record.side == pytest.approx(DEFAULT_CROP_PADDING * longer)
    assert np.array_equal(data.read_image(2, record), rendered.image)
    assert data.annotations()["box_size"][2] == pytest.approx(longer)


def test_labels_come_without_rendering_and_equal_the_rendered_ones(mocap):
    config = domains.SynthConfig(mocap_dir=mocap, width=RENDER, height=RENDER)
    for domain, split in (("lab", "train"), ("wild", "train"), ("wild", "test")):
        rendered, labels = domains.sample(domain, split, 7, 3, config), domains.labels(domain, split, 7, 3, config)
        assert np.array_equal(labels.joints2d, rendered.joints2d) and np.array_equal(labels.box, rendered.box)
        assert np.array_equal(labels.visible, rendered.visible)
        assert (labels.joints3d_cam is None) == (rendered.joints3d_cam is None)


def test_samples_are_the_same_in_any_process_and_workers_never_repeat_one(mocap):
    """Two DataLoader workers serve a mixed lab/wild batch stream exactly as one process does, and
    every served sample is a different image."""
    data = Concat([dataset(mocap, "lab", "train", size=6), dataset(mocap, "wild", "train", size=6)])
    sampler = MixedBatchSampler(data.has_3d, batch_size=4, mix_3d=0.5, steps=3, seed=0)
    in_process = [batch["image"] for batch in DataLoader(data, batch_sampler=sampler, num_workers=0)]
    in_workers = [batch["image"] for batch in DataLoader(data, batch_sampler=sampler, num_workers=2)]
    assert all(torch.equal(a, b) for a, b in zip(in_process, in_workers, strict=True))
    keys = [key for batch in sampler for key in batch]
    assert len({index for index, _ in keys}) == len(keys) == 12  # 12 distinct indices of 12 samples
    images = torch.cat(in_workers).flatten(1)
    assert len({tuple(row[:: 97].tolist()) for row in images}) == len(images)
    fresh = Concat([dataset(mocap, "lab", "train", size=6), dataset(mocap, "wild", "train", size=6)])
    assert torch.equal(fresh[keys[0]]["image"], in_process[0][0])


def test_the_cache_keeps_rendered_images_and_changes_nothing(mocap):
    plain = dataset(mocap, "lab", "train", size=3, seed=9)
    cached = dataset(mocap, "lab", "train", size=3, seed=9, cache=True)
    try:
        assert cached.prerender() > 0
        assert len(synthpose._IMAGES) >= 3
        for index in range(3):
            assert torch.equal(cached[index]["image"], plain[index]["image"])
    finally:
        synthpose.clear_cache()


def test_faces_change_the_pictures_not_the_labels_and_are_cached_apart(mocap):
    plain = dataset(mocap, "wild", "test", size=2, seed=9, cache=True)
    faced = dataset(mocap, "wild", "test", size=2, seed=9, cache=True, faces=True)
    try:
        assert plain.prerender() > 0  # cached first: the faces must not come from this cache
        for index in range(2):
            first, second = plain[index], faced[index]
            assert torch.equal(first["heatmaps"], second["heatmaps"]) and torch.equal(first["joints3d"],
                                                                                      second["joints3d"])
            assert not torch.equal(first["image"], second["image"])
    finally:
        synthpose.clear_cache()


def test_a_missing_mocap_folder_is_named(tmp_path):
    with pytest.raises(DatasetError, match=f"{tmp_path / 'nowhere'} does not exist"):
        dataset(str(tmp_path / "nowhere"), "lab", "train")
    with pytest.raises(DatasetError, match=r"lacks \['02_01.bvh'"):
        dataset(str(tmp_path), "lab", "train")


@pytest.mark.parametrize("values, message", [
    ({"format": "synthpose", "split": "train", "size": 4}, "domain must be lab or wild, got None"),
    ({"format": "synthpose", "domain": "studio", "size": 4}, "domain must be lab or wild, got 'studio'"),
    ({"format": "synthpose", "domain": "lab", "split": "all", "size": 4}, "split must be train or test"),
    ({"format": "synthpose", "domain": "lab"}, "size must be an integer >= 1, got 0"),
    ({"format": "synthpose", "domain": "lab", "size": 4, "annotations": "a.h5"}, "give the CMU BVH folder as `mocap`"),
    ({"format": "synthpose", "domain": "lab", "size": 4, "render_size": 16}, "render_size must be an integer >= 32"),
    ({"format": "synthpose", "domain": "lab", "size": 4, "cache": "yes"}, "cache must be true or false"),
    ({"format": "synthpose", "domain": "lab", "size": 4, "faces": 1}, "faces must be true or false, got 1"),
    ({"format": "mpii", "annotations": "a.h5", "faces": True}, r"\['faces'\] apply to format synthpose only"),
    ({"format": "h36m", "annotations": "a.h5", "images": "i", "domain": "lab"}, r"\['domain'\] apply to format "
                                                                                 "synthpose only"),
    ({"format": "synthpose", "domain": "lab", "size": 4, "frames": 2}, r"unknown keys \['frames'\]"),
])
def test_bad_synthpose_configs_are_refused_with_the_fix(values, message):
    with pytest.raises(ConfigError, match=message):
        DatasetConfig.from_dict(values)


def test_a_synthpose_table_needs_no_annotations_and_resolves_mocap_against_the_config(tmp_path):
    config = DatasetConfig.from_dict({"format": "synthpose", "domain": "wild", "split": "test", "size": 8,
                                      "mocap": "data/cmu"}, base=tmp_path)
    assert config.annotations is None and config.mocap == str(tmp_path / "data" / "cmu")
