"""The loader's worker processes keep OpenCV to one thread each, and start even after this process's
own OpenCV pool ran (setting the threads inside a forked worker then deadlocks)."""

import cv2
import numpy as np
import pytest

from wildpose.training.datasets.loader import data_loader


class _OpenCvThreads:
    """Each item: the OpenCV thread count its worker process sees, after a blur that would use them."""

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> int:
        cv2.GaussianBlur(np.zeros((512, 512, 3), np.uint8), (15, 15), 4)
        return cv2.getNumThreads()


@pytest.fixture
def opencv_pool_ran():
    """This process's OpenCV pool has run on two threads; its setting is restored afterwards."""
    before = cv2.getNumThreads()
    cv2.setNumThreads(2)
    cv2.GaussianBlur(np.zeros((1024, 1024, 3), np.uint8), (31, 31), 8)
    yield
    cv2.setNumThreads(before)


def test_workers_run_opencv_on_one_thread_after_this_process_used_its_pool(opencv_pool_ran):
    seen = [int(n) for batch in data_loader(_OpenCvThreads(), workers=2, batch_size=2, timeout=60) for n in batch]
    assert seen == [1] * 8


def test_opencv_keeps_its_setting_when_asked_or_without_workers(opencv_pool_ran):
    seen = [int(n) for batch in data_loader(_OpenCvThreads(), workers=2, opencv_threads=None, batch_size=2,
                                            timeout=60) for n in batch]
    assert seen == [2] * 8
    assert [int(n) for batch in data_loader(_OpenCvThreads(), workers=0, batch_size=4) for n in batch] == [2] * 8
