"""Finding people when there is no track to follow: at start, every N frames, and after a loss.

`yolox` (the default) is YOLOX-Nano through ONNX Runtime (`stream/yolox.py`), downloaded once; a
path to a YOLOX ONNX file uses that file. `hog` is OpenCV's built-in HOG + linear SVM people
detector (Dalal & Triggs 2005), weaker but needing no file. `none` treats the whole frame as one
person's region, for clips where one person fills the frame, and is what `yolox` falls back to when
the detector cannot be downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from wildpose.stream import crop


@dataclass(frozen=True)
class Detection:
    box: np.ndarray  # (4,) x0, y0, x1, y1 frame pixels, tight around the person
    score: float  # [0, 1]
    region: np.ndarray | None = None  # the square to crop; None: the box squared and padded

# HOG's 64x128 window holds a person about 96 px tall and 32 px wide (Dalal & Triggs 2005).
_HOG_PERSON_HEIGHT = 96 / 128
_HOG_PERSON_WIDTH = 32 / 64


class HogDetector:
    """OpenCV's default people detector on a copy of the frame scaled to at most `max_side` pixels.

    HOG's window is 64x128 pixels, so at a 480-pixel frame it finds people at least about a quarter of
    the frame tall. Its SVM margin m is mapped to a score 1 - exp(-m) in [0, 1).
    """

    name = "hog"

    def __init__(self, max_side: int = 480) -> None:
        self.max_side = max_side
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """People in an `(H, W, 3)` uint8 RGB frame, best first."""
        height, width = frame.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        small = cv2.resize(frame, (round(width * scale), round(height * scale)),
                           interpolation=cv2.INTER_AREA) if scale < 1.0 else frame
        rects, weights = self._hog.detectMultiScale(small, winStride=(8, 8), padding=(8, 8), scale=1.05)
        found = []
        for (x, y, w, h), margin in zip(np.asarray(rects).reshape(-1, 4), np.asarray(weights).ravel(), strict=True):
            cx, cy = (x + w / 2) / scale, (y + h / 2) / scale
            half_w, half_h = w * _HOG_PERSON_WIDTH / 2 / scale, h * _HOG_PERSON_HEIGHT / 2 / scale
            box = np.array([cx - half_w, cy - half_h, cx + half_w, cy + half_h])
            found.append(Detection(box=box, score=float(1.0 - np.exp(-max(float(margin), 0.0)))))
        return sorted(found, key=lambda d: d.score, reverse=True)


class WholeFrameDetector:
    """The whole frame is one person's region (score 1), cropped as it is, without padding."""

    name = "none"

    def detect(self, frame: np.ndarray) -> list[Detection]:
        height, width = frame.shape[:2]
        box = crop.full_frame_box(width, height)
        return [Detection(box=box, score=1.0, region=crop.square_box(box))]


@dataclass(frozen=True)
class DetectorSpec:
    """A detector chosen and checked by the supervisor, built again in each preprocess process."""

    kind: str  # "yolox", "hog" or "none"
    path: str | None = None  # the YOLOX file
    score_threshold: float = 0.35
    max_side: int = 480  # HOG: frames are scaled to this longest side


def resolve(name: str, score_threshold: float, max_side: int) -> DetectorSpec:
    """The detector `name` stands for ("yolox", "hog", "none" or a YOLOX file), checked to load.

    "yolox" downloads the file on first use; offline, it logs one line and falls back to "none".
    """
    import logging

    from wildpose.errors import DetectorError
    from wildpose.stream import yolox

    if name in ("hog", "none"):
        return DetectorSpec(name, None, score_threshold, max_side)
    if name == "yolox":
        try:
            path = str(yolox.fetch())
        except DetectorError as exc:
            logging.getLogger(__name__).warning("%s; running without a detector: the whole frame is one "
                                                "person (pass --detector PATH to a local yolox_nano.onnx)", exc)
            return DetectorSpec("none", None, score_threshold, max_side)
    else:
        path = name
    yolox.YoloxDetector(path, score_threshold)  # a corrupt or wrong file fails here, in one line
    return DetectorSpec("yolox", path, score_threshold, max_side)


def build(spec: DetectorSpec):
    if spec.kind == "yolox":
        from wildpose.stream.yolox import YoloxDetector

        return YoloxDetector(spec.path, spec.score_threshold)
    if spec.kind == "hog":
        return HogDetector(spec.max_side)
    return WholeFrameDetector()
