"""Bring-your-own data: a folder of images plus one JSON or npz file of joints.

JSON (`annotations.json`):

    {"format": "wildpose-folder-v1",
     "samples": [
        {"image": "imgs/0001.jpg",                 # relative to the `images` folder
         "joints_2d": [[x, y], ...16],               # px in the image, wildpose joint order
         "visible": [1, 1, 0, ...16],                # optional, default all 1; 0 = not annotated
         "joints_3d": [[x, y, z], ...16],            # optional: mm, camera frame (x right, y down, z forward)
         "box": [cx, cy, side]},                     # optional square crop box in px
        ...]}

npz: arrays `image` (N,) str, `joints_2d` (N, 16, 2), optional `visible` (N, 16), `joints_3d`
(N, 16, 3) (NaN rows = no 3D for that sample), `box` (N, 3). The joint order is
`wildpose.training.joints.NAMES` (MPII's). Samples with 3D joints count as 3D samples (depth loss),
the others as 2D-only (geometric loss). Without a box the crop is a square around the visible joints
with a 25% margin.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from wildpose.errors import DatasetError
from wildpose.training import joints
from wildpose.training.datasets.sample import PoseDataset, Record, box_from_joints, check_shape, read_arrays

FORMAT = "wildpose-folder-v1"
_J = joints.NUM_JOINTS


def _field(path: Path, position: int, sample: dict, name: str, shape: tuple[int, ...],
           required: bool = True) -> np.ndarray | None:
    if name not in sample:
        if required:
            raise DatasetError(f"{path}: sample {position} has no {name!r} (it has {sorted(sample)})")
        return None
    try:
        array = np.asarray(sample[name], np.float64)
    except (TypeError, ValueError):
        raise DatasetError(f"{path}: sample {position} field {name!r} is not numeric") from None
    if array.shape != shape:
        raise DatasetError(f"{path}: sample {position} field {name!r} has shape {array.shape}, expected {shape}")
    return array


def _read_json(path: Path) -> dict[str, np.ndarray]:
    try:
        document = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"cannot read annotation file {path}: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT or not isinstance(
            document.get("samples"), list):
        raise DatasetError(f"{path}: expected a JSON object with \"format\": \"{FORMAT}\" and a "
                           "\"samples\" list (see wildpose/training/datasets/folder.py)")
    images, joints2d, visible, joints3d, boxes = [], [], [], [], []
    for i, sample in enumerate(document["samples"]):
        if not isinstance(sample, dict) or not isinstance(sample.get("image"), str):
            raise DatasetError(f"{path}: sample {i} must be an object with an \"image\" path")
        images.append(sample["image"])
        joints2d.append(_field(path, i, sample, "joints_2d", (_J, 2)))
        vis = _field(path, i, sample, "visible", (_J,), required=False)
        visible.append(np.ones(_J) if vis is None else vis)
        pose = _field(path, i, sample, "joints_3d", (_J, 3), required=False)
        joints3d.append(np.full((_J, 3), np.nan) if pose is None else pose)
        box = _field(path, i, sample, "box", (3,), required=False)
        boxes.append(np.full(3, np.nan) if box is None else box)
    if not images:
        raise DatasetError(f"{path}: the \"samples\" list is empty")
    return {"image": np.array(images), "joints_2d": np.stack(joints2d), "visible": np.stack(visible),
            "joints_3d": np.stack(joints3d), "box": np.stack(boxes)}


class FolderDataset(PoseDataset):
    """Images and joints in the folder format above; 3D and 2D-only samples may be mixed."""

    domain = "folder"

    def __init__(self, annotations: str | Path, images: str | Path | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.path = Path(annotations)
        self.images = Path(images) if images is not None else self.path.parent
        if self.path.suffix == ".json":
            if not self.path.is_file():
                raise DatasetError(f"annotation file not found: {self.path}; check the dataset's "
                                   "`annotations` path")
            arrays = _read_json(self.path)
        else:
            arrays = read_arrays(self.path, ("image", "joints_2d"), optional=("visible", "joints_3d", "box"))
        n = len(arrays["image"])
        self.names = [str(v) for v in np.asarray(arrays["image"]).reshape(-1)]
        self.joints2d = check_shape(self.path, "joints_2d", np.asarray(arrays["joints_2d"], np.float64), (n, _J, 2))
        self.visible = check_shape(self.path, "visible", np.asarray(arrays.get("visible", np.ones((n, _J)))),
                                   (n, _J)).astype(bool)
        self.joints3d = check_shape(self.path, "joints_3d", np.asarray(
            arrays.get("joints_3d", np.full((n, _J, 3), np.nan)), np.float64), (n, _J, 3))
        self.box = check_shape(self.path, "box", np.asarray(arrays.get("box", np.full((n, 3), np.nan)),
                                                            np.float64), (n, 3))
        self._has_3d = np.isfinite(self.joints3d).all(axis=(1, 2))
        if not np.isfinite(self.joints2d[self.visible]).all():
            raise DatasetError(f"{self.path}: joints_2d holds NaN or infinite values for visible joints")

    def __len__(self) -> int:
        return len(self.names)

    @property
    def has_3d(self) -> np.ndarray:
        return self._has_3d

    def record(self, index: int) -> Record:
        if np.isfinite(self.box[index]).all():
            center, side = self.box[index][:2], float(self.box[index][2])
        else:
            center, side = box_from_joints(self.joints2d[index], self.visible[index])
        return Record(image=self.images / self.names[index], joints2d=self.joints2d[index],
                      visible=self.visible[index],
                      joints3d=self.joints3d[index] if self._has_3d[index] else None,
                      center=center, side=side)


def write(path: str | Path, samples: list[dict]) -> Path:
    """Write `samples` (dicts with the JSON fields above, arrays allowed) as a folder-format JSON."""
    def plain(value):
        return value.tolist() if isinstance(value, np.ndarray) else value

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"format": FORMAT, "samples": [{k: plain(v) for k, v in s.items()} for s in samples]}
    path.write_text(json.dumps(document))
    return path
