"""Batches submitted back to back: the torch backend runs one while the caller prepares the next
(a worker thread on the CPU, CUDA streams on a GPU) and hands out a second staging buffer meanwhile."""

from __future__ import annotations

import av
import numpy as np
import pytest

from wildpose.engine import default_model, load
from wildpose.engine.base import Pending
from wildpose.stream import crop
from wildpose.tools import democlip


@pytest.fixture(scope="module")
def engine():
    with load(default_model.checkpoint_path(), "torch", device="cpu") as torch_engine:
        yield torch_engine


@pytest.fixture(scope="module")
def frames():
    with av.open(str(democlip.BUNDLED_CLIP)) as container:
        decoded = container.decode(video=0)
        return [next(decoded).to_ndarray(format="rgb24") for _ in range(3)]


def people_maps(frame: np.ndarray, size: int) -> np.ndarray:
    height, width = frame.shape[:2]
    boxes = [crop.full_frame_box(width, height), np.array([width * 0.3, 10.0, width * 0.7, height - 10.0])]
    return np.stack([crop.box_to_affine(crop.square_box(box, 1.25), size) for box in boxes])


def assert_same(got, expected) -> None:
    for name in ("joints2d_crop", "conf", "depth"):
        np.testing.assert_array_equal(getattr(got, name), getattr(expected, name))


def test_batches_submitted_back_to_back_come_out_each_as_if_run_alone(engine, frames):
    size = engine.input_size
    maps = people_maps(frames[0], size)
    crops = [np.stack([crop.cut(frame, affine, size) for affine in maps]) for frame in frames]
    alone = [engine.infer_crops(batch) for batch in crops]

    first = engine.staging(2)
    first[...] = crops[0]
    pending_first = engine.submit_crops(first)
    second = engine.staging(2)  # while the first is pending: the other buffer
    assert not np.shares_memory(first, second)
    second[...] = crops[1]
    pending_second = engine.submit_crops(second)
    assert_same(pending_first.result(), alone[0])
    third = engine.staging(2)  # the first's buffer is free again
    assert np.shares_memory(first, third)
    third[...] = crops[2]
    pending_third = engine.submit_crops(third)
    assert_same(pending_second.result(), alone[1])
    assert_same(pending_third.result(), alone[2])


def test_crops_and_whole_frames_interleave(engine, frames):
    size = engine.input_size
    maps = [people_maps(frame, size) for frame in frames]
    from_frames = engine.infer_frames(frames, maps)
    some_crops = np.stack([crop.cut(frames[1], affine, size) for affine in maps[1]])
    from_crops = engine.infer_crops(some_crops)

    staging = engine.frame_staging(sum(frame.nbytes for frame in frames))  # the pipeline's way
    staged, offset = [], 0
    for frame in frames:
        staged.append(staging[offset:offset + frame.nbytes].reshape(frame.shape))
        staged[-1][...] = frame
        offset += frame.nbytes
    pending_frames = engine.submit_frames(staged, maps)
    pending_crops = engine.submit_crops(some_crops)  # not in a staging buffer: copied into the free one
    assert_same(pending_frames.result(), from_frames)
    assert_same(pending_crops.result(), from_crops)
    assert from_frames.depth.shape == (6, 16)


def test_a_third_batch_waits_for_the_oldest_to_be_collected(engine, frames):
    size = engine.input_size
    batch = np.stack([crop.cut(frames[0], affine, size) for affine in people_maps(frames[0], size)])
    pending = [engine.submit_crops(batch), engine.submit_crops(batch)]
    with pytest.raises(RuntimeError, match="call result"):
        engine.staging(2)
    with pytest.raises(RuntimeError, match="call result"):
        engine.submit_frames(frames[:1], [people_maps(frames[0], size)])
    outputs = [p.result() for p in pending]
    assert_same(outputs[0], outputs[1])
    with pytest.raises(RuntimeError, match="collected already"):
        pending[0].result()
    engine.infer_crops(batch)  # and the engine goes on


def test_backends_that_do_not_overlap_run_at_submit(frames):
    with load(default_model.BUNDLED_ONNX, "onnxruntime", device="cpu") as onnx_engine:
        size = onnx_engine.input_size
        batch = np.stack([crop.cut(frames[0], affine, size) for affine in people_maps(frames[0], size)])
        assert not onnx_engine.overlaps
        pending = onnx_engine.submit_crops(batch)
        assert isinstance(pending, Pending)
        assert_same(pending.result(), onnx_engine.infer_crops(batch))
