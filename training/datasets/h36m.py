"""Human3.6M as the reference preprocessing leaves it: one annotation h5 and 224x224 person crops.

Layout expected (pose-hg-3d / pytorch-pose-hg-3d `GetH36M.py` output; every 5th frame):

    ANNOTATIONS.h5   datasets, N rows each:
        id (N,) frame number        joint_2d (N, 16, 2) px in the crop image, our joint order
        joint_3d_mono (N, 16, 3) mm, camera frame, our joint order
        subject, action, subaction, camera (N,) ints    istrain (N,) 1 = train (S1,5,6,7,8), 0 = test
        bbox (N, 4) optional: the crop's box in the original frame (kept for reference, not used)
    IMAGES/s_{subject:02d}_act_{action:02d}_subact_{subaction:02d}_ca_{camera:02d}/
           s_{subject:02d}_act_{action:02d}_subact_{subaction:02d}_ca_{camera:02d}_{id:06d}.jpg

Each image is the whole crop (any square size; the reference's is 224), resized to the network input.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wildpose.errors import DatasetError
from wildpose.training import joints
from wildpose.training.datasets.sample import PoseDataset, Record, check_shape, column, read_arrays

FIELDS = ("id", "joint_2d", "joint_3d_mono", "subject", "action", "subaction", "camera", "istrain")
SPLITS = ("train", "test", "all")


def image_name(subject: int, action: int, subaction: int, camera: int, frame: int) -> str:
    """The reference's relative image path for one frame."""
    folder = f"s_{subject:02d}_act_{action:02d}_subact_{subaction:02d}_ca_{camera:02d}"
    return f"{folder}/{folder}_{frame:06d}.jpg"


class H36MDataset(PoseDataset):
    """Human3.6M crops with 2D and camera-frame 3D joints (every sample is a 3D sample)."""

    domain = "h36m"

    def __init__(self, annotations: str | Path, images: str | Path, split: str = "train", **kwargs) -> None:
        super().__init__(**kwargs)
        if split not in SPLITS:
            raise DatasetError(f"h36m: split must be one of {list(SPLITS)}, got {split!r}")
        self.path = Path(annotations)
        self.images = Path(images)
        arrays = read_arrays(self.path, FIELDS, optional=("bbox",))
        n = len(arrays["joint_2d"])
        for name in ("id", "subject", "action", "subaction", "camera", "istrain"):
            arrays[name] = column(self.path, name, arrays[name], n)
        check_shape(self.path, "joint_2d", arrays["joint_2d"], (n, joints.NUM_JOINTS, 2))
        check_shape(self.path, "joint_3d_mono", arrays["joint_3d_mono"], (n, joints.NUM_JOINTS, 3))
        istrain = arrays["istrain"].astype(bool)
        keep = {"train": istrain, "test": ~istrain, "all": np.ones(n, bool)}[split]
        self.ids = arrays["id"][keep].astype(np.int64)
        self.keys = np.stack([arrays[k][keep] for k in ("subject", "action", "subaction", "camera")],
                             axis=1).astype(np.int64)
        self.joints2d = arrays["joint_2d"][keep].astype(np.float64)
        self.joints3d = arrays["joint_3d_mono"][keep].astype(np.float64)
        if not np.isfinite(self.joints3d).all() or not np.isfinite(self.joints2d).all():
            raise DatasetError(f"{self.path}: joint_2d or joint_3d_mono holds NaN or infinite values")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def has_3d(self) -> np.ndarray:
        return np.ones(len(self), bool)

    def record(self, index: int) -> Record:
        subject, action, subaction, camera = (int(v) for v in self.keys[index])
        return Record(image=self.images / image_name(subject, action, subaction, camera, int(self.ids[index])),
                      joints2d=self.joints2d[index], visible=np.ones(joints.NUM_JOINTS, bool),
                      joints3d=self.joints3d[index])
