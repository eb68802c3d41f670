"""The MPI-INF-3DHP test set, one sequence (TS1..TS6) per dataset entry, for 3DPCK and AUC.

Layout expected (the official test set; `annot_data.mat` is MATLAB v7.3, i.e. HDF5, so h5py reads it;
an .h5 or .npz with the same fields works too):

    ANNOTATIONS (e.g. mpi_inf_3dhp_test_set/TS1/annot_data.mat), N frames:
        univ_annot3 (N, 17, 3) mm, camera frame, 3DHP joint order (universal skeleton scale)
        annot2 or annot_2d (N, 17, 2) px          valid_frame (N,) optional, 1 = scored frame
        activity_annotation or activity (N,) optional      bbox (N, 4) optional: x0, y0, x1, y1 px
    IMAGES/img_{frame:06d}.jpg   (TS1/imageSequence/; frame numbers start at 1)

Singleton axes ((N, 1, 17, 3) as MATLAB writes them) are squeezed. Invalid frames are dropped. The
17 joints map to ours with `joints.MPI_INF_3DHP_TO_OURS`; without a bbox the crop is a square around
the 2D joints.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wildpose.errors import DatasetError
from wildpose.training import joints
from wildpose.training.datasets.sample import PoseDataset, Record, box_from_joints, check_shape, column, read_arrays

NUM_3DHP_JOINTS = len(joints.MPI_INF_3DHP_NAMES)


def image_name(frame_index: int) -> str:
    """Image file of the frame at 0-based row `frame_index` of the annotation file."""
    return f"img_{frame_index + 1:06d}.jpg"


def _squeeze(path: Path, name: str, array: np.ndarray, last: int) -> np.ndarray:
    array = np.asarray(array, np.float64)
    if array.ndim == 4 and 1 in array.shape[1:2]:
        array = array[:, 0]
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    return check_shape(path, name, array, (None, NUM_3DHP_JOINTS, last))


class MPIInf3DHPDataset(PoseDataset):
    """One 3DHP test sequence: 2D and 3D joints of the scored (valid) frames."""

    domain = "mpi_inf_3dhp"

    def __init__(self, annotations: str | Path, images: str | Path, **kwargs) -> None:
        super().__init__(**kwargs)
        self.path = Path(annotations)
        self.images = Path(images)
        arrays = read_arrays(self.path, ("univ_annot3", "annot_2d"),
                             optional=("valid_frame", "activity", "bbox"),
                             aliases={"annot_2d": ("annot2",), "activity": ("activity_annotation",)})
        pose3d = _squeeze(self.path, "univ_annot3", arrays["univ_annot3"], 3)
        pose2d = _squeeze(self.path, "annot_2d", arrays["annot_2d"], 2)
        n = len(pose3d)
        if len(pose2d) != n:
            raise DatasetError(f"{self.path}: annot_2d has {len(pose2d)} frames but univ_annot3 has {n}")
        valid = (column(self.path, "valid_frame", arrays["valid_frame"], n).astype(bool)
                 if "valid_frame" in arrays else np.ones(n, bool))
        self.frames = np.flatnonzero(valid)
        order = list(joints.MPI_INF_3DHP_TO_OURS)
        self.joints3d = pose3d[self.frames][:, order]
        self.joints2d = pose2d[self.frames][:, order]
        self.activity = (column(self.path, "activity", arrays["activity"], n)[self.frames].astype(np.int64)
                         if "activity" in arrays else np.zeros(len(self.frames), np.int64))
        self.bbox = (check_shape(self.path, "bbox", np.asarray(arrays["bbox"], np.float64), (n, 4))[self.frames]
                     if "bbox" in arrays else None)

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def has_3d(self) -> np.ndarray:
        return np.ones(len(self), bool)

    def record(self, index: int) -> Record:
        visible = np.ones(joints.NUM_JOINTS, bool)
        if self.bbox is not None:
            x0, y0, x1, y1 = self.bbox[index]
            center, side = np.array([(x0 + x1) / 2.0, (y0 + y1) / 2.0]), float(max(x1 - x0, y1 - y0))
        else:
            center, side = box_from_joints(self.joints2d[index], visible)
        return Record(image=self.images / image_name(int(self.frames[index])), joints2d=self.joints2d[index],
                      visible=visible, joints3d=self.joints3d[index], center=center, side=side)
