"""The DataLoader that training and evaluation read through: worker processes that each keep to one core.

Workers render (SynthPose) or decode and warp images with OpenCV, and OpenCV starts a pool of a thread
per core in every process that calls it: N workers on N cores made N x N threads. mmengine's
`set_multi_processing` turns OpenCV's threads off for the same reason. The setting has to be made in
this process before the workers fork, which inherit it: set in a forked worker after this process's
own pool ran, it deadlocks.
"""

from __future__ import annotations

from typing import Any

from torch.utils.data import DataLoader

TRAINER_OPENCV_THREADS = 1


def data_loader(dataset: Any, workers: int, opencv_threads: int | None = TRAINER_OPENCV_THREADS,
                **kwargs: Any) -> DataLoader:
    """A `DataLoader` over `dataset` with `workers` processes (`kwargs` as DataLoader's). With workers,
    OpenCV runs on `opencv_threads` (None: its default) in this process and its workers, for the rest
    of this process: it does no image work of its own while workers do it."""
    if workers > 0 and opencv_threads is not None:
        import cv2

        cv2.setNumThreads(opencv_threads)
    return DataLoader(dataset, num_workers=workers, **kwargs)
