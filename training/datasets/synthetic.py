"""Small synthetic datasets in every supported file format: stick figures drawn from projected 3D poses.

The trainer's tests and smoke runs need data on machines that hold no Human3.6M or MPII, in the very
file layouts real data uses, so that the loaders under test are the real ones. Poses are a standing
skeleton with the reference's bone lengths, randomly bent and turned, projected by a pinhole camera
and drawn with OpenCV (right limbs red, left limbs blue, so a flip is visible).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from wildpose.training import joints
from wildpose.training.datasets import folder, h36m, mpi_inf_3dhp

# A person facing the camera, mm, camera axes (x right, y down, z forward); the person's right side
# is on the image's left. Thigh/shin and upper-arm/forearm follow the reference's mean skeleton.
_TEMPLATE = {
    "pelvis": (0, 0, 0), "r_hip": (-110, 0, 0), "l_hip": (110, 0, 0),
    "r_knee": (-115, 456, 0), "l_knee": (115, 456, 0), "r_ankle": (-120, 908, 0), "l_ankle": (120, 908, 0),
    "thorax": (0, -250, 0), "upper_neck": (0, -500, 0), "head_top": (0, -700, 0),
    "r_shoulder": (-160, -480, 0), "l_shoulder": (160, -480, 0),
    "r_elbow": (-180, -196, 0), "l_elbow": (180, -196, 0), "r_wrist": (-190, 54, 0), "l_wrist": (190, 54, 0),
}
_LIMBS = {  # (joint that moves with its children, children) for random bends about the x axis
    "r_shoulder": ("r_elbow", "r_wrist"), "l_shoulder": ("l_elbow", "l_wrist"),
    "r_elbow": ("r_wrist",), "l_elbow": ("l_wrist",),
    "r_hip": ("r_knee", "r_ankle"), "l_hip": ("l_knee", "l_ankle"), "r_knee": ("r_ankle",), "l_knee": ("l_ankle",),
}
_COLOURS = {"r": (220, 40, 40), "l": (40, 80, 230), "c": (40, 200, 60)}  # RGB


def _rotation(axis: str, degrees: float) -> np.ndarray:
    a = np.radians(degrees)
    c, s = np.cos(a), np.sin(a)
    return {"x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
            "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
            "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[axis]


def random_pose(rng: np.random.Generator) -> np.ndarray:
    """`(16, 3)` mm, root-relative, camera axes: the template with bent limbs, turned about y."""
    pose = np.array([_TEMPLATE[name] for name in joints.NAMES], np.float64)
    for parent, children in _LIMBS.items():
        p = joints.INDEX[parent]
        turn = _rotation("x", rng.uniform(-60, 60)) @ _rotation("z", rng.uniform(-25, 25))
        for child in children:
            c = joints.INDEX[child]
            pose[c] = pose[p] + turn @ (pose[c] - pose[p])
    return pose @ (_rotation("y", rng.uniform(-70, 70)) @ _rotation("x", rng.uniform(-10, 10))).T


def project(points: np.ndarray, focal: float, center: np.ndarray) -> np.ndarray:
    """`(16, 2)` px: pinhole projection of camera-frame points `(16, 3)` mm."""
    return focal * points[:, :2] / points[:, 2:3] + center


def draw(size: tuple[int, int], joints2d: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`(H, W, 3)` uint8 RGB: a noisy grey background and the stick figure."""
    height, width = size
    image = np.clip(rng.normal(110, 25, (height, width, 3)), 0, 255).astype(np.uint8)
    thickness = max(1, int(round(min(height, width) / 40)))
    for a, b in joints.EDGES:
        side = "r" if joints.NAMES[a].startswith("r_") or joints.NAMES[b].startswith("r_") else \
            "l" if joints.NAMES[a].startswith("l_") or joints.NAMES[b].startswith("l_") else "c"
        cv2.line(image, tuple(int(v) for v in np.rint(joints2d[a])), tuple(int(v) for v in np.rint(joints2d[b])),
                 _COLOURS[side], thickness, cv2.LINE_AA)
    head = joints2d[joints.INDEX["head_top"]]
    cv2.circle(image, tuple(int(v) for v in np.rint(head)), thickness * 2, (240, 220, 60), -1, cv2.LINE_AA)
    return image


def _write_image(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])


def _person(rng: np.random.Generator, image_size: int, fill: float) -> tuple[np.ndarray, np.ndarray]:
    """(3D pose in mm, camera frame; its 2D joints) for a person about `fill` of the image tall,
    roughly centred."""
    pose = random_pose(rng)
    distance = rng.uniform(4000, 5500)
    focal = fill * image_size * distance / 1700.0  # a 1.7 m person fills `fill` of the image height
    middle = (pose.min(axis=0) + pose.max(axis=0)) / 2.0
    jitter = rng.uniform(-0.05, 0.05, 2) * image_size * distance / focal
    points = pose + np.array([jitter[0] - middle[0], jitter[1] - middle[1], distance])
    return points, project(points, focal, np.array([image_size, image_size]) / 2.0 - 0.5)


def write_h36m(root: str | Path, count: int, seed: int = 0, image_size: int = 128,
               test_every: int = 5) -> tuple[Path, Path]:
    """A Human3.6M-format dataset (see `h36m.py`): (annotation h5, image folder). Every
    `test_every`-th sample has istrain = 0."""
    import h5py

    root = Path(root)
    rng = np.random.default_rng(seed)
    rows = {name: [] for name in ("id", "joint_2d", "joint_3d_mono", "bbox", "subject", "action",
                                  "subaction", "camera", "istrain")}
    for i in range(count):
        pose3d, joints2d = _person(rng, image_size, fill=0.8)
        subject, action, subaction, camera = 1 + i % 2, 2 + i % 3, 1, 1 + i % 4
        _write_image(root / "images" / h36m.image_name(subject, action, subaction, camera, i + 1),
                     draw((image_size, image_size), joints2d, rng))
        for name, value in (("id", i + 1), ("joint_2d", joints2d), ("joint_3d_mono", pose3d),
                            ("bbox", [0, 0, image_size, image_size]), ("subject", subject), ("action", action),
                            ("subaction", subaction), ("camera", camera), ("istrain", int(i % test_every != 0))):
            rows[name].append(value)
    annotations = root / "annot.h5"
    with h5py.File(annotations, "w") as h5:
        for name, values in rows.items():
            h5[name] = np.asarray(values)
    return annotations, root / "images"


def write_folder(root: str | Path, count: int, seed: int = 0, image_size: int = 160, with_3d: bool = False,
                 fmt: str = "json") -> Path:
    """A folder-format dataset (see `folder.py`); returns the annotation file. People stand at random
    places and sizes in larger images, so crops come from the joints' boxes."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(count):
        pose3d, joints2d = _person(rng, image_size, fill=rng.uniform(0.45, 0.7))
        name = f"images/{i:04d}.jpg"
        _write_image(root / name, draw((image_size, image_size), joints2d, rng))
        sample = {"image": name, "joints_2d": joints2d}
        if with_3d:
            sample["joints_3d"] = pose3d
        samples.append(sample)
    if fmt == "json":
        return folder.write(root / "annotations.json", samples)
    path = root / "annotations.npz"
    arrays = {"image": np.array([s["image"] for s in samples]),
              "joints_2d": np.stack([s["joints_2d"] for s in samples])}
    if with_3d:
        arrays["joints_3d"] = np.stack([s["joints_3d"] for s in samples])
    np.savez(path, **arrays)
    return path


def write_mpii(root: str | Path, count: int, seed: int = 0, image_size: int = 200) -> tuple[Path, Path]:
    """An MPII-format dataset in Newell's h5 layout (see `mpii.py`): (annotation h5, image folder)."""
    import h5py

    root = Path(root)
    rng = np.random.default_rng(seed)
    rows = {name: [] for name in ("imgname", "part", "center", "scale", "normalize", "visible", "person",
                                  "index", "torsoangle")}
    for i in range(count):
        _, joints2d = _person(rng, image_size, fill=0.6)
        name = f"{i:09d}.jpg"
        _write_image(root / "images" / name, draw((image_size, image_size), joints2d, rng))
        low, high = joints2d.min(axis=0), joints2d.max(axis=0)
        scale = (high[1] - low[1]) / 200.0
        head = np.linalg.norm(joints2d[joints.INDEX["head_top"]] - joints2d[joints.INDEX["upper_neck"]])
        for key, value in (("imgname", name.encode()), ("part", joints2d),
                           ("center", [(low[0] + high[0]) / 2, (low[1] + high[1]) / 2 - 15 * scale]),
                           ("scale", scale), ("normalize", head), ("visible", np.ones(16)), ("person", 0),
                           ("index", i), ("torsoangle", 0.0)):
            rows[key].append(value)
    annotations = root / "annot.h5"
    with h5py.File(annotations, "w") as h5:
        for key, values in rows.items():
            h5[key] = np.asarray(values)
    return annotations, root / "images"


def write_3dhp(root: str | Path, count: int, seed: int = 0, image_size: int = 160) -> tuple[Path, Path]:
    """An MPI-INF-3DHP test-sequence annotation (MATLAB v7.3 layout, (N, 1, 17, C)) and its images."""
    import h5py

    root = Path(root)
    rng = np.random.default_rng(seed)
    ours_to_3dhp = {theirs: ours for ours, theirs in enumerate(joints.MPI_INF_3DHP_TO_OURS)}
    head = joints.MPI_INF_3DHP_NAMES.index("head")
    poses3d, poses2d = [], []
    for i in range(count):
        pose3d, joints2d = _person(rng, image_size, fill=0.7)
        _write_image(root / "imageSequence" / mpi_inf_3dhp.image_name(i), draw((image_size, image_size),
                                                                              joints2d, rng))
        full3d, full2d = np.zeros((17, 3)), np.zeros((17, 2))
        for theirs in range(17):
            source = ours_to_3dhp.get(theirs, joints.INDEX["head_top"] if theirs == head else joints.ROOT)
            full3d[theirs], full2d[theirs] = pose3d[source], joints2d[source]
        poses3d.append(full3d)
        poses2d.append(full2d)
    annotations = root / "annot_data.mat"
    with h5py.File(annotations, "w") as h5:
        h5["univ_annot3"] = np.asarray(poses3d)[:, None]
        h5["annot2"] = np.asarray(poses2d)[:, None]
        h5["valid_frame"] = np.ones((count, 1))
        h5["activity_annotation"] = (np.arange(count) % 7 + 1)[:, None].astype(np.float64)
    return annotations, root / "imageSequence"
