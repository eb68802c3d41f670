"""The bring-your-own folder format: JSON or npz, 3D optional per sample, malformed files named."""

import json

import numpy as np
import pytest

from wildpose.errors import DatasetError
from wildpose.training.datasets import DatasetConfig, build, folder, synthetic


@pytest.mark.parametrize("fmt", ["json", "npz"])
@pytest.mark.parametrize("with_3d", [False, True])
def test_json_and_npz_folders_load_2d_and_3d_samples(tmp_path, fmt, with_3d):
    annotations = synthetic.write_folder(tmp_path, 3, with_3d=with_3d, fmt=fmt)
    dataset = build(DatasetConfig("folder", str(annotations)), 64)
    assert len(dataset) == 3 and dataset.has_3d.tolist() == [with_3d] * 3
    sample = dataset[1]
    assert sample["has3d"] == float(with_3d) and sample["heatmaps"].amax() == 1.0
    assert (sample["depth"] != 0).any() == with_3d


def test_3d_and_2d_only_samples_mix_in_one_folder(tmp_path):
    points = np.arange(32, dtype=float).reshape(16, 2) + 20
    annotations = folder.write(tmp_path / "a.json", [
        {"image": "a.jpg", "joints_2d": points, "joints_3d": np.c_[points, np.ones(16)]},
        {"image": "b.jpg", "joints_2d": points}])
    assert build(DatasetConfig("folder", str(annotations)), 64).has_3d.tolist() == [True, False]


def test_without_a_box_the_crop_surrounds_the_visible_joints_with_a_margin(tmp_path):
    points = np.zeros((16, 2))
    points[:, 0] = np.linspace(100, 180, 16)
    points[:, 1] = np.linspace(50, 250, 16)
    annotations = folder.write(tmp_path / "a.json", [{"image": "a.jpg", "joints_2d": points}])
    record = build(DatasetConfig("folder", str(annotations)), 64).record(0)
    assert record.center == pytest.approx([140, 150]) and record.side == pytest.approx(250)


@pytest.mark.parametrize("document, message", [
    ("{not json", "cannot read annotation file"),
    ({"samples": []}, "format"),
    ({"format": folder.FORMAT, "samples": []}, "is empty"),
    ({"format": folder.FORMAT, "samples": [{"joints_2d": [[0, 0]] * 16}]},
     "sample 0 must be an object with an \"image\""),
    ({"format": folder.FORMAT, "samples": [{"image": "a.jpg"}]}, "sample 0 has no 'joints_2d'"),
    ({"format": folder.FORMAT, "samples": [{"image": "a.jpg", "joints_2d": [[0, 0]] * 15}]},
     r"sample 0 field 'joints_2d' has shape \(15, 2\), expected \(16, 2\)"),
    ({"format": folder.FORMAT, "samples": [{"image": "a.jpg", "joints_2d": [["x", 0]] * 16}]}, "not numeric"),
])
def test_malformed_json_names_the_file_and_the_problem(tmp_path, document, message):
    path = tmp_path / "annotations.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    with pytest.raises(DatasetError, match=message) as caught:
        build(DatasetConfig("folder", str(path)), 64)
    assert "annotations.json" in str(caught.value)
