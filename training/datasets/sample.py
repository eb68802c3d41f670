"""The one sample format every dataset produces, and the crop/augment/target pipeline behind it.

Each format module only reads its annotation file into `Record`s (joints in image pixels, the crop
box, optional 3D); everything after that (loading the image, cropping, augmenting, flipping joints
and 3D, rendering heatmaps and depth) happens here once, so the formats cannot disagree.

A sample is a dict of tensors (default `collate` stacks them):
  image `(3, S, S)` float32 RGB in [0, 1];  heatmaps `(J, S/4, S/4)` float32;
  visible `(J,)` float32, 1 = annotated (heatmap weight, geometric-loss bone mask);
  joints2d `(J, 2)` crop px;  joints2d_image `(J, 2)` image px (ground truth, for PCKh and PCK);
  joints3d `(J, 3)` mm, camera axes, root-relative (zeros without 3D);  depth `(J,)` target;
  has3d `()` 1.0 for 3D samples;  box `(3,)` crop centre x, y and side in image px;
  transform `(2, 3)` image px -> crop px;  head_size `()` px (0 when unknown);
  augmentation `(6,)` scale, rotation, flip, 3 gains;  index `()` int64;  domain str (the format).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from wildpose.errors import DatasetError
from wildpose.training import joints
from wildpose.training.datasets import augment as aug
from wildpose.training.datasets import targets
from wildpose.training.models.config import HEATMAP_STRIDE

# A crop that shrinks the image by this factor or more is first downsized with area averaging, so
# bilinear sampling does not alias (the reference resized first for the same reason).
_PRESHRINK_FACTOR = 2.0
# Crop margin around the joints' extent when a format gives no box.
BOX_MARGIN = 1.25


@dataclass
class Record:
    """One annotated person before cropping: everything a format module reads from its files.

    `joints2d` `(J, 2)` image px; `visible` `(J,)` bool (annotated); `joints3d` `(J, 3)` mm camera
    frame or None; `center` `(2,)` and `side` the square crop box in image px (None: the whole image,
    as for the reference's pre-cropped Human3.6M images); `head_size` px (MPII), 0 if unknown;
    `box_size` px the longer side of the person's tight joint box where a format scores PCK@0.1 by
    it (SynthPose), 0 otherwise.
    """

    image: Path
    joints2d: np.ndarray
    visible: np.ndarray
    joints3d: np.ndarray | None = None
    center: np.ndarray | None = None
    side: float | None = None
    head_size: float = 0.0
    box_size: float = 0.0
    intrinsics: np.ndarray | None = None  # (3, 3) camera matrix where the format knows it (SynthPose)


def read_arrays(path: Path, names: Sequence[str], optional: Sequence[str] = (),
                aliases: dict[str, Sequence[str]] | None = None) -> dict[str, np.ndarray]:
    """Arrays `names` (required) and `optional` from an HDF5 (.h5, MATLAB v7.3 .mat) or .npz file.

    `aliases` maps a name to other field names accepted for it. Raises `DatasetError` naming the file
    and the field when the file is missing or unreadable or a required field is absent.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"annotation file not found: {path}; check the dataset's `annotations` path")
    aliases = aliases or {}
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                store = {key: data[key] for key in data.files}
        else:
            import h5py

            with h5py.File(path, "r") as data:
                store = {key: np.asarray(data[key]) for key in data.keys()
                         if isinstance(data[key], h5py.Dataset)}
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read annotation file {path}: {str(exc).splitlines()[0]}; expected an "
                           "HDF5 file (.h5, or a MATLAB v7.3 .mat) or an .npz") from None
    arrays: dict[str, np.ndarray] = {}
    for name in [*names, *optional]:
        for key in (name, *aliases.get(name, ())):
            if key in store:
                arrays[name] = store[key]
                break
        else:
            if name in names:
                accepted = " or ".join(repr(k) for k in (name, *aliases.get(name, ())))
                raise DatasetError(f"{path}: annotation field {accepted} is missing (found "
                                   f"{sorted(store)}); see the format's docstring for the layout")
    return arrays


def check_shape(path: Path, name: str, array: np.ndarray, shape: tuple[int | None, ...]) -> np.ndarray:
    """`array` if its shape matches `shape` (None = any), else a `DatasetError` naming the field."""
    if array.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, array.shape, strict=True)):
        expected = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise DatasetError(f"{path}: annotation field {name!r} has shape {array.shape}, expected "
                           f"{expected}")
    return array


def column(path: Path, name: str, array: np.ndarray, n: int) -> np.ndarray:
    """A per-sample scalar field as `(n,)`; `(n, 1)` and `(1, n)` (MATLAB's layout) are accepted."""
    if array.size != n or array.ndim > 2:
        raise DatasetError(f"{path}: annotation field {name!r} has shape {array.shape}, expected ({n},) "
                           "like the other fields")
    return array.reshape(n)


def box_from_joints(joints2d: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, float]:
    """A square box around the visible joints with a `BOX_MARGIN` margin: (centre, side) in px."""
    points = joints2d[np.asarray(visible, bool)]
    if len(points) == 0:
        raise DatasetError("a sample has no visible joint and no box; give a box or drop the sample")
    low, high = points.min(axis=0), points.max(axis=0)
    return (low + high) / 2.0, float(max(high - low) * BOX_MARGIN) or 1.0


def load_image(path: Path) -> np.ndarray:
    """`(H, W, 3)` uint8 RGB, or a `DatasetError` naming the file."""
    if not Path(path).is_file():
        raise DatasetError(f"image file not found: {path}; check the dataset's `images` folder")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"cannot decode image file {path}; it is corrupt or not an image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def warp(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Crop `(size, size, 3)` through the image->crop affine `matrix`, black outside the image."""
    shrink = 1.0 / np.sqrt(abs(np.linalg.det(matrix[:2, :2])))  # image px per crop px
    if shrink >= _PRESHRINK_FACTOR:
        height, width = image.shape[:2]
        small = (max(1, int(round(width / shrink))), max(1, int(round(height / shrink))))
        image = cv2.resize(image, small, interpolation=cv2.INTER_AREA)
        # small px -> image px, pixel centres at integers on both sides
        to_image = np.eye(3)
        to_image[0, 0], to_image[1, 1] = width / small[0], height / small[1]
        to_image[:2, 2] = 0.5 * np.array([width / small[0], height / small[1]]) - 0.5
        matrix = matrix @ to_image
    return cv2.warpAffine(image, matrix[:2], (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


class PoseDataset(Dataset):
    """Base of every format: records in, samples (see the module docstring) out.

    Index with an int for the plain sample (evaluation), or with `(index, stream)` from
    `sampler.MixedBatchSampler` for a training sample augmented from its own seed.
    """

    domain = "generic"

    def __init__(self, input_size: int, augment: aug.AugmentConfig | None = None,
                 sigma: float = targets.REFERENCE_SIGMA) -> None:
        self.input_size = input_size
        self.augment = augment or aug.AugmentConfig(enabled=False)
        self.sigma = sigma
        self.flip_perm = joints.flip_permutation()

    # -- what a format provides ----------------------------------------------------------------
    def __len__(self) -> int:
        raise NotImplementedError

    def record(self, index: int) -> Record:
        raise NotImplementedError

    @property
    def has_3d(self) -> np.ndarray:
        """`(N,)` bool: which samples carry 3D joints (read without loading any image)."""
        raise NotImplementedError

    # -- shared pipeline -----------------------------------------------------------------------
    def annotations(self, count: int | None = None) -> dict[str, np.ndarray]:
        """The first `count` (default all) samples' ground truth without loading images (evaluation):
        joints2d `(N, J, 2)` px, visible `(N, J)`, joints3d `(N, J, 3)` mm root-relative (NaN without
        3D), head_size `(N,)` px, box_size `(N,)` px (0: PCK@0.1 not defined), root_cam `(N, 3)` mm
        the root in the camera frame and intrinsics `(N, 3, 3)` (NaN where unknown)."""
        records = [self.record(i) for i in range(len(self) if count is None else count)]
        joints3d = np.full((len(records), joints.NUM_JOINTS, 3), np.nan)
        root_cam = np.full((len(records), 3), np.nan)
        intrinsics = np.full((len(records), 3, 3), np.nan)
        for i, rec in enumerate(records):
            if rec.joints3d is not None:
                joints3d[i] = rec.joints3d - rec.joints3d[joints.ROOT]
                root_cam[i] = rec.joints3d[joints.ROOT]
            if rec.intrinsics is not None:
                intrinsics[i] = rec.intrinsics
        return {
            "root_cam": root_cam,
            "intrinsics": intrinsics,
            "joints2d": np.stack([r.joints2d for r in records]) if records else np.zeros((0, 16, 2)),
            "visible": np.stack([r.visible for r in records]) if records else np.zeros((0, 16), bool),
            "joints3d": joints3d,
            "head_size": np.array([r.head_size for r in records], np.float64),
            "box_size": np.array([r.box_size for r in records], np.float64),
        }

    def __getitem__(self, key: int | tuple[int, Sequence[int]]) -> dict[str, Any]:
        if isinstance(key, tuple):
            index, stream = key
            draw = aug.draw(aug.generator(stream, index), self.augment)
        else:
            index, draw = int(key), aug.IDENTITY
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} out of range for {len(self)} samples")
        return self.make_sample(index, self.record(index), draw)

    def read_image(self, index: int, rec: Record) -> np.ndarray:
        """`(H, W, 3)` uint8 RGB of sample `index` (a file by default; SynthPose renders it)."""
        return load_image(rec.image)

    def make_sample(self, index: int, rec: Record, draw: aug.Augmentation) -> dict[str, Any]:
        size = self.input_size
        image = self.read_image(index, rec)
        if rec.center is None or rec.side is None:
            height, width = image.shape[:2]
            center, side = np.array([(width - 1) / 2.0, (height - 1) / 2.0]), float(max(width, height))
        else:
            center, side = np.asarray(rec.center, np.float64), float(rec.side)
        side *= draw.scale
        matrix = aug.crop_matrix(center, side, size, draw.rotation, draw.flip)
        crop = warp(image, matrix, size).astype(np.float32) / 255.0
        crop = np.clip(crop * np.asarray(draw.gains, np.float32), 0.0, 1.0)

        visible = np.asarray(rec.visible, bool).copy()
        joints2d_image = np.asarray(rec.joints2d, np.float64).copy()
        joints2d = aug.apply(matrix, joints2d_image)
        joints3d = np.zeros((joints.NUM_JOINTS, 3))
        if rec.joints3d is not None:
            joints3d = np.asarray(rec.joints3d, np.float64) - rec.joints3d[joints.ROOT]
            # The camera's x, y axes are the image's, so an in-plane rotation of the image is a
            # rotation of the camera about its optical axis: turn x, y with the same matrix.
            joints3d[:, :2] = joints3d[:, :2] @ aug.rotation_matrix(draw.rotation).T
        if draw.flip:
            # Mirroring swaps left and right and negates camera x (not y: the reference's bug).
            joints2d, joints2d_image = joints2d[self.flip_perm], joints2d_image[self.flip_perm]
            visible = visible[self.flip_perm]
            joints3d = joints3d[self.flip_perm] * np.array([-1.0, 1.0, 1.0])

        heatmap_size = size // HEATMAP_STRIDE
        heatmaps = targets.gaussian_heatmaps(joints2d, visible, heatmap_size, HEATMAP_STRIDE, self.sigma)
        has3d = rec.joints3d is not None
        depth = (targets.depth_target(joints2d, joints3d, visible, size) if has3d
                 else np.zeros(joints.NUM_JOINTS, np.float32))
        return {
            "image": torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1))),
            "heatmaps": torch.from_numpy(heatmaps),
            "visible": torch.from_numpy(visible.astype(np.float32)),
            "joints2d": torch.from_numpy(joints2d.astype(np.float32)),
            "joints2d_image": torch.from_numpy(joints2d_image.astype(np.float32)),
            "joints3d": torch.from_numpy(joints3d.astype(np.float32)),
            "depth": torch.from_numpy(depth),
            "has3d": torch.tensor(float(has3d)),
            "box": torch.tensor([center[0], center[1], side], dtype=torch.float32),
            "transform": torch.from_numpy(matrix[:2].astype(np.float32)),
            "head_size": torch.tensor(float(rec.head_size)),
            "augmentation": torch.from_numpy(draw.as_array()),
            "index": torch.tensor(index, dtype=torch.int64),
            "domain": self.domain,
        }
