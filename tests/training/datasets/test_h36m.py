"""Human3.6M in the reference preprocessing's layout: splits, image naming and clear errors."""

import h5py
import numpy as np
import pytest

from wildpose.errors import DatasetError
from wildpose.training import joints
from wildpose.training.datasets import DatasetConfig, build, h36m, synthetic


def config(annotations, images, **extra):
    return DatasetConfig("h36m", str(annotations), str(images), **extra)


@pytest.mark.parametrize("split, count", [("train", 38), ("test", 10), ("all", 48)])
def test_split_follows_istrain(synthetic_data, split, count):
    dataset = build(config(synthetic_data.h36m_annotations, synthetic_data.h36m_images, split=split), 64)
    assert len(dataset) == count and dataset.has_3d.all()


def test_images_follow_the_reference_folder_naming(synthetic_data):
    assert h36m.image_name(9, 2, 1, 3, 1234) == "s_09_act_02_subact_01_ca_03/s_09_act_02_subact_01_ca_03_001234.jpg"
    dataset = build(config(synthetic_data.h36m_annotations, synthetic_data.h36m_images, split="all"), 64)
    record = dataset.record(0)
    assert record.image.relative_to(synthetic_data.h36m_images).as_posix() == h36m.image_name(1, 2, 1, 1, 1)
    assert record.image.is_file()


def test_samples_carry_the_3d_pose_root_relative_in_mm(synthetic_data):
    dataset = build(config(synthetic_data.h36m_annotations, synthetic_data.h36m_images, split="all"), 64)
    with h5py.File(synthetic_data.h36m_annotations) as h5:
        pose = h5["joint_3d_mono"][0]
    sample = dataset[0]
    assert sample["joints3d"].numpy() == pytest.approx(pose - pose[joints.ROOT], abs=1e-3)
    # the whole 128 px image is the crop: 2D scales by 64/128 (pixel centres at integers)
    assert sample["joints2d"].numpy() == pytest.approx((dataset.record(0).joints2d + 0.5) / 2 - 0.5, abs=1e-4)


def test_limit_keeps_the_first_samples(synthetic_data):
    dataset = build(config(synthetic_data.h36m_annotations, synthetic_data.h36m_images, limit=5), 64)
    assert len(dataset) == 5 and len(dataset.has_3d) == 5 and len(dataset.annotations()["joints2d"]) == 5
    with pytest.raises(IndexError):
        dataset[5]


def rewrite(source, target, edit):
    with h5py.File(source) as h5:
        fields = {k: h5[k][()] for k in h5}
    edit(fields)
    with h5py.File(target, "w") as h5:
        for key, value in fields.items():
            h5[key] = value
    return target


@pytest.mark.parametrize("edit, message", [
    (lambda f: f.pop("joint_3d_mono"), r"field 'joint_3d_mono' is missing"),
    (lambda f: f.update(joint_2d=f["joint_2d"][:, :15]), r"'joint_2d' has shape \(48, 15, 2\), expected \(48, 16, 2\)"),
    (lambda f: f.update(istrain=f["istrain"][:3]), r"'istrain' has shape \(3,\), expected \(48,\)"),
    (lambda f: f["joint_3d_mono"].__setitem__((1, 0, 0), np.nan), r"NaN or infinite"),
])
def test_malformed_annotations_name_the_file_and_field(synthetic_data, tmp_path, edit, message):
    bad = rewrite(synthetic_data.h36m_annotations, tmp_path / "bad.h5", edit)
    with pytest.raises(DatasetError, match=message) as caught:
        build(config(bad, synthetic_data.h36m_images), 64)
    assert "bad.h5" in str(caught.value)


def test_missing_files_are_named(synthetic_data, tmp_path):
    with pytest.raises(DatasetError, match=r"annotation file not found: .*nope\.h5"):
        build(config(tmp_path / "nope.h5", tmp_path), 64)
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(DatasetError, match=r"cannot read annotation file .*text\.h5"):
        build(config(tmp_path / "text.h5", tmp_path), 64)
    dataset = build(config(synthetic_data.h36m_annotations, tmp_path / "empty"), 64)
    with pytest.raises(DatasetError, match=r"image file not found: .*s_02_act_03_subact_01_ca_02_000002\.jpg"):
        dataset[0]


def test_synthetic_writer_uses_this_layout(tmp_path):
    annotations, images = synthetic.write_h36m(tmp_path, 3, image_size=96)
    with h5py.File(annotations) as h5:
        assert set(h5) == {*h36m.FIELDS, "bbox"} and h5["joint_2d"].shape == (3, 16, 2)
    assert len(list(images.rglob("*.jpg"))) == 3
