"""The MPI-INF-3DHP test set layout: MATLAB v7.3 shapes, joint mapping, valid frames, image naming."""

import h5py
import numpy as np
import pytest

from wildpose.errors import DatasetError
from wildpose.training import joints
from wildpose.training.datasets import DatasetConfig, build, mpi_inf_3dhp, synthetic


@pytest.fixture()
def sequence(tmp_path):
    return synthetic.write_3dhp(tmp_path / "TS1", 6)


def test_joints_are_mapped_into_our_order(sequence):
    annotations, images = sequence
    dataset = build(DatasetConfig("mpi_inf_3dhp", str(annotations), str(images)), 64)
    with h5py.File(annotations) as h5:
        theirs = h5["univ_annot3"][2, 0]
    pelvis = theirs[joints.MPI_INF_3DHP_NAMES.index("root")]
    expected = theirs[list(joints.MPI_INF_3DHP_TO_OURS)] - pelvis
    assert dataset.annotations()["joints3d"][2] == pytest.approx(expected)
    assert dataset.has_3d.all() and dataset.domain == "mpi_inf_3dhp"


def test_invalid_frames_are_dropped_and_images_keep_their_frame_numbers(sequence):
    annotations, images = sequence
    with h5py.File(annotations, "a") as h5:
        h5["valid_frame"][0] = 0
        h5["valid_frame"][3] = 0
    dataset = build(DatasetConfig("mpi_inf_3dhp", str(annotations), str(images)), 64)
    assert len(dataset) == 4
    assert [dataset.record(i).image.name for i in range(4)] == [
        mpi_inf_3dhp.image_name(f) for f in (1, 2, 4, 5)] == ["img_000002.jpg", "img_000003.jpg",
                                                             "img_000005.jpg", "img_000006.jpg"]
    assert dataset[0]["has3d"] == 1.0


def test_flat_layouts_and_field_aliases_are_read(tmp_path, sequence):
    annotations, images = sequence
    with h5py.File(annotations) as h5:
        arrays = {"univ_annot3": h5["univ_annot3"][:, 0], "annot_2d": h5["annot2"][:, 0],
                  "activity": h5["activity_annotation"][:, 0]}
    flat = tmp_path / "flat.npz"
    np.savez(flat, **arrays)
    dataset = build(DatasetConfig("mpi_inf_3dhp", str(flat), str(images)), 64)
    assert len(dataset) == 6 and dataset.activity.tolist() == [1, 2, 3, 4, 5, 6]


def test_missing_2d_field_lists_the_accepted_names(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, univ_annot3=np.zeros((2, 17, 3)))
    with pytest.raises(DatasetError, match=r"field 'annot_2d' or 'annot2' is missing"):
        build(DatasetConfig("mpi_inf_3dhp", str(bad), str(tmp_path)), 64)
