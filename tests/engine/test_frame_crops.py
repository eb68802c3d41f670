"""Person crops cut with torch (where the model runs) match OpenCV's, and every backend takes whole
frames with their people's crop maps."""

import av
import numpy as np
import pytest
import torch

from wildpose.engine import frame_crops, load
from wildpose.engine.graph import DecodedPoseNet
from wildpose.engine.torch_runner import TorchRunner
from wildpose.errors import InputError
from wildpose.stream import crop
from wildpose.training import checkpoint

SIZE = 64  # the tiny preset's input


@pytest.fixture(scope="module")
def frames(walker_clip) -> list[np.ndarray]:
    """Three decoded frames of the generated clip (640 x 360)."""
    with av.open(str(walker_clip)) as container:
        decoded = container.decode(video=0)
        return [next(decoded).to_ndarray(format="rgb24") for _ in range(3)]


def maps(size: int) -> np.ndarray:
    """Crop maps of boxes inside the frame, over its top-left and bottom-right corners, a small one
    (scaled up) and one larger than the frame."""
    boxes = [(250, 40, 390, 340), (-60, -80, 120, 150), (560, 250, 700, 420), (300, 150, 320, 170),
             (-100, -300, 740, 660)]
    return np.stack([crop.box_to_affine(crop.square_box(np.array(box, float), 1.25), size) for box in boxes])


@pytest.mark.parametrize("size", [SIZE, 192, 256])
def test_torch_crops_match_opencv_within_a_grey_level_or_so(frames, size):
    affines = maps(size)
    for frame in frames:
        opencv = np.stack([crop.cut(frame, affine, size) for affine in affines]).astype(int)
        torch_cut = frame_crops.cut_with_torch(torch.from_numpy(frame), affines, size).numpy()
        assert torch_cut.shape == (len(affines), size, size, 3) and torch_cut.dtype == np.uint8
        difference = np.abs(torch_cut.astype(int) - opencv)
        # OpenCV interpolates with 1/32-pixel fixed-point weights; torch in float32
        assert difference.mean() < 0.05 and (difference > 1).mean() < 0.005 and difference.max() <= 3, \
            (difference.mean(), (difference > 1).mean(), difference.max())


def gathered(frames: list[np.ndarray], affines: list[np.ndarray], size: int, *, gap: int = 0) -> np.ndarray:
    """`gather_crops` of `frames` laid one after another in one flat buffer, `gap` bytes apart."""
    offsets, end = [], gap
    for frame in frames:
        offsets.append(end)
        end += frame.nbytes + gap
    flat = np.full(end, 255, np.uint8)  # white between frames: nothing outside a frame may leak in
    for frame, offset in zip(frames, offsets, strict=True):
        flat[offset:offset + frame.nbytes] = frame.reshape(-1)
    table = frame_crops.crop_table([frame.shape for frame in frames], offsets, affines)
    return frame_crops.gather_crops(torch.from_numpy(flat), torch.from_numpy(table), size).numpy()


@pytest.mark.parametrize("size", [SIZE, 256])
def test_gathered_crops_are_the_grid_sampled_ones_within_a_grey_level(frames, size):
    """The GPU's batched cut and the CPU's per-frame one compute the same bilinear sample (in float32,
    by different arithmetic, so a rounding may land one grey level apart)."""
    affines = maps(size)
    got = gathered(frames, [affines] * len(frames), size)
    expected = np.concatenate([frame_crops.cut_with_torch(torch.from_numpy(frame), affines, size).numpy()
                               for frame in frames])
    assert got.shape == expected.shape and got.dtype == np.uint8
    difference = np.abs(got.astype(int) - expected)
    assert difference.max() <= 1 and (difference > 0).mean() < 0.001, ((difference > 0).mean(), difference.max())
    opencv = np.stack([crop.cut(frame, affine, size) for frame in frames for affine in affines]).astype(int)
    difference = np.abs(got.astype(int) - opencv)
    assert difference.mean() < 0.05 and (difference > 1).mean() < 0.005 and difference.max() <= 3


def test_gathering_takes_frames_of_any_size_anywhere_in_the_buffer_and_more_crops_than_a_chunk(frames):
    """Frames of different sizes at odd byte offsets, 70 crops in all (more than `GATHER_CHUNK`):
    every crop is the one cut from its frame alone, in order."""
    small = np.ascontiguousarray(frames[1][40:241, 100:421])  # 201 x 321: odd sizes
    tall = np.ascontiguousarray(frames[2].transpose(1, 0, 2))  # 640 x 360
    people = [maps(SIZE)[:3], maps(SIZE)[3:4], np.concatenate([maps(SIZE)] * 13)]
    assert sum(len(p) for p in people) > frame_crops.GATHER_CHUNK
    got = gathered([frames[0], small, tall], people, SIZE, gap=7)
    alone = np.concatenate([gathered([frame], [p], SIZE)
                            for frame, p in zip([frames[0], small, tall], people, strict=True)])
    np.testing.assert_array_equal(got, alone)
    expected = np.concatenate([frame_crops.cut_with_torch(torch.from_numpy(frame), p, SIZE).numpy()
                               for frame, p in zip([frames[0], small, tall], people, strict=True)])
    assert np.abs(got.astype(int) - expected).max() <= 1


def test_outside_the_frame_is_black_in_both(frames):
    beyond = crop.box_to_affine(np.array([1000.0, 1000.0, 1100.0, 1100.0]), SIZE)[None]
    assert not frame_crops.cut_with_torch(torch.from_numpy(frames[0]), beyond, SIZE).any()
    assert not crop.cut(frames[0], beyond[0], SIZE).any()
    assert not gathered([frames[0]], [beyond], SIZE, gap=5).any()


@pytest.fixture(scope="module")
def tiny_engines(preset_models):
    checkpoint_path, onnx_path = preset_models("tiny")
    return load(onnx_path, "onnxruntime"), load(checkpoint_path, "torch", device="cpu")


def test_every_backend_takes_whole_frames_and_keeps_their_people_in_order(tiny_engines, frames):
    affines = maps(SIZE)
    per_frame = [affines[:3], affines[3:4], affines[4:]]  # 3, 1 and 1 people
    onnxruntime_engine, torch_engine = tiny_engines
    # onnxruntime cuts on the host (OpenCV), exactly as the preprocess stage does
    host_crops = np.stack([crop.cut(frame, affine, SIZE) for frame, people in zip(frames, per_frame, strict=True)
                           for affine in people])
    expected = onnxruntime_engine.infer_crops(host_crops)
    got = onnxruntime_engine.infer_frames(frames, per_frame)
    for name in ("joints2d_crop", "conf", "depth"):
        np.testing.assert_array_equal(getattr(got, name), getattr(expected, name))
    # torch cuts with grid_sample where it runs, in the same order
    torch_crops = np.concatenate([frame_crops.cut_with_torch(torch.from_numpy(frame), people, SIZE).numpy()
                                  for frame, people in zip(frames, per_frame, strict=True)])
    expected = torch_engine.infer_crops(torch_crops)
    got = torch_engine.infer_frames(frames, per_frame)
    for name in ("joints2d_crop", "conf", "depth"):
        np.testing.assert_allclose(getattr(got, name), getattr(expected, name), rtol=1e-5, atol=1e-5)
    assert got.depth.shape == (5, 16)


@pytest.mark.parametrize("batched", [True, False])
def test_the_torch_runner_feeds_the_network_the_crops_it_cuts_both_ways(preset_models, frames, batched):
    """The runner cuts whole frames' crops all at once (`gather_crops`, its way on CUDA) or one
    `grid_sample` a frame (its way on the CPU); either way the network sees exactly those crops."""
    network, _ = checkpoint.load(preset_models("tiny")[0])
    runner = TorchRunner(DecodedPoseNet(network).eval(), SIZE, torch.float32, device="cpu", batched_crops=batched)
    try:
        per_frame = [maps(SIZE)[:3], maps(SIZE)[3:4], maps(SIZE)[4:]]
        if batched:
            crops = gathered(frames, per_frame, SIZE)
        else:
            crops = np.concatenate([frame_crops.cut_with_torch(torch.from_numpy(frame), people, SIZE).numpy()
                                    for frame, people in zip(frames, per_frame, strict=True)])
        expected = runner.submit_crops(crops).result()
        got = runner.submit_frames(frames, per_frame).result()
        for got_output, expected_output in zip(got, expected, strict=True):
            np.testing.assert_array_equal(got_output, expected_output)
    finally:
        runner.close()


@pytest.mark.parametrize("frames_in, maps_in, message", [
    ([np.zeros((8, 8, 3), np.float32)], [np.zeros((1, 2, 3))], r"must be \(H, W, 3\) uint8 RGB, got float32"),
    ([np.zeros((8, 8), np.uint8)], [np.zeros((1, 2, 3))], r"must be \(H, W, 3\) uint8 RGB"),
    ([np.zeros((8, 8, 3), np.uint8)], [np.zeros((2, 3))], r"crop maps must be \(k, 2, 3\) arrays"),
    ([np.zeros((8, 8, 3), np.uint8)], [], "one per frame"),
    ([np.zeros((8, 8, 3), np.uint8)], [np.zeros((0, 2, 3))], "no crop to cut"),
])
def test_wrong_frames_or_crop_maps_are_refused(tiny_engines, frames_in, maps_in, message):
    for engine in tiny_engines:
        with pytest.raises(InputError, match=message):
            engine.infer_frames(frames_in, maps_in)
