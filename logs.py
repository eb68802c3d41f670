"""Logging set-up shared by the command line and every pipeline process.

Logs go to stderr (stdout carries results: tables, JSON lines). While the model in use has untrained
weights, every log line says so, so no one mistakes its output for a real pose.

`WILDPOSE_LOG_FORMAT=json` (or `wildpose --log-format json`, which sets it for every process the
command starts) writes one JSON object a line instead, for log collectors (Loki, Elasticsearch,
Cloud Logging): `time` (UTC, ISO 8601, milliseconds), `level`, `process`, `logger`, `message`, and
`exception` when there is a traceback. A command's final error line comes the same way.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import sys

_FORMAT = "%(asctime)s %(levelname)-7s %(processName)s %(name)s: %(message)s"
# Libraries whose INFO/WARNING chatter is not actionable for a user (e.g. the ONNX exporter's
# "torchvision is not installed" notes).
_QUIET_LIBRARIES = ("onnx_ir", "onnxscript", "torch.onnx", "libav")
_weights_label: str | None = None
FORMAT_VARIABLE = "WILDPOSE_LOG_FORMAT"
FORMATS = ("text", "json")


class _WeightsLabel(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _weights_label and "untrained weights" not in record.getMessage():
            record.msg = f"{record.getMessage()} [{_weights_label}]"
            record.args = ()
        return True


class _JsonLines(logging.Formatter):
    """One JSON object per record, a line each (a message's own newlines are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": _utc(record.created), "level": record.levelname, "process": record.processName,
                 "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def _utc(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _requested() -> str:
    return os.environ.get(FORMAT_VARIABLE, "text").strip().lower()


def log_format() -> str:
    """`text` or `json`, from WILDPOSE_LOG_FORMAT (anything else counts as text; the command line
    refuses it first, see `check_format`)."""
    return _requested() if _requested() in FORMATS else "text"


def check_format() -> str | None:
    """The one line for a WILDPOSE_LOG_FORMAT that is neither text nor json, else None."""
    if _requested() in FORMATS:
        return None
    return f"{FORMAT_VARIABLE} must be text or json, got {os.environ[FORMAT_VARIABLE]!r}"


def error_line(message: str) -> None:
    """A command's final one-line error on stderr: as it is in text, a JSON record with json logs."""
    if log_format() == "json":
        record = logging.LogRecord("wildpose", logging.ERROR, __file__, 0, message, None, None)
        record.processName = "MainProcess"
        message = _JsonLines().format(record)
    print(message, file=sys.stderr)


def setup(verbose: bool = False) -> None:
    """Configure the root logger once per process (INFO, or DEBUG with `verbose`), in text or JSON
    lines (WILDPOSE_LOG_FORMAT)."""
    handler = logging.StreamHandler()
    handler.setFormatter(_JsonLines() if log_format() == "json" else logging.Formatter(_FORMAT, datefmt="%H:%M:%S"))
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
