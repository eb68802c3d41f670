"""The one interface every inference backend implements.

The pipeline, the benchmarks and the tests talk to `Backend` only: a batch of crops goes in, decoded
2D joints, confidences and depths come out, whatever runs underneath (ONNX Runtime, PyTorch, later
TensorRT). Input is checked here, at the boundary, so a wrong array fails with a clear message
instead of deep inside a runtime.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from wildpose.engine import frame_crops
from wildpose.engine.metadata import EngineMetadata
from wildpose.errors import InputError


class EngineOutput(NamedTuple):
    """Decoded network outputs for a batch of N crops.

    joints2d_crop: `(N, J, 2)` float32, crop pixels (x right, y down) of the model's input.
    conf: `(N, J)` float32 in [0, 1], heatmap peak value.
    depth: `(N, J)` float32, root-relative depth over half the crop side (weak perspective).
    """

    joints2d_crop: np.ndarray
    conf: np.ndarray
    depth: np.ndarray


class Pending:
    """A submitted batch: `result()` waits for its `EngineOutput` (once)."""

    def __init__(self, collect: Callable[[], EngineOutput]) -> None:
        self._collect = collect

    @classmethod
    def finished(cls, output: EngineOutput) -> Pending:
        return cls(lambda: output)

    def result(self) -> EngineOutput:
        return self._collect()


class Backend(abc.ABC):
    """A loaded model that turns `(N, 3, S, S)` float32 RGB crops in [0, 1] into `EngineOutput`."""

    name: str
    device: str
    metadata: EngineMetadata
    # Whether `submit_crops`/`submit_frames` return before the batch has run, so the caller can
    # prepare the next batch meanwhile. With it, `staging` and `frame_staging` hand out a second
    # buffer while one batch is pending, and refuse a third before the oldest's `result()`.
    overlaps = False

    @property
    def input_size(self) -> int:
        return self.metadata.input_size

    @property
    def input_shape(self) -> tuple[None, int, int, int]:
        """`(batch, 3, S, S)`; the batch dimension is dynamic (None)."""
        return (None, 3, self.input_size, self.input_size)

    @property
    def output_shapes(self) -> dict[str, tuple]:
        joints = len(self.metadata.joints)
        return {"joints2d_crop": (None, joints, 2), "conf": (None, joints), "depth": (None, joints)}

    def describe(self) -> str:
        flip = ", flip test (each crop also run mirrored)" if self.metadata.flip_test else ""
        return (f"{self.name} on {self.device}, input {self.input_shape}, "
                f"{self.metadata.model_config}{flip}, {self.metadata.weights}")

    def infer(self, batch: np.ndarray) -> EngineOutput:
        """Run the model on a batch; `batch` must be float32 `(N, 3, S, S)`, N >= 1."""
        check_batch(batch, self.input_size)
        return self._infer(np.ascontiguousarray(batch))

    def staging(self, rows: int) -> np.ndarray:
        """A writable uint8 `(rows, S, S, 3)` buffer to cut or copy crops into before `infer_crops`
        (its prefix); reused between calls. GPU backends hand out pinned memory they upload from
        directly, so the crops are copied once on their way to the device."""
        size = self.input_size
        buffer = getattr(self, "_staging_buffer", None)
        if buffer is None or len(buffer) < rows:
            buffer = self._staging_buffer = np.empty((rows, size, size, 3), np.uint8)
        return buffer[:rows]

    def infer_crops(self, crops: np.ndarray) -> EngineOutput:
        """Run the model on uint8 RGB crops `(N, S, S, 3)` as the pipeline cuts them; GPU backends
        upload them as they are and normalise on the device."""
        check_crops(crops, self.input_size)
        return self._infer(crops_to_input(crops))

    def frame_staging(self, nbytes: int) -> np.ndarray:
        """A writable flat uint8 buffer of `nbytes` to read whole frames into before `infer_frames`
        (reused between calls; pinned memory on a GPU, so each frame is uploaded asynchronously)."""
        buffer = getattr(self, "_frame_staging_buffer", None)
        if buffer is None or len(buffer) < nbytes:
            buffer = self._frame_staging_buffer = np.empty(nbytes, np.uint8)
        return buffer[:nbytes]

    def infer_frames(self, frames: list[np.ndarray], affines: list[np.ndarray]) -> EngineOutput:
        """Run the model on the person crops of whole frames: `frames[i]` uint8 RGB `(H, W, 3)`, its
        people's frame -> crop maps `affines[i]` `(k, 2, 3)`; outputs in that order. Here the crops are
        cut on the host (OpenCV); the torch backend cuts them where it runs (the GPU on CUDA)."""
        total = check_frames(frames, affines)
        crops = self.staging(total)
        row = 0
        for frame, maps in zip(frames, affines, strict=True):
            for affine in maps:
                frame_crops.cut_on_host(frame, affine, self.input_size, out=crops[row])
                row += 1
        return self.infer_crops(crops)

    def submit_crops(self, crops: np.ndarray) -> Pending:
        """`infer_crops`, its result waited for with `Pending.result()`; the caller may prepare the next
        batch meanwhile when the backend `overlaps` (here: run at once)."""
        return Pending.finished(self.infer_crops(crops))

    def submit_frames(self, frames: list[np.ndarray], affines: list[np.ndarray]) -> Pending:
        """`infer_frames`, its result waited for with `Pending.result()` (see `submit_crops`)."""
        return Pending.finished(self.infer_frames(frames, affines))

    @abc.abstractmethod
    def _infer(self, batch: np.ndarray) -> EngineOutput:
        """Backend-specific inference on an already checked, contiguous batch."""

    def prepare(self) -> None:  # noqa: B027 (optional hook: only compiled backends need it)
        """Do the slow one-time work (compiling, capturing) now rather than on the first batch."""

    def close(self) -> None:  # noqa: B027 (optional hook: most runtimes free themselves)
        """Release the runtime's resources; the backend cannot be used afterwards."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def crops_to_input(crops: np.ndarray) -> np.ndarray:
    """`(N, S, S, 3)` uint8 RGB -> `(N, 3, S, S)` float32 in [0, 1], the engines' input."""
    return np.ascontiguousarray(crops.transpose(0, 3, 1, 2), dtype=np.float32) * np.float32(1.0 / 255.0)


def check_crops(crops: object, input_size: int) -> None:
    """Raise `InputError` unless `crops` is a uint8 array of shape `(N, input_size, input_size, 3)`."""
    expected = f"(N, {input_size}, {input_size}, 3) uint8 RGB"
    if not isinstance(crops, np.ndarray) or crops.dtype != np.uint8 or crops.ndim != 4 \
            or crops.shape[0] < 1 or crops.shape[1:] != (input_size, input_size, 3):
        found = f"{crops.dtype} {crops.shape}" if isinstance(crops, np.ndarray) else type(crops).__name__
        raise InputError(f"engine crops must be {expected}, got {found}")


def check_frames(frames: object, affines: object) -> int:
    """Raise `InputError` unless `frames` are uint8 `(H, W, 3)` arrays with one `(k, 2, 3)` array of
    crop maps each and at least one crop in all; returns the number of crops."""
    if not isinstance(frames, (list, tuple)) or not isinstance(affines, (list, tuple)) \
            or len(frames) != len(affines):
        raise InputError("engine frames: give a list of frames and a list of crop maps, one per frame")
    for frame, maps in zip(frames, affines, strict=True):
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            found = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise InputError(f"engine frames must be (H, W, 3) uint8 RGB, got {found}")
        if not isinstance(maps, np.ndarray) or maps.ndim != 3 or maps.shape[1:] != (2, 3):
            found = maps.shape if isinstance(maps, np.ndarray) else type(maps).__name__
            raise InputError(f"engine crop maps must be (k, 2, 3) arrays, one per frame, got {found}")
    total = sum(len(maps) for maps in affines)
    if total < 1:
        raise InputError("engine frames: no crop to cut (every frame's crop maps are empty)")
    return total


def check_batch(batch: object, input_size: int) -> None:
    """Raise `InputError` unless `batch` is a float32 array of shape `(N, 3, input_size, input_size)`."""
    expected = f"(N, 3, {input_size}, {input_size}) float32 RGB in [0, 1]"
    if not isinstance(batch, np.ndarray):
        raise InputError(f"engine input must be a numpy array {expected}, got {type(batch).__name__}")
    if batch.dtype != np.float32:
        raise InputError(f"engine input must be float32, got {batch.dtype}; convert with "
                         "batch.astype(np.float32) / 255 from uint8 images")
    if batch.ndim != 4 or batch.shape[0] < 1 or batch.shape[1:] != (3, input_size, input_size):
        raise InputError(f"engine input must have shape {expected}, got {batch.shape}")
