"""The YOLOX-Nano person detector (Megvii, Apache-2.0) through ONNX Runtime, and getting its file.

Preprocessing and decoding follow YOLOX's own ONNX Runtime demo (`demo/ONNXRuntime`): the frame is
letterboxed into 416x416 (scaled to fit, top-left aligned, padded with 114), fed as BGR values 0-255
without mean or std; each of the 3549 anchor points (strides 8, 16, 32) predicts a box centre offset
and log size in stride units, an objectness and 80 class scores (sigmoids already applied). Person
is COCO class 0; overlapping boxes are removed with OpenCV's NMS.

The file is downloaded once from Megvii's release into the cache, with a progress bar and its sha256
checked; `--detector PATH` uses a local copy instead.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
from tqdm import tqdm

from wildpose.engine.cache import cache_dir
from wildpose.errors import DetectorError
from wildpose.stream.detect import Detection

log = logging.getLogger(__name__)

# Megvii's release file (MANIFEST.md: two independent projects record this size and hash).
RELEASE_URL = "https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0/yolox_nano.onnx"
RELEASE_SHA256 = "c789161ed43c8269fcd4e67c67eeeb4e80c622da2eb296a20bc6007bd18a0b7d"
URL_ENV = "WILDPOSE_YOLOX_URL"  # a mirror of the same file (the hash is still checked)
INPUT_SIZE = 416
PAD_VALUE = 114
STRIDES = (8, 16, 32)
NUM_OUTPUTS = 85  # box (4), objectness, 80 COCO classes
PERSON = 0


def fetch(url: str | None = None, sha256: str = RELEASE_SHA256, timeout_s: float = 30.0) -> Path:
    """The cached YOLOX-Nano file, downloaded (with a progress bar) and hash-checked on first use.

    Raises `DetectorError` when it cannot be downloaded (offline) or the download's hash is wrong.
    """
    target = cache_dir("detectors") / f"yolox_nano-{sha256[:12]}.onnx"
    if target.is_file():
        return target
    url = url or os.environ.get(URL_ENV) or RELEASE_URL
    log.info("downloading the YOLOX-Nano person detector from %s", url)
    handle, partial = tempfile.mkstemp(dir=target.parent, prefix=".yolox.", suffix=".partial")
    digest = hashlib.sha256()
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=timeout_s) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc="yolox_nano.onnx") as progress:
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    digest.update(chunk)
                    progress.update(len(chunk))
        if digest.hexdigest() != sha256:
            raise DetectorError(f"the detector downloaded from {url} has sha256 {digest.hexdigest()[:16]}..., "
                                f"expected {sha256[:16]}...; the download is damaged or not Megvii's file. "
                                "Try again, or pass a local copy with --detector PATH")
        os.replace(partial, target)
        return target
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DetectorError(f"cannot download the person detector from {url} ({reason})") from None
    finally:
        Path(partial).unlink(missing_ok=True)


def _grids() -> tuple[np.ndarray, np.ndarray]:
    """`(3549, 2)` anchor cell coordinates and `(3549, 1)` their strides, in output order."""
    cells, strides = [], []
    for stride in STRIDES:
        side = INPUT_SIZE // stride
        x, y = np.meshgrid(np.arange(side), np.arange(side))
        cells.append(np.stack((x, y), axis=2).reshape(-1, 2))
        strides.append(np.full((side * side, 1), stride))
    return np.concatenate(cells).astype(np.float32), np.concatenate(strides).astype(np.float32)


class YoloxDetector:
    """People in a frame, by YOLOX-Nano. `score_threshold` applies to objectness x person score."""

    name = "yolox"

    def __init__(self, model_path: str | Path, score_threshold: float = 0.35, nms_threshold: float = 0.45,
                 threads: int = 1) -> None:
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT's own exception types
            raise DetectorError(f"cannot load the person detector {model_path}: "
                                f"{str(exc).splitlines()[0][:160]}; pass a YOLOX ONNX file") from None
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        shapes = ([i.shape for i in inputs], [o.shape for o in outputs])
        if shapes[0] != [[1, 3, INPUT_SIZE, INPUT_SIZE]] or len(outputs) != 1 or outputs[0].shape[-1] != NUM_OUTPUTS:
            raise DetectorError(f"{model_path} is not a YOLOX detector of COCO classes: inputs {shapes[0]}, "
                                f"outputs {shapes[1]}; expected [1, 3, {INPUT_SIZE}, {INPUT_SIZE}] -> "
                                f"[1, N, {NUM_OUTPUTS}]")
        self._input_name = inputs[0].name
        self._cells, self._strides = _grids()

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """People in an `(H, W, 3)` uint8 RGB frame, best first."""
        height, width = frame.shape[:2]
        ratio = min(INPUT_SIZE / height, INPUT_SIZE / width)
        resized = cv2.resize(frame, (int(width * ratio), int(height * ratio)), interpolation=cv2.INTER_LINEAR)
        padded = np.full((INPUT_SIZE, INPUT_SIZE, 3), PAD_VALUE, np.float32)
        padded[:resized.shape[0], :resized.shape[1]] = resized[:, :, ::-1]  # RGB -> BGR
        (output,) = self._session.run(None, {self._input_name: padded.transpose(2, 0, 1)[None]})
        output = output[0]
        scores = output[:, 4] * output[:, 5 + PERSON]
        keep = scores > self.score_threshold
        if not keep.any():
            return []
        centres = (output[keep, :2] + self._cells[keep]) * self._strides[keep]
        sizes = np.exp(output[keep, 2:4]) * self._strides[keep]
        boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1) / ratio
        scores = scores[keep]
        chosen = cv2.dnn.NMSBoxes([[float(x0), float(y0), float(x1 - x0), float(y1 - y0)]
                                   for x0, y0, x1, y1 in boxes], scores.tolist(),
                                  self.score_threshold, self.nms_threshold)
        found = []
        for index in np.asarray(chosen).ravel():
            box = np.clip(boxes[index].astype(np.float64), 0, [width - 1, height - 1, width - 1, height - 1])
            found.append(Detection(box=box, score=float(scores[index])))
        return sorted(found, key=lambda d: d.score, reverse=True)
