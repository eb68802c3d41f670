"""MPII in Newell's h5 layout, on the real 2958-person validation file (no images ship with it)."""

import h5py
import pytest

from wildpose.errors import DatasetError
from wildpose.training.datasets import DatasetConfig, build, mpii, synthetic


@pytest.fixture(scope="module")
def valid_h5(shared_data):
    return shared_data / "mpii" / "valid.h5"


def test_annotations_load_without_images(valid_h5):
    dataset = build(DatasetConfig("mpii", str(valid_h5)), 256)
    truth = dataset.annotations()
    assert len(dataset) == 2958 and not dataset.has_3d.any()
    assert truth["joints2d"].shape == (2958, 16, 2) and (truth["head_size"] > 0).all()
    with h5py.File(valid_h5) as h5:
        unannotated = (h5["part"][()] == 0).all(axis=-1)
    assert (truth["visible"] == ~unannotated).all() and unannotated.sum() == 3088


def test_a_sample_without_its_image_names_the_missing_file(valid_h5, tmp_path):
    with pytest.raises(DatasetError, match=r"needs image 005808361\.jpg but no `images` folder"):
        build(DatasetConfig("mpii", str(valid_h5)), 256)[0]
    with pytest.raises(DatasetError, match=r"image file not found: .*005808361\.jpg"):
        build(DatasetConfig("mpii", str(valid_h5), images=str(tmp_path)), 256)[0]


def test_the_crop_box_is_newells(valid_h5):
    dataset = build(DatasetConfig("mpii", str(valid_h5)), 256)
    record = dataset.record(0)
    with h5py.File(valid_h5) as h5:
        center, scale = h5["center"][0], h5["scale"][0]
    assert record.side == pytest.approx(200 * scale * 1.25)
    assert record.center == pytest.approx(center + [0, 15 * scale])
    assert record.head_size == pytest.approx(117.96219733)


def test_real_images_crop_around_the_person(valid_h5, shared_data):
    """Three of the validation people's images ship with mmpose's test data."""
    dataset = build(DatasetConfig("mpii", str(valid_h5), images=str(shared_data / "annotated" / "mpii")), 256)
    sample = dataset[0]  # 005808361.jpg
    assert sample["image"].shape == (3, 256, 256) and sample["image"].std() > 0.05
    inside = sample["joints2d"][sample["visible"] > 0]
    assert ((inside > 0) & (inside < 255)).all()


def test_synthetic_mpii_with_images_trains_like_the_real_layout(tmp_path):
    annotations, images = synthetic.write_mpii(tmp_path, 4)
    dataset = build(DatasetConfig("mpii", str(annotations), images=str(images)), 64)
    sample = dataset[(2, (0, 0, 0, 0))]
    assert sample["has3d"] == 0 and sample["heatmaps"].amax() == 1.0 and sample["head_size"] > 0


def test_a_non_positive_scale_is_refused_with_its_row(tmp_path):
    annotations, _ = synthetic.write_mpii(tmp_path, 3)
    with h5py.File(annotations, "a") as h5:
        h5["scale"][1] = 0.0
    with pytest.raises(DatasetError, match=r"scale must be positive and finite; row 1"):
        mpii.MPIIDataset(annotations, input_size=64)
