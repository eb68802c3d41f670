"""Logging set-up shared by the command line and every pipeline process.

Logs go to stderr (stdout carries results: tables, JSON lines). While the model in use has untrained
weights, every log line says so, so no one mistakes its output for a real pose.
"""

from __future__ import annotations

import logging

_FORMAT = "%(asctime)s %(levelname)-7s %(processName)s %(name)s: %(message)s"
# Libraries whose INFO/WARNING chatter is not actionable for a user (e.g. the ONNX exporter's
# "torchvision is not installed" notes).
_QUIET_LIBRARIES = ("onnx_ir", "onnxscript", "torch.onnx", "libav")
_weights_label: str | None = None


class _WeightsLabel(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _weights_label and "untrained weights" not in record.getMessage():
            record.msg = f"{record.getMessage()} [{_weights_label}]"
            record.args = ()
        return True


def setup(verbose: bool = False) -> None:
    """Configure the root logger once per process (INFO, or DEBUG with `verbose`)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(_FORMAT, datefmt="%H:%M:%S"))
    handler.addFilter(_WeightsLabel())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for name in _QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.ERROR)


def label_untrained(weights: str | None) -> None:
    """Tag every later log line with "untrained weights" when `weights` describes untrained ones."""
    global _weights_label
    _weights_label = "untrained weights" if weights and "untrained" in weights else None
