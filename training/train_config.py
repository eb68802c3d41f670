"""The training run's whole configuration: one frozen dataclass tree read from one TOML file.

`load(path)` parses the file with `tomllib`, resolves relative data paths against the file's folder
and checks every value; an unknown key anywhere is an error that lists the known ones. The tree is
built once by `wildpose train` and passed down whole; checkpoints store `to_dict()` so a run can be
resumed or audited without the original file. configs/train_example.toml documents every field.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wildpose.errors import ConfigError
from wildpose.training.datasets import DatasetConfig
from wildpose.training.datasets.augment import AugmentConfig
from wildpose.training.models.config import REFERENCE_SIGMA, ModelConfig, preset

# The forward pass's arithmetic: bf16 autocast halves a CPU update where the CPU has bfloat16 matrix
# units (AMX, AVX512-BF16; README, Training); fp32 repeats the reference's numbers.
PRECISIONS = ("fp32", "bf16")


def _known(section: str, cls: type, values: Any, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    if not isinstance(values, dict):
        raise ConfigError(f"{section}: expected a table, got {values!r}")
    known = {f.name for f in dataclasses.fields(cls)} | set(extra)
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{section}: unknown keys {unknown}; known keys are {sorted(known)}")
    return dict(values)


def _number(section: str, name: str, value: Any, low: float = 0.0, inclusive: bool = True) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            value < low if inclusive else value <= low):
        bound = f">= {low}" if inclusive else f"> {low}"
        raise ConfigError(f"{section}.{name} must be a number {bound}, got {value!r}")


def _integer(section: str, name: str, value: Any, low: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{section}.{name} must be an integer >= {low}, got {value!r}")


@dataclass(frozen=True)
class OptimizerConfig:
    """RMSprop, the reference's optimizer (pytorch-pose-hg-3d `ref.py`); the learning rate is per stage."""

    alpha: float = 0.99
    eps: float = 1e-8
    momentum: float = 0.0
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        for name in ("alpha", "eps", "momentum", "weight_decay"):
            _number("optimizer", name, getattr(self, name))


STAGE_TRAINS = ("all", "depth")


@dataclass(frozen=True)
class StageConfig:
    """One training stage: its losses, learning-rate schedule and length."""

    name: str
    epochs: int
    lr: float = 2.5e-4
    lr_drop_epochs: tuple[int, ...] = ()  # from each of these epochs (0-based, in the stage) lr /= 10
    depth_weight: float = 0.0  # L_dep weight (paper: 0.1 from stage 2)
    geometric_weight: float = 0.0  # L_geo weight (paper: 0.01 in stage 3)
    mix_3d: float = 0.5  # share of 3D samples in each batch (reference: 50/50)
    steps_per_epoch: int = 0  # 0: one pass over all training samples per epoch
    # The lr rises linearly over the stage's first N steps. Each stage starts RMSprop afresh (as the
    # reference did), and with no gradient statistics yet its first steps are up to 10x lr: from
    # trained weights (`init`, or the stage before) a few of them at 2.5e-4 undo the training (README).
    warmup_steps: int = 0
    # What the stage updates: "all" weights, or "depth": the depth regressor alone, the 2D module
    # frozen with its batch-norm statistics, so its heatmaps (and 2D scores) stay bit for bit; for
    # retuning 3D after a 2D fine-tune moved the features it reads.
    train: str = "all"

    def __post_init__(self) -> None:
        section = f"stages[{self.name!r}]"
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ConfigError(f"stage name must be a short identifier (letters, digits, _), got {self.name!r}")
        _integer(section, "epochs", self.epochs, 1)
        _number(section, "lr", self.lr, 0.0, inclusive=False)
        _number(section, "depth_weight", self.depth_weight)
        _number(section, "geometric_weight", self.geometric_weight)
        _integer(section, "steps_per_epoch", self.steps_per_epoch)
        _integer(section, "warmup_steps", self.warmup_steps)
        if self.train not in STAGE_TRAINS:
            raise ConfigError(f"{section}.train must be one of {', '.join(map(repr, STAGE_TRAINS))}, "
                              f"got {self.train!r}")
        if self.train == "depth" and not (self.depth_weight or self.geometric_weight):
            raise ConfigError(f"{section}: train = \"depth\" updates the depth regressor alone, which "
                              "only the depth and geometric losses reach; give depth_weight or geometric_weight")
        if isinstance(self.mix_3d, bool) or not isinstance(self.mix_3d, (int, float)) or not 0 <= self.mix_3d <= 1:
            raise ConfigError(f"{section}.mix_3d is a share: expected a number in [0, 1], got {self.mix_3d!r}")
        if not isinstance(self.lr_drop_epochs, tuple) or not all(
                isinstance(e, int) and not isinstance(e, bool) and 0 < e < self.epochs for e in self.lr_drop_epochs):
            raise ConfigError(f"{section}.lr_drop_epochs must list epochs between 1 and {self.epochs - 1}, "
                              f"got {self.lr_drop_epochs!r}")

    def lr_at(self, epoch: int, stage_step: int | None = None) -> float:
        """The learning rate of 0-based `epoch` of this stage, at 0-based `stage_step` (counted from the
        stage's start) when given: within the warm-up, a share of it."""
        lr = self.lr * 0.1 ** sum(epoch >= drop for drop in self.lr_drop_epochs)
        if stage_step is not None and stage_step < self.warmup_steps:
            lr *= (stage_step + 1) / self.warmup_steps
        return lr


# paper-facts.md, "Training schedule": 2D only for 60 epochs; + depth (0.1) for ~30-50 epochs with
# lr / 10 near the end; + geometry (0.01) at lr 2.5e-5 for 10 epochs.
PAPER_STAGES = (
    StageConfig(name="heatmaps_2d", epochs=60, lr=2.5e-4),
    StageConfig(name="depth", epochs=40, lr=2.5e-4, lr_drop_epochs=(30,), depth_weight=0.1),
    StageConfig(name="geometric", epochs=10, lr=2.5e-5, depth_weight=0.1, geometric_weight=0.01),
)


@dataclass(frozen=True)
class DataConfig:
    """Training datasets (mixed by each stage's mix_3d) and optional validation datasets."""

    train: tuple[DatasetConfig, ...]
    val: tuple[DatasetConfig, ...] = ()

    def __post_init__(self) -> None:
        if not self.train:
            raise ConfigError("data.train: at least one [[data.train]] dataset is required")


@dataclass(frozen=True)
class LoggingConfig:
    """Where progress goes: metrics.csv always, TensorBoard and tqdm bars optionally (rank 0 only)."""

    every_steps: int = 20  # log the losses every N steps
    tensorboard: bool = True  # needs the `tensorboard` package
    progress: bool = True  # tqdm progress bars (shown on a terminal only)
    val_every_epochs: int = 1  # evaluate on data.val every N epochs (0 = only at each stage's end)

    def __post_init__(self) -> None:
        _integer("logging", "every_steps", self.every_steps, 1)
        _integer("logging", "val_every_epochs", self.val_every_epochs)
        for name in ("tensorboard", "progress"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"logging.{name} must be true or false, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class CheckpointConfig:
    """When resumable checkpoints are written (always: last.pt at each epoch end, and one per stage)."""

    every_steps: int = 0  # also rewrite last.pt every N steps (0 = epoch ends only)
    keep_epochs: bool = False  # keep a file per epoch: epochs/<stage>_e<NNN>.pt

    def __post_init__(self) -> None:
        _integer("checkpoint", "every_steps", self.every_steps)
        if not isinstance(self.keep_epochs, bool):
            raise ConfigError(f"checkpoint.keep_epochs must be true or false, got {self.keep_epochs!r}")


@dataclass(frozen=True)
class TrainConfig:
    """A whole training run; see configs/train_example.toml for every field in context."""

    output: str
    data: DataConfig
    model: ModelConfig = field(default_factory=lambda: preset("paper"))
    stages: tuple[StageConfig, ...] = PAPER_STAGES
    seed: int = 0
    batch_size: int = 6  # per process (the reference's 6 on one GPU)
    workers: int = 2  # DataLoader worker processes per training process
    device: str = "auto"  # auto (cuda if available), cpu, cuda, cuda:N
    heatmap_sigma: float = REFERENCE_SIGMA  # at a 64x64 heatmap; scaled with the heatmap side
    deterministic: bool = True  # deterministic GPU kernels, so a resumed run repeats bit for bit
    precision: str = "fp32"  # fp32, or bf16: the forward pass under bfloat16 autocast (weights stay fp32)
    optimizer: OptimizerConfig = OptimizerConfig()
    augment: AugmentConfig = AugmentConfig()
    logging: LoggingConfig = LoggingConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    init: str | None = None  # start from this checkpoint's weights (same model); optimizer and schedule fresh

    def __post_init__(self) -> None:
        if not isinstance(self.output, str) or not self.output:
            raise ConfigError(f"output must be a folder path, got {self.output!r}")
        if self.init is not None and (not isinstance(self.init, str) or not self.init):
            raise ConfigError(f"init must be a checkpoint path, got {self.init!r}")
        if not self.stages:
            raise ConfigError("stages: at least one [[stages]] table is required")
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ConfigError(f"stages: names must be unique, got {names}")
        _integer("train", "seed", self.seed)
        _integer("train", "batch_size", self.batch_size, 1)
        _integer("train", "workers", self.workers)
        _number("train", "heatmap_sigma", self.heatmap_sigma, 0.0, inclusive=False)
        if not isinstance(self.deterministic, bool):
            raise ConfigError(f"deterministic must be true or false, got {self.deterministic!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not isinstance(self.device, str) or not (self.device in ("auto", "cpu", "cuda")
                                                    or self.device.startswith("cuda:")):
            raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (lists, not tuples) so it can live in a weights_only checkpoint."""
        def plain(value):
            if isinstance(value, (list, tuple)):
                return [plain(v) for v in value]
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items() if v is not None}
            return value
        return plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, values: dict[str, Any], base: Path | None = None) -> TrainConfig:
        """Build and check the tree; relative dataset paths and `output` are resolved against `base`."""
        top = _known("config", cls, values)
        for required in ("output", "data"):
            if required not in top:
                raise ConfigError(f"config: `{required}` is required")
        data = _known("data", DataConfig, top["data"])
        for split in ("train", "val"):
            tables = data.get(split, [])
            if not isinstance(tables, list):
                raise ConfigError(f"data.{split} must be a list of tables ([[data.{split}]]), got {tables!r}")
            data[split] = tuple(DatasetConfig.from_dict(t, base) for t in tables)
        top["data"] = DataConfig(**data)
        if "model" in top:
            model = top["model"]
            if isinstance(model, str):
                top["model"] = preset(model)
            else:
                model = _known("model", ModelConfig, model, extra=("preset",))
                base_config = preset(model.pop("preset", "paper"))
                top["model"] = dataclasses.replace(base_config, **model)
        if "stages" in top:
            if not isinstance(top["stages"], list):
                raise ConfigError("stages must be a list of tables ([[stages]])")
            stages = []
            for table in top["stages"]:
                table = _known("stages", StageConfig, table)
                missing = [k for k in ("name", "epochs") if k not in table]
                if missing:
                    raise ConfigError(f"stages: every [[stages]] table needs {missing}, got keys {sorted(table)}")
                if "lr_drop_epochs" in table:
                    table["lr_drop_epochs"] = tuple(table["lr_drop_epochs"])
                stages.append(StageConfig(**table))
            top["stages"] = tuple(stages)
        for key, sub in (("optimizer", OptimizerConfig), ("augment", AugmentConfig),
                         ("logging", LoggingConfig), ("checkpoint", CheckpointConfig)):
            if key in top:
                top[key] = sub(**_known(key, sub, top[key]))
        for key in ("output", "init"):
            if base is not None and isinstance(top.get(key), str) and not Path(top[key]).is_absolute():
                top[key] = str((base / top[key]).resolve())
        return cls(**top)


def load(path: str | Path) -> TrainConfig:
    """Read and check a TOML training config."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"training config not found: {path}; see configs/train_example.toml")
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8-sig"))  # TOML is UTF-8; Windows editors add a BOM
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return TrainConfig.from_dict(values, base=path.resolve().parent)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except TypeError as exc:  # a wrongly typed table, e.g. `data = 3`
        raise ConfigError(f"{path}: {exc}") from None
