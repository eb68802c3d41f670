"""COCO person keypoints: the annotation format most 2D pose data comes in (COCO itself, and what
CVAT, Label Studio and Roboflow export), read as 2D-only samples.

Layout expected:

    ANNOTATIONS.json   {"images": [{"id", "file_name", ...}],
                        "annotations": [{"image_id", "category_id", "keypoints": [x, y, v] x 17,
                                         "bbox": [x, y, w, h], "iscrowd", ...}], ...}
    IMAGES/{file_name}

COCO's 17 keypoints map onto our 16 joints (MPII's): ankles, knees, hips, wrists, elbows and shoulders
one to one; the pelvis as the midpoint of the hips when both are labelled. COCO has no thorax, upper
neck or head top: those joints count as not annotated (no heatmap, no score). A keypoint counts when
its flag v is 1 (labelled, hidden) or 2 (labelled, visible). Crowd regions (`iscrowd`) and people
with fewer than `MIN_KEYPOINTS` labelled keypoints are skipped, as COCO's own evaluation does for tiny
people. The crop is 1.25 x the longer side of the person's box; PCK@0.1 is scored against that side,
which spans about what SynthPose's joint box does (head top to ankles).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from wildpose.errors import DatasetError
from wildpose.training import joints
from wildpose.training.datasets.sample import BOX_MARGIN, PoseDataset, Record

# COCO keypoint index for each of our joints (None: COCO has no such keypoint).
_COCO_INDEX = {"r_ankle": 16, "r_knee": 14, "r_hip": 12, "l_hip": 11, "l_knee": 13, "l_ankle": 15,
               "r_wrist": 10, "r_elbow": 8, "r_shoulder": 6, "l_shoulder": 5, "l_elbow": 7, "l_wrist": 9}
_COCO_KEYPOINTS = 17
MIN_KEYPOINTS = 4
PERSON = 1  # COCO's category id for people


def to_joints(keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """COCO `(17, 3)` [x, y, v] -> our `(16, 2)` joints and `(16,)` annotated flags."""
    joints2d = np.zeros((joints.NUM_JOINTS, 2))
    visible = np.zeros(joints.NUM_JOINTS, bool)
    labelled = keypoints[:, 2] > 0
    for name, k in _COCO_INDEX.items():
        j = joints.NAMES.index(name)
        joints2d[j], visible[j] = keypoints[k, :2], labelled[k]
    pelvis, hips = joints.NAMES.index("pelvis"), [joints.NAMES.index("r_hip"), joints.NAMES.index("l_hip")]
    if visible[hips].all():
        joints2d[pelvis], visible[pelvis] = joints2d[hips].mean(axis=0), True
    return joints2d, visible


def _read(path: Path) -> tuple[dict[int, str], list[dict]]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"annotation file not found: {path}; check the dataset's `annotations` path") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"cannot read annotation file {path}: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("images"), list) or not isinstance(
            document.get("annotations"), list):
        raise DatasetError(f"{path}: expected COCO keypoints JSON, an object with \"images\" and \"annotations\" "
                           "lists (see wildpose/training/datasets/coco.py)")
    try:
        files = {int(image["id"]): str(image["file_name"]) for image in document["images"]}
    except (KeyError, TypeError, ValueError):
        raise DatasetError(f"{path}: every entry of \"images\" needs an \"id\" and a \"file_name\"") from None
    return files, document["annotations"]


class CocoDataset(PoseDataset):
    """The people of a COCO keypoints file (2D only)."""

    domain = "coco"

    def __init__(self, annotations: str | Path, images: str | Path | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.path = Path(annotations)
        self.images = Path(images) if images is not None else self.path.parent
        files, people = _read(self.path)
        self.names: list[str] = []
        joints2d, visible, boxes = [], [], []
        for i, person in enumerate(people):
            if not isinstance(person, dict) or person.get("category_id", PERSON) != PERSON or person.get("iscrowd"):
                continue
            try:
                keypoints = np.asarray(person["keypoints"], np.float64).reshape(_COCO_KEYPOINTS, 3)
                box = np.asarray(person["bbox"], np.float64).reshape(4)
                name = files[int(person["image_id"])]
            except (KeyError, TypeError, ValueError):
                raise DatasetError(f"{self.path}: annotation {i} needs \"keypoints\" (17 x [x, y, v]), \"bbox\" "
                                   "[x, y, w, h] and an \"image_id\" listed in \"images\"") from None
            if (keypoints[:, 2] > 0).sum() < MIN_KEYPOINTS or not np.isfinite(keypoints).all() or box[2:].min() <= 0:
                continue
            person_joints, person_visible = to_joints(keypoints)
            self.names.append(name)
            joints2d.append(person_joints)
            visible.append(person_visible)
            boxes.append(box)
        if not self.names:
            raise DatasetError(f"{self.path}: no person with {MIN_KEYPOINTS} or more labelled keypoints")
        self.joints2d, self.visible, self.boxes = np.stack(joints2d), np.stack(visible), np.stack(boxes)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def has_3d(self) -> np.ndarray:
        return np.zeros(len(self.names), bool)

    def record(self, index: int) -> Record:
        x, y, width, height = self.boxes[index]
        longer = float(max(width, height))
        return Record(image=self.images / self.names[index], joints2d=self.joints2d[index],
                      visible=self.visible[index], center=np.array([x + width / 2.0, y + height / 2.0]),
                      side=longer * BOX_MARGIN, box_size=longer)
