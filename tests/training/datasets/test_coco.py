"""COCO person keypoints, on real COCO annotations and photos (mmpose's test data in ../shared)."""

import json
from pathlib import Path

import numpy as np
import pytest
from support import assert_one_error_line, wildpose

from wildpose.errors import DatasetError
from wildpose.training import joints
from wildpose.training.datasets import DatasetConfig, build

WEIGHTS = str(Path(__file__).resolve().parents[3] / "weights" / "realtime-synthpose.pt")


@pytest.fixture(scope="module")
def coco(shared_data):
    folder = shared_data / "annotated" / "coco"
    return folder / "test_coco.json", folder


def test_the_people_of_a_coco_file_become_2d_samples(coco):
    annotations, images = coco
    dataset = build(DatasetConfig("coco", str(annotations), images=str(images)), 192)
    # 14 annotated people, two of them with no keypoint labelled (too small to label): skipped
    assert len(dataset) == 12 and not dataset.has_3d.any()
    first = json.loads(annotations.read_text())["annotations"][0]
    keypoints = np.array(first["keypoints"], float).reshape(17, 3)
    record = dataset.record(0)
    assert record.image == images / "000000000785.jpg"
    # COCO 10 = right wrist, 15 = left ankle (the person's own sides, as in MPII)
    assert record.joints2d[joints.INDEX["r_wrist"]] == pytest.approx(keypoints[10, :2])
    assert record.joints2d[joints.INDEX["l_ankle"]] == pytest.approx(keypoints[15, :2])
    assert record.joints2d[joints.INDEX["pelvis"]] == pytest.approx(keypoints[[11, 12], :2].mean(axis=0))
    assert not record.visible[[joints.INDEX[n] for n in ("thorax", "upper_neck", "head_top")]].any()
    assert record.visible.sum() == 13
    x, y, width, height = first["bbox"]
    assert record.box_size == pytest.approx(max(width, height))
    assert record.center == pytest.approx([x + width / 2, y + height / 2])


def test_a_crop_holds_the_person_and_trains_no_joint_coco_lacks(coco):
    annotations, images = coco
    dataset = build(DatasetConfig("coco", str(annotations), images=str(images)), 192)
    sample = dataset[0]
    assert sample["image"].shape == (3, 192, 192) and sample["image"].std() > 0.05  # a real photo
    inside = sample["joints2d"][sample["visible"] > 0]
    assert ((inside > 0) & (inside < 191)).all()
    training = dataset[(0, (0, 0, 0, 0))]  # as the trainer draws it: augmented, with heatmaps
    heads = [joints.INDEX[n] for n in ("thorax", "upper_neck", "head_top")]
    assert training["heatmaps"][heads].abs().sum() == 0 and training["heatmaps"].amax() == 1.0
    assert training["has3d"] == 0


def test_the_bundled_weights_are_scored_on_real_coco_people(coco):
    annotations, images = coco
    result = wildpose("eval", WEIGHTS, "--format", "coco", "--annotations", str(annotations),
                      "--images", str(images), "--per-joint", timeout=300)
    assert result.returncode == 0, result.stderr
    rows = {line.split("|")[2].strip(): float(line.split("|")[3]) for line in result.stdout.splitlines()
            if line.startswith("| 0_coco")}
    print(f"bundled weights on 12 real COCO people: PCK@0.1 {rows['pck@0.1']:.1f} %")
    assert rows["samples"] == 12 and 0 < rows["pck@0.1"] <= 100
    assert "pck@0.1/head_top" not in rows  # never annotated in COCO: not scored


def test_a_file_that_is_not_coco_keypoints_is_one_line(tmp_path):
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"format": "wildpose-folder-v1", "samples": []}))
    with pytest.raises(DatasetError, match="expected COCO keypoints JSON"):
        build(DatasetConfig("coco", str(wrong)), 64)
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg"}],
                                  "annotations": [{"image_id": 2, "keypoints": [0] * 51, "bbox": [0, 0, 5, 5]}]}))
    with pytest.raises(DatasetError, match=r"annotation 0 needs .* an \"image_id\" listed in \"images\""):
        build(DatasetConfig("coco", str(broken)), 64)
    assert_one_error_line(wildpose("eval", WEIGHTS, "--format", "coco", "--annotations",
                                   str(tmp_path / "missing.json")), "annotation file not found", "missing.json")


def test_a_coco_file_trains_the_2d_stage(coco, tmp_path):
    annotations, images = coco
    config = tmp_path / "coco.toml"
    config.write_text(f'output = "{tmp_path / "run"}"\nmodel = "tiny"\nbatch_size = 4\nworkers = 0\n'
                      '[logging]\nevery_steps = 2\nprogress = false\n'
                      f'[[data.train]]\nformat = "coco"\nannotations = "{annotations}"\nimages = "{images}"\n'
                      '[[stages]]\nname = "heatmaps_2d"\nepochs = 1\nsteps_per_epoch = 4\nlr = 1e-3\nmix_3d = 0\n')
    result = wildpose("train", "--config", str(config), timeout=300)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "run" / "1_heatmaps_2d.pt").is_file() and "finished after 4 steps" in result.stdout
