"""MPII Human Pose in Newell's annotation h5 layout (the 2D-only data of the paper's training).

Layout expected (pose-hg-train `annot/{train,valid}.h5`; `../shared/data/mpii/valid.h5` is the
2958-person validation split in it):

    ANNOTATIONS.h5   datasets, N rows each:
        imgname (N,) bytes, the image's file name      part (N, 16, 2) px, our joint order; (0, 0) = not annotated
        center (N, 2) px        scale (N,) person height / 200 px
        normalize (N,) PCKh head size in px (optional: without it PCKh is not available)
        visible (N, 16) occlusion flags; person, index, torsoangle (N,) (optional, not used)
    IMAGES/{imgname}   the original MPII images (mpii_human_pose_v1 `images/`)

The crop box is Newell's: side 200 * scale px around `center`, moved down by 15 * scale px and
enlarged by 1.25 to keep feet and head in frame. Newell applies that adjustment for training and
testing alike, and so do we: a model must see people at the scale it was trained on. A joint counts
as visible when annotated (occluded joints are annotated and trained on, as in Newell's code).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wildpose.errors import DatasetError
from wildpose.training import joints
from wildpose.training.datasets.sample import PoseDataset, Record, check_shape, column, read_arrays

# Newell (pose-hg-train, src/util/dataset/mpii.lua): "small adjustments so cropped image is less
# likely to cut off feet".
BOX_PIXELS_PER_SCALE = 200.0
CENTER_SHIFT_PER_SCALE = 15.0
SCALE_MARGIN = 1.25


class MPIIDataset(PoseDataset):
    """MPII people: 2D joints only. Annotations load without images; a missing image fails when its
    sample is read, naming the file."""

    domain = "mpii"

    def __init__(self, annotations: str | Path, images: str | Path | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.path = Path(annotations)
        self.images = Path(images) if images is not None else None
        arrays = read_arrays(self.path, ("imgname", "part", "center", "scale"),
                             optional=("normalize", "visible"))
        n = len(arrays["part"])
        check_shape(self.path, "part", arrays["part"], (n, joints.NUM_JOINTS, 2))
        check_shape(self.path, "center", arrays["center"], (n, 2))
        self.scale = column(self.path, "scale", arrays["scale"], n).astype(np.float64)
        names = column(self.path, "imgname", arrays["imgname"], n)
        self.imgname = [v.decode() if isinstance(v, bytes) else str(v) for v in names]
        self.part = arrays["part"].astype(np.float64)
        self.center = arrays["center"].astype(np.float64)
        self.normalize = (column(self.path, "normalize", arrays["normalize"], n).astype(np.float64)
                          if "normalize" in arrays else np.zeros(n))
        bad = np.flatnonzero(~(np.isfinite(self.scale) & (self.scale > 0)))
        if len(bad):
            raise DatasetError(f"{self.path}: scale must be positive and finite; row {bad[0]} has "
                               f"{self.scale[bad[0]]}")
        self.annotated = ~(self.part == 0).all(axis=-1)

    def __len__(self) -> int:
        return len(self.part)

    @property
    def has_3d(self) -> np.ndarray:
        return np.zeros(len(self), bool)

    def record(self, index: int) -> Record:
        scale = self.scale[index]
        center = self.center[index] + np.array([0.0, CENTER_SHIFT_PER_SCALE * scale])
        if self.images is None:
            image = Path(self.imgname[index])
        else:
            image = self.images / self.imgname[index]
        return Record(image=image, joints2d=self.part[index], visible=self.annotated[index],
                      center=center, side=BOX_PIXELS_PER_SCALE * scale * SCALE_MARGIN,
                      head_size=float(self.normalize[index]))

    def make_sample(self, index, rec, draw):
        if self.images is None:
            raise DatasetError(f"mpii: sample {index} needs image {rec.image} but no `images` folder is "
                               f"configured for {self.path}; set it to MPII's images/ folder")
        return super().make_sample(index, rec, draw)
