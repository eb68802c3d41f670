"""The flip test: each crop also runs mirrored, the mirrored heatmaps are mirrored back with left and
right swapped, and the two are averaged. Everything that runs a model can do it: the torch graph, an
ONNX file exported with it (which says so), `wildpose export`, `wildpose eval` and the pipeline."""

import numpy as np
import onnx
import pytest
import torch
from support import assert_one_error_line, wildpose

from wildpose.engine import default_model, load, loader, onnx_file
from wildpose.engine.graph import DecodedPoseNet
from wildpose.errors import ModelFileError
from wildpose.tools import democlip
from wildpose.training import checkpoint, heatmaps, joints

R_WRIST, L_WRIST = joints.NAMES.index("r_wrist"), joints.NAMES.index("l_wrist")


def peak(x: float, y: float, value: float, size: int = 12) -> torch.Tensor:
    grid = torch.arange(size, dtype=torch.float32)
    return value * torch.exp(-((grid[None, :] - x) ** 2 + (grid[:, None] - y) ** 2) / 2.0)


def test_the_mirrored_half_is_mirrored_back_with_left_and_right_swapped_then_averaged():
    maps, depth = torch.zeros(2, joints.NUM_JOINTS, 12, 12), torch.zeros(2, joints.NUM_JOINTS)
    maps[0, R_WRIST], depth[0, R_WRIST] = peak(3, 5, 0.8), 0.2
    # the mirrored crop sees that right wrist as a left wrist, 3 px from its right edge
    maps[1, L_WRIST], depth[1, L_WRIST] = peak(12 - 1 - 3, 5, 1.0), 0.4
    averaged, averaged_depth = heatmaps.average_mirrored(maps, depth)
    assert averaged.shape == (1, joints.NUM_JOINTS, 12, 12) and averaged_depth.shape == (1, joints.NUM_JOINTS)
    coords, conf = heatmaps.decode(averaged)
    assert coords[0, R_WRIST].tolist() == [3.0, 5.0] and conf[0, R_WRIST].item() == pytest.approx(0.9)
    assert conf[0, L_WRIST].item() == 0.0
    assert averaged_depth[0, R_WRIST].item() == pytest.approx(0.3) and averaged_depth[0, L_WRIST].item() == 0.0


@pytest.fixture(scope="module")
def demo_network():
    network, _ = checkpoint.load(default_model.checkpoint_path())
    return network.eval()


def test_with_the_flip_test_a_mirrored_crop_gives_the_mirrored_pose(demo_network):
    """Exactly, up to float rounding: the flip test treats a crop and its mirror image alike. Without
    it the network's own left/right asymmetry shows, and mirroring the wrong axis would break this."""
    flipped, plain = DecodedPoseNet(demo_network, flip_test=True), DecodedPoseNet(demo_network)
    size = demo_network.config.input_size
    crops = torch.rand(3, 3, size, size, generator=torch.Generator().manual_seed(0))
    swap = joints.flip_permutation()
    with torch.inference_mode():
        points, conf, depth = (t.numpy() for t in flipped(crops))
        points_m, conf_m, depth_m = (t.numpy()[:, swap] for t in flipped(crops.flip(3)))
        plain_points, plain_points_m = plain(crops)[0].numpy(), plain(crops.flip(3))[0].numpy()[:, swap]
    points_m[..., 0] = size - 1 - points_m[..., 0]
    plain_points_m[..., 0] = size - 1 - plain_points_m[..., 0]
    assert np.abs(points_m - points).max() < 1e-3
    assert np.abs(conf_m - conf).max() < 1e-5 and np.abs(depth_m - depth).max() < 1e-5
    assert np.abs(plain_points_m - plain_points).max() > 1.0  # the network alone is not symmetric
    assert np.abs(points - plain_points).max() > 1.0  # and the flip test changed its answer


def test_an_onnx_file_exported_with_the_flip_test_runs_it_and_says_so(preset_models, tmp_path):
    source, plain_onnx = preset_models("tiny")
    result = wildpose("export", str(source), "-o", str(tmp_path / "flip.onnx"), "--flip-test")
    assert result.returncode == 0, result.stderr
    assert "flip test" in result.stdout
    _, metadata = onnx_file.load_verified(tmp_path / "flip.onnx")
    assert metadata.flip_test and not onnx_file.load_verified(plain_onnx)[1].flip_test
    network, _ = checkpoint.load(source)
    crops = np.random.default_rng(0).random((3, 3, 64, 64), dtype=np.float32)
    with torch.inference_mode():
        expected = DecodedPoseNet(network.eval(), flip_test=True)(torch.from_numpy(crops))
    with load(tmp_path / "flip.onnx", "onnxruntime") as engine:
        assert "flip test" in engine.describe()
        out = engine.infer(crops)
    np.testing.assert_allclose(out.joints2d_crop, expected[0].numpy(), atol=1e-3)
    np.testing.assert_allclose(out.depth, expected[2].numpy(), atol=1e-4)
    # the exporter wrote one graph that holds the mirrored pass, not two
    assert len(onnx.load(tmp_path / "flip.onnx").graph.input) == 1


def test_a_checkpoint_is_exported_once_with_and_once_without_it(preset_models):
    source, _ = preset_models("tiny")
    with_flip = loader.resolve(source, "onnxruntime", flip_test=True)
    without = loader.resolve(source, "onnxruntime")
    assert with_flip != without and loader.resolve(source, "onnxruntime", flip_test=True) == with_flip
    assert onnx_file.load_verified(with_flip)[1].flip_test and not onnx_file.load_verified(without)[1].flip_test
    with load(source, "torch", device="cpu", flip_test=True) as engine:
        assert engine.metadata.flip_test and "flip test" in engine.describe()


def test_asking_for_it_from_a_file_exported_without_it_is_one_clear_error(preset_models):
    _, plain_onnx = preset_models("tiny")
    with pytest.raises(ModelFileError, match="exported without the flip test; export it with `wildpose export "
                                             "--flip-test`"):
        loader.resolve(plain_onnx, "onnxruntime", flip_test=True)
    assert_one_error_line(wildpose("run", "--source", str(democlip.BUNDLED_CLIP), "--model", str(plain_onnx),
                                   "--flip-test", "--backend", "onnxruntime", "--duration", "1"),
                          "exported without the flip test")
    assert_one_error_line(wildpose("eval", "--predictions", "p.npz", "--format", "mpii", "--annotations", "a.h5",
                                   "--flip-test"), "--flip-test runs a checkpoint")
