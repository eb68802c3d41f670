"""Training and evaluation data: four file formats and a renderer, one sample format (see `sample.py`).

`DatasetConfig` names a format and its files; `build` turns it into a `PoseDataset`. Formats:
`h36m` (reference-preprocessed Human3.6M), `mpii` (Newell's h5), `mpi_inf_3dhp` (3DHP test set),
`folder` (images + JSON/npz, for your own data) and `synthpose` (people rendered on the fly from CMU
motion capture, issue #5). Each format module's docstring gives its layout.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wildpose.errors import ConfigError
from wildpose.training.datasets.augment import AugmentConfig
from wildpose.training.models.config import REFERENCE_SIGMA

if TYPE_CHECKING:  # the datasets themselves need PyTorch; configs are read without it
    from wildpose.training.datasets.sample import PoseDataset

FORMATS = ("h36m", "mpii", "mpi_inf_3dhp", "coco", "folder", "synthpose")
_NEEDS_IMAGES = ("h36m", "mpi_inf_3dhp")
# SynthPose's default image side: crops of 1.25 x the person come out 128-250 px, about the realtime
# preset's 192 px input, and a 256 px render costs ~9 ms against ~14 ms at 320 px.
SYNTHPOSE_RENDER_SIZE = 256
# Keys of the synthpose format only, with their defaults (another format must leave them alone).
_SYNTHPOSE_KEYS = {"domain": None, "size": 0, "seed": 0, "mocap": None, "render_size": SYNTHPOSE_RENDER_SIZE,
                   "cache": False, "repose_limbs": 0.0, "fold_elbows": 0.0, "faces": False}


@dataclass(frozen=True)
class DatasetConfig:
    """One dataset: its format, annotation file, image folder, split and an optional size limit;
    or, for `synthpose`, which rendered samples (domain, split, size, seed) from which mocap folder."""

    format: str
    annotations: str | None = None  # required by every format but synthpose
    images: str | None = None  # required for h36m and mpi_inf_3dhp; mpii can score annotations without
    split: str = "train"  # h36m: train (istrain = 1), test (istrain = 0) or all; synthpose: train or test
    limit: int = 0  # use only the first `limit` samples (0 = all): quick runs and smoke tests
    domain: str | None = None  # synthpose (required): lab (3D labels) or wild (2D-only in train)
    size: int = 0  # synthpose (required): number of samples, indices 0..size-1
    seed: int = 0  # synthpose: sample i is a function of (seed, domain, split, i)
    mocap: str | None = None  # synthpose: CMU BVH folder; default ../shared/data/cmu_mocap beside the project
    render_size: int = SYNTHPOSE_RENDER_SIZE  # synthpose: rendered image side, px
    cache: bool = False  # synthpose: keep rendered images in memory (size x render_size^2 x 3 bytes)
    repose_limbs: float = 0.0  # synthpose train split: probability each limb is re-posed (synthpose/repose.py)
    fold_elbows: float = 0.0  # synthpose train split: probability each elbow is folded (synthpose/repose.py)
    faces: bool = False  # synthpose: figures with eyes, brows, nose and a neckline (synthpose/body.py)

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ConfigError(f"dataset format {self.format!r} is unknown; choose one of {list(FORMATS)}")
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 0:
            raise ConfigError(f"dataset ({self.format}): limit must be an integer >= 0, got {self.limit!r}")
        if self.format == "synthpose":
            self._check_synthpose()
            return
        changed = sorted(k for k, default in _SYNTHPOSE_KEYS.items() if getattr(self, k) != default)
        if changed:
            raise ConfigError(f"dataset ({self.format}): {changed} apply to format synthpose only; remove them")
        if not isinstance(self.annotations, str) or not self.annotations:
            raise ConfigError(f"dataset ({self.format}): annotations must be a file path, got {self.annotations!r}")
        if self.images is None and self.format in _NEEDS_IMAGES:
            raise ConfigError(f"dataset ({self.format}): `images` (the image folder) is required")
        if self.split not in ("train", "test", "all"):
            raise ConfigError(f"dataset ({self.format}): split must be train, test or all, got {self.split!r}")

    def _check_synthpose(self) -> None:
        if self.annotations is not None or self.images is not None:
            raise ConfigError("dataset (synthpose): samples are rendered, so `annotations` and `images` do not "
                              "apply; give the CMU BVH folder as `mocap` (or leave it out for the default)")
        if self.domain not in ("lab", "wild"):
            raise ConfigError(f"dataset (synthpose): domain must be lab or wild, got {self.domain!r}")
        if self.split not in ("train", "test"):
            raise ConfigError(f"dataset (synthpose): split must be train or test, got {self.split!r}")
        for name, low in (("size", 1), ("seed", 0), ("render_size", 32)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"dataset (synthpose): {name} must be an integer >= {low}, got {value!r}")
        if self.mocap is not None and (not isinstance(self.mocap, str) or not self.mocap):
            raise ConfigError(f"dataset (synthpose): mocap must be a folder path, got {self.mocap!r}")
        for name in ("cache", "faces"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"dataset (synthpose): {name} must be true or false, got {getattr(self, name)!r}")
        for name in ("repose_limbs", "fold_elbows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"dataset (synthpose): {name} must be a probability in [0, 1], got {value!r}")
            if value and self.split != "train":
                raise ConfigError(f"dataset (synthpose): {name} applies to the train split only (test samples "
                                  "keep the mocap's poses); remove it from this dataset")

    @classmethod
    def from_dict(cls, values: dict[str, Any], base: Path | None = None) -> DatasetConfig:
        """From a TOML table; relative paths are taken relative to `base` (the config file's folder)."""
        if not isinstance(values, dict):
            raise ConfigError(f"dataset: expected a table ([[data.train]] or [[data.val]]), got {values!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"dataset: unknown keys {unknown}; known keys are {sorted(known)}")
        if "format" not in values or ("annotations" not in values and values.get("format") != "synthpose"):
            raise ConfigError(f"dataset: `format` and `annotations` are required, got keys {sorted(values)}")
        values = dict(values)
        for key in ("annotations", "images", "mocap"):
            if base is not None and isinstance(values.get(key), str):
                values[key] = str((base / values[key]).resolve()) if not Path(values[key]).is_absolute() \
                    else values[key]
        return cls(**values)


def build(config: DatasetConfig, input_size: int, augment: AugmentConfig | None = None,
          sigma: float = REFERENCE_SIGMA) -> PoseDataset:
    """The dataset `config` describes, producing crops of `input_size` px (augmented when `augment`
    is given and enabled and the dataset is indexed by a training sampler)."""
    common = {"input_size": input_size, "augment": augment, "sigma": sigma}
    if config.format == "h36m":
        from wildpose.training.datasets.h36m import H36MDataset

        dataset: PoseDataset = H36MDataset(config.annotations, config.images, split=config.split, **common)
    elif config.format == "mpii":
        from wildpose.training.datasets.mpii import MPIIDataset

        dataset = MPIIDataset(config.annotations, config.images, **common)
    elif config.format == "mpi_inf_3dhp":
        from wildpose.training.datasets.mpi_inf_3dhp import MPIInf3DHPDataset

        dataset = MPIInf3DHPDataset(config.annotations, config.images, **common)
    elif config.format == "coco":
        from wildpose.training.datasets.coco import CocoDataset

        dataset = CocoDataset(config.annotations, config.images, **common)
    elif config.format == "synthpose":
        from wildpose.training.datasets.synthpose import SynthPoseDataset

        dataset = SynthPoseDataset(config.domain, config.split, config.size, seed=config.seed, mocap=config.mocap,
                                   render_size=config.render_size, cache=config.cache,
                                   repose_limbs=config.repose_limbs, fold_elbows=config.fold_elbows,
                                   faces=config.faces, **common)
    else:
        from wildpose.training.datasets.folder import FolderDataset

        dataset = FolderDataset(config.annotations, config.images, **common)
    if config.limit and config.limit < len(dataset):
        dataset = Limited(dataset, config.limit)
    return dataset


class Limited:
    """The first `limit` samples of a dataset, keeping the `PoseDataset` interface."""

    def __init__(self, dataset: PoseDataset, limit: int) -> None:
        self.dataset, self.limit = dataset, limit

    def __getattr__(self, name: str) -> Any:
        if name == "dataset":  # not set yet (unpickling in a worker): no recursion
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, key):
        index = key[0] if isinstance(key, tuple) else int(key)
        if not 0 <= index < self.limit:
            raise IndexError(f"sample {index} out of range for {self.limit} samples")
        return self.dataset[key]

    def __len__(self) -> int:
        return self.limit

    @property
    def has_3d(self):
        return self.dataset.has_3d[: self.limit]

    def annotations(self, count: int | None = None):
        return self.dataset.annotations(count=self.limit if count is None else min(count, self.limit))
