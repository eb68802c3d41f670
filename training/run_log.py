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

# data_s / update_s: seconds per step spent waiting for the data loader / in the update (moving the batch
# to the device, forward, backward, optimiser), averaged over the logging interval: which side to speed up.
COLUMNS = ("kind", "stage", "epoch", "step", "global_step", "lr", "loss", "heatmap", "depth", "geometric",
           "dataset", "metric", "value", "data_s", "update_s")


class RunLog:
    """Appends rows to `<output>/metrics.csv` and scalars to `<output>/tensorboard/`."""

    def __init__(self, output: Path, tensorboard: bool, enabled: bool = True) -> None:
        self.enabled = enabled
        self.writer = None
        self.path = Path(output) / "metrics.csv"
        self.columns = COLUMNS
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_file():
            # A resumed run appends under the file's own header (an older version's may lack columns).
            with self.path.open(newline="") as handle:
                self.columns = tuple(next(csv.reader(handle), COLUMNS))
        else:
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
            csv.writer(handle).writerow([values.get(c, "") for c in self.columns])

    def train(self, stage: str, epoch: int, step: int, global_step: int, lr: float,
              losses: dict[str, float], seconds: dict[str, float] | None = None) -> None:
        """The losses averaged over the steps since the last call (and over the ranks); `seconds`:
        this rank's `data_s` and `update_s` per step over the same steps."""
        if not self.enabled:
            return
        seconds = seconds or {}
        self._row(kind="train", stage=stage, epoch=epoch, step=step, global_step=global_step, lr=f"{lr:.6g}",
                  **{k: f"{v:.8g}" for k, v in losses.items()}, **{k: f"{v:.4g}" for k, v in seconds.items()})
        if self.writer is not None:
            for name, value in losses.items():
                self.writer.add_scalar(f"train/{name}", value, global_step)
            self.writer.add_scalar("train/lr", lr, global_step)
            for name, value in seconds.items():
                self.writer.add_scalar(f"time/{name}", value, global_step)

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
