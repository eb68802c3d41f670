"""Where a training run's numbers go: metrics.csv (always) and TensorBoard (optional), rank 0 only.

The CSV is the record a script or a test reads back (one row per logged step or evaluation, columns
fixed up front); TensorBoard is for looking at curves. A resumed run appends to the same files.
"""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path

from wildpose.errors import ConfigError

log = logging.getLogger(__name__)

COLUMNS = ("kind", "stage", "epoch", "step", "global_step", "lr", "loss", "heatmap", "depth", "geometric",
           "dataset", "metric", "value")


class RunLog:
    """Appends rows to `<output>/metrics.csv` and scalars to `<output>/tensorboard/`."""

    def __init__(self, output: Path, tensorboard: bool, enabled: bool = True) -> None:
        self.enabled = enabled
        self.writer = None
        self.path = Path(output) / "metrics.csv"
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.is_file():
            with self.path.open("w", newline="") as handle:
                csv.writer(handle).writerow(COLUMNS)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ConfigError("logging.tensorboard = true needs the tensorboard package: install "
                                  "`tensorboard==2.21.0` (pip install -e '.[train]') or set "
                                  "logging.tensorboard = false") from None
            self.writer = SummaryWriter(str(Path(output) / "tensorboard"))

    def _row(self, **values) -> None:
        with self.path.open("a", newline="") as handle:
            csv.writer(handle).writerow([values.get(c, "") for c in COLUMNS])

    def train(self, stage: str, epoch: int, step: int, global_step: int, lr: float,
              losses: dict[str, float]) -> None:
        """The losses averaged over the steps since the last call (and over the ranks)."""
        if not self.enabled:
            return
        self._row(kind="train", stage=stage, epoch=epoch, step=step, global_step=global_step, lr=f"{lr:.6g}",
                  **{k: f"{v:.8g}" for k, v in losses.items()})
        if self.writer is not None:
            for name, value in losses.items():
                self.writer.add_scalar(f"train/{name}", value, global_step)
            self.writer.add_scalar("train/lr", lr, global_step)

    def evaluation(self, stage: str, epoch: int, global_step: int, dataset: str,
                   results: dict[str, float]) -> None:
        if not self.enabled:
            return
        for name, value in results.items():
            self._row(kind="eval", stage=stage, epoch=epoch, global_step=global_step, dataset=dataset,
                      metric=name, value=f"{value:.6g}")
            if self.writer is not None and math.isfinite(value):
                self.writer.add_scalar(f"eval/{dataset}/{name}", value, global_step)
        log.info("eval %s after %s epoch %d: %s", dataset, stage, epoch,
                 ", ".join(f"{k} {v:.4g}" for k, v in results.items()))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
            self.writer = None


def read(path: str | Path) -> list[dict[str, str]]:
    """The rows of a metrics.csv, as dicts."""
    with Path(path).open(newline="") as handle:
        return list(csv.DictReader(handle))
