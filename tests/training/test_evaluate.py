"""Evaluation end to end: predictions decoded as at inference, mapped back to the image, scored."""

import numpy as np
import pytest
import torch

from wildpose.errors import DatasetError
from wildpose.training import evaluate, joints, metrics
from wildpose.training.datasets import DatasetConfig, build, synthetic


class Oracle(torch.nn.Module):
    """Answers each batch with the dataset's own targets: what a perfect network would output."""

    def __init__(self, dataset, input_size):
        super().__init__()
        self.config = type("Config", (), {"input_size": input_size})()
        self.answers = [dataset[i] for i in range(len(dataset))]
        self.served = 0

    def forward(self, images):
        batch = self.answers[self.served:self.served + len(images)]
        self.served += len(images)
        return [torch.stack([s["heatmaps"] for s in batch])], torch.stack([s["depth"] for s in batch])


@pytest.fixture()
def h36m_test(synthetic_data):
    return build(DatasetConfig("h36m", str(synthetic_data.h36m_annotations), str(synthetic_data.h36m_images),
                               split="test"), 256)


def test_a_perfect_network_is_scored_near_zero_error(h36m_test):
    predictions = evaluate.predict(Oracle(h36m_test, 256), h36m_test, batch_size=4)
    truth = h36m_test.annotations()
    # heatmap peaks sit on the 64x64 grid: a quarter of a heatmap pixel plus rounding, in image px
    image_px_per_heatmap_px = 4 * 128 / 256
    error = np.linalg.norm(predictions["joints2d"] - truth["joints2d"], axis=-1)
    assert error.max() <= 0.75 * image_px_per_heatmap_px
    results = evaluate.score(truth, predictions["joints2d"], predictions["pose3d"])
    assert results["samples"] == 10 and results["error_2d_px"] < 0.5 * image_px_per_heatmap_px
    # what remains is the 64x64 grid and the weak-perspective approximation of a perspective camera
    assert results["mpjpe_reference_mm"] < 30.0 and results["pa_mpjpe_mm"] < results["mpjpe_protocol1_mm"]


def test_exact_predictions_score_zero_and_the_metrics_follow_the_ground_truth(tmp_path, h36m_test):
    truth = h36m_test.annotations()
    results = evaluate.score(truth, truth["joints2d"], truth["joints3d"] * 0.03)  # any scale
    assert results["error_2d_px"] == 0.0 and "pckh@0.5" not in results  # no head sizes in H36M
    assert results["mpjpe_protocol1_mm"] == pytest.approx(results["mpjpe_reference_mm"], abs=30)
    annotations, images = synthetic.write_mpii(tmp_path / "mpii", 3)
    mpii = build(DatasetConfig("mpii", str(annotations), str(images)), 64).annotations()
    assert evaluate.score(mpii, mpii["joints2d"], None) == {"samples": 3.0, "error_2d_px": 0.0, "pckh@0.5": 100.0}
    annotations, images = synthetic.write_3dhp(tmp_path / "3dhp", 3)
    hp = build(DatasetConfig("mpi_inf_3dhp", str(annotations), str(images)), 64).annotations()
    scaled = evaluate.score(hp, None, hp["joints3d"], protocol_3d="mpi_inf_3dhp")
    assert {"3dpck@150mm", "auc_0_150mm", "bone_symmetry_mm"} <= set(scaled)


def test_per_joint_pck_shows_which_joint_a_model_misses():
    rng = np.random.default_rng(0)
    truth2d = rng.uniform(0, 200, (20, joints.NUM_JOINTS, 2))
    truth = {"joints2d": truth2d, "visible": np.ones((20, joints.NUM_JOINTS)), "head_size": np.zeros(0),
             "box_size": np.ptp(truth2d, axis=1).max(axis=1), "joints3d": np.full((20, joints.NUM_JOINTS, 3), np.nan)}
    predicted = truth2d.copy()
    predicted[:5, joints.INDEX["r_wrist"]] += 100.0  # a quarter of the right wrists far off
    results = evaluate.score(truth, predicted, None, per_joint=True)
    assert results["pck@0.1/r_wrist"] == 75.0 and results["pck@0.1/l_wrist"] == 100.0
    assert results["pck@0.1"] == pytest.approx(100.0 - 25.0 / joints.NUM_JOINTS)
    assert results["lr_swaps@0.1"] == metrics.swaps_bbox(predicted, truth2d, truth["visible"], truth["box_size"])
    assert not any("/" in name or "swaps" in name for name in evaluate.score(truth, predicted, None))


def test_predictions_for_another_dataset_are_refused(h36m_test):
    truth = h36m_test.annotations()
    with pytest.raises(DatasetError, match="predict on the same dataset and split"):
        evaluate.score(truth, np.zeros((3, joints.NUM_JOINTS, 2)), None)


@pytest.mark.parametrize("arrays, message", [
    (None, "predictions file not found"),
    ({"other": np.zeros(3)}, "holds neither `joints2d` nor `pose3d`"),
])
def test_bad_prediction_files_are_named(tmp_path, arrays, message):
    path = tmp_path / "predictions.npz"
    if arrays is not None:
        np.savez(path, **arrays)
    with pytest.raises(DatasetError, match=message):
        evaluate.load_predictions(path)
