"""ONNX Runtime and PyTorch agree on random and real inputs (foundation issue's tolerances)."""

import av
import cv2
import numpy as np
import pytest

from wildpose.engine import load
from wildpose.stream import crop

HEATMAP_STRIDE = 4
MAX_2D_ERROR_HEATMAP_PX = 0.05
MAX_DEPTH_RELATIVE_ERROR = 1e-3


def random_batch(size: int, batch: int) -> np.ndarray:
    return np.random.default_rng(batch).random((batch, 3, size, size), dtype=np.float32)


def video_crops(path, size: int, count: int) -> list[np.ndarray]:
    """Whole-frame crops of the first `count` decoded frames of a real video."""
    crops = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            image = frame.to_ndarray(format="rgb24")
            affine = crop.box_to_affine(crop.full_frame_box(image.shape[1], image.shape[0]), size)
            crops.append(crop.cut(image, affine, size))
            if len(crops) == count:
                break
    return crops


def image_crops(paths, size: int) -> list[np.ndarray]:
    crops = []
    for path in paths:
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        affine = crop.box_to_affine(crop.full_frame_box(image.shape[1], image.shape[0]), size)
        crops.append(crop.cut(image, affine, size))
    return crops


def assert_parity(onnx_engine, torch_engine, batch: np.ndarray) -> None:
    a, b = onnx_engine.infer(batch), torch_engine.infer(batch)
    error_2d = np.abs(a.joints2d_crop - b.joints2d_crop).max() / HEATMAP_STRIDE
    assert error_2d <= MAX_2D_ERROR_HEATMAP_PX, f"2D differs by {error_2d:.3f} heatmap px"
    depth_error = np.abs(a.depth - b.depth).max() / max(np.abs(b.depth).max(), 1e-6)
    assert depth_error <= MAX_DEPTH_RELATIVE_ERROR, f"depth differs by {depth_error:.2e} (relative)"
    assert np.allclose(a.conf, b.conf, atol=1e-4)


@pytest.fixture(scope="module", params=["realtime", "paper"])
def engines(request, preset_models):
    checkpoint_path, onnx_path = preset_models(request.param)
    onnx_engine, torch_engine = load(onnx_path, "onnxruntime"), load(checkpoint_path, "torch", device="cpu")
    yield onnx_engine, torch_engine
    onnx_engine.close()
    torch_engine.close()


@pytest.mark.parametrize("batch", [1, 4])
def test_backends_agree_on_random_input(engines, batch):
    onnx_engine, torch_engine = engines
    assert_parity(onnx_engine, torch_engine, random_batch(onnx_engine.input_size, batch))


@pytest.mark.parametrize("batch", [1, 4])
def test_backends_agree_on_frames_of_the_generated_clip(engines, walker_clip, batch):
    onnx_engine, torch_engine = engines
    crops = video_crops(walker_clip, onnx_engine.input_size, batch)
    assert_parity(onnx_engine, torch_engine, crop.to_model_input(np.stack(crops)))


@pytest.mark.parametrize("batch", [1, 4])
def test_backends_agree_on_real_video_and_photos(engines, shared_data, batch):
    onnx_engine, torch_engine = engines
    size = onnx_engine.input_size
    crops = video_crops(shared_data / "video" / "pose_squats.mp4", size, batch)
    assert_parity(onnx_engine, torch_engine, crop.to_model_input(np.stack(crops)))
    photos = sorted((shared_data / "images").glob("*.jpg"))[:batch]
    assert_parity(onnx_engine, torch_engine, crop.to_model_input(np.stack(image_crops(photos, size))))
