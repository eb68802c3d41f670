"""SynthPose as a training and evaluation dataset: people rendered from CMU motion capture on the fly.

Sample `i` is `synthpose.domains.sample(domain, split, seed, i)` at `render_size` px, so any index
can be regenerated anywhere and DataLoader workers, each handed its own indices by the sampler,
never repeat a sample. Labels follow the domains' policy: `wild`/`train` samples are 2D-only (the
geometric loss's data), `lab` and `wild`/`test` keep their 3D. The crop box is the reference's
1.25 x the longer side of the joints' box; PCK@0.1 is scored against that box's longer side.

Rendering costs about 8 ms (256 px) to 14 ms (320 px) a sample on one core. With `cache` the
rendered images stay in this process's memory (size x render_size^2 x 3 bytes), which pays when
the same samples are drawn again in one process (workers = 0, or pre-rendered before workers fork).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from wildpose.errors import DatasetError
from wildpose.training.datasets import SYNTHPOSE_RENDER_SIZE
from wildpose.training.datasets.sample import PoseDataset, Record
from wildpose.training.synthpose import domains
from wildpose.training.synthpose.render import DEFAULT_CROP_PADDING

log = logging.getLogger(__name__)

DOMAINS = ("lab", "wild")
SPLITS = ("train", "test")

# Rendered images per (mocap folder, render size, domain, split, seed, index), this process only.
_IMAGES: dict[tuple, np.ndarray] = {}


def default_mocap_dir() -> Path:
    """`../shared/data/cmu_mocap` beside the project root (MANIFEST.md, "Motion capture")."""
    return domains.DEFAULT_MOCAP_DIR


def check_mocap_dir(folder: str | Path, domain: str, split: str) -> Path:
    """`folder` if it holds the BVH files of `domain`/`split`, else a `DatasetError` that names it."""
    folder = Path(folder)
    files = domains.split_files(domain, split)
    missing = [f"{stem}.bvh" for stem in files if not (folder / f"{stem}.bvh").is_file()]
    if not folder.is_dir():
        raise DatasetError(f"synthpose: the CMU motion capture folder {folder} does not exist; set the "
                           "dataset's `mocap` to a folder with the CMU BVH files (../shared/data/cmu_mocap)")
    if missing:
        raise DatasetError(f"synthpose: {folder} lacks {missing}, the motion capture of {domain}/{split}; "
                           "set the dataset's `mocap` to the CMU BVH folder (../shared/data/cmu_mocap)")
    return folder


class SynthPoseDataset(PoseDataset):
    """`size` SynthPose samples of `domain` (lab, wild) / `split` (train, test) under `seed`."""

    domain = "synthpose"

    def __init__(self, domain: str, split: str, size: int, seed: int = 0, mocap: str | Path | None = None,
                 render_size: int = SYNTHPOSE_RENDER_SIZE, cache: bool = False, repose_limbs: float = 0.0,
                 fold_elbows: float = 0.0, faces: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        if domain not in DOMAINS or split not in SPLITS:
            raise DatasetError(f"synthpose: domain must be one of {list(DOMAINS)} and split one of "
                               f"{list(SPLITS)}, got {domain!r} / {split!r}")
        if size < 1 or seed < 0:
            raise DatasetError(f"synthpose: size must be >= 1 and seed >= 0, got size {size}, seed {seed}")
        folder = check_mocap_dir(default_mocap_dir() if mocap is None else mocap, domain, split)
        self.scene_domain, self.split, self.size, self.seed, self.cache = domain, split, size, seed, cache
        self.synth = domains.SynthConfig(mocap_dir=str(folder), width=render_size, height=render_size,
                                         repose_limbs=repose_limbs, fold_elbows=fold_elbows, faces=faces)
        self._has_3d = np.full(size, self.synth.domains[domain].labels_3d[split])
        self._labels: dict[int, Record] = {}
        self._fresh: tuple[int, np.ndarray] | None = None  # the image __getitem__ just rendered
        # Parse the BVH files now (seconds): a bad file fails here, and forked workers inherit them.
        domains.load_motions(domain, split, self.synth)

    def __len__(self) -> int:
        return self.size

    @property
    def has_3d(self) -> np.ndarray:
        return self._has_3d

    def _key(self, index: int) -> tuple:
        return (self.synth.mocap_dir, self.synth.width, self.synth.repose_limbs, self.synth.fold_elbows,
                self.synth.faces, self.scene_domain, self.split, self.seed, index)

    def _record(self, index: int, joints2d: np.ndarray, joints3d: np.ndarray | None, visible: np.ndarray,
                box: np.ndarray, intrinsics: np.ndarray) -> Record:
        longer = float(max(box[2] - box[0], box[3] - box[1]))
        return Record(image=Path(f"synthpose/{self.scene_domain}/{self.split}/seed{self.seed}/{index}"),
                      joints2d=joints2d, visible=visible, joints3d=joints3d, center=(box[:2] + box[2:]) / 2.0,
                      side=max(longer, 1.0) * DEFAULT_CROP_PADDING, box_size=longer, intrinsics=intrinsics)

    def record(self, index: int) -> Record:
        """The labels of sample `index`, computed without rendering it (kept: they are small)."""
        if index not in self._labels:
            labels = domains.labels(self.scene_domain, self.split, self.seed, index, self.synth)
            self._labels[index] = self._record(index, labels.joints2d, labels.joints3d_cam, labels.visible,
                                               labels.box, labels.intrinsics)
        return self._labels[index]

    def _render(self, index: int) -> np.ndarray:
        """Render sample `index`, keeping its labels (and its image, with `cache`)."""
        rendered = domains.sample(self.scene_domain, self.split, self.seed, index, self.synth)
        self._labels[index] = self._record(index, rendered.joints2d, rendered.joints3d_cam, rendered.visible,
                                           rendered.box, rendered.intrinsics)
        if self.cache:
            _IMAGES[self._key(index)] = rendered.image
        return rendered.image

    def __getitem__(self, key):
        index = key[0] if isinstance(key, tuple) else int(key)
        # Render before the pipeline asks for the labels, which then come with the image: drawing the
        # scene once instead of twice saves ~1 ms of the ~10 a sample costs.
        if 0 <= index < self.size and index not in self._labels and self._key(index) not in _IMAGES:
            self._fresh = (index, self._render(index))
        try:
            return super().__getitem__(key)
        finally:
            self._fresh = None

    def read_image(self, index: int, rec: Record) -> np.ndarray:
        if self._fresh is not None and self._fresh[0] == index:
            return self._fresh[1]
        image = _IMAGES.get(self._key(index))
        return image if image is not None else self._render(index)

    def prerender(self) -> float:
        """Render (and cache) every sample now; returns samples per second. Needs `cache`."""
        if not self.cache:
            raise DatasetError("synthpose: prerender() needs cache = true, or the images are thrown away")
        started, rendered = time.perf_counter(), 0
        for index in range(self.size):
            if self._key(index) not in _IMAGES:
                self._render(index)
                rendered += 1
        seconds = time.perf_counter() - started
        rate = rendered / seconds if rendered else float("nan")
        log.info("synthpose %s/%s: rendered %d of %d samples at %d px in %.1f s (%.1f samples/s)",
                 self.scene_domain, self.split, rendered, self.size, self.synth.width, seconds, rate)
        return rate


def clear_cache() -> None:
    """Forget every cached image of this process."""
    _IMAGES.clear()
