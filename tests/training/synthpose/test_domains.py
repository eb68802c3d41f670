"""The two domains and the generator: held-out files, label policy, viewpoints, framing and
seed determinism."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from wildpose.errors import ConfigError, MocapError
from wildpose.training import joints
from wildpose.training.synthpose import domains

SPLITS = [("lab", "train"), ("lab", "test"), ("wild", "train"), ("wild", "test")]


@pytest.fixture(scope="module")
def config(mocap_dir):
    return domains.SynthConfig(mocap_dir=str(mocap_dir))


@pytest.fixture(scope="module")
def batches(config):
    """Six samples of every split (seed 11), rendered once for the module."""
    return {(d, s): list(domains.generate(d, s, 6, seed=11, config=config)) for d, s in SPLITS}


def test_no_bvh_file_is_in_two_splits_or_two_domains():
    owners = {}
    for (domain, split) in SPLITS:
        for stem in domains.split_files(domain, split):
            assert stem not in owners, f"{stem} is in {owners[stem]} and {domain}/{split}"
            owners[stem] = f"{domain}/{split}"
    assert set(owners) == {"02_01", "02_03", "01_01", "09_01", "05_02", "06_15", "02_05", "01_06",
                           "131_01", "131_02", "131_03", "02_04"}


def test_every_assigned_file_exists(mocap_dir):
    for domain, split in SPLITS:
        for stem in domains.split_files(domain, split):
            assert (mocap_dir / f"{stem}.bvh").is_file()


def test_samples_come_from_their_own_splits_files(batches):
    for (domain, split), samples in batches.items():
        assert {s.source for s in samples} <= set(domains.split_files(domain, split))


@pytest.mark.parametrize(
    ("domain", "split", "has_3d"),
    [("lab", "train", True), ("lab", "test", True), ("wild", "train", False), ("wild", "test", True)],
)
def test_only_wild_training_samples_lack_3d_labels(batches, domain, split, has_3d):
    assert all(s.has_3d == has_3d for s in batches[(domain, split)])


@pytest.mark.parametrize(("domain", "split"), SPLITS)
def test_generation_is_byte_identical_under_a_seed_and_differs_across_seeds(config, batches, domain, split):
    again = list(domains.generate(domain, split, 2, seed=11, config=config))
    for first, second in zip(batches[(domain, split)][:2], again, strict=True):
        assert first.image.tobytes() == second.image.tobytes()
        assert np.array_equal(first.joints2d, second.joints2d)
    other = domains.sample(domain, split, seed=12, index=0, config=config)
    assert other.image.tobytes() != again[0].image.tobytes()
    images = [s.image.tobytes() for s in batches[(domain, split)]]
    assert len(set(images)) == len(images)  # indices of one seed differ too


@pytest.mark.parametrize(("domain", "split"), SPLITS)
def test_people_are_framed_inside_the_image_with_room_for_the_padded_crop(batches, domain, split):
    for s in batches[(domain, split)]:
        assert s.visible.all()
        u, v = np.round(s.joints2d).astype(int).T
        assert s.mask[v, u].all()
        crop = s.crop(256)
        corners = np.array([[-0.5, -0.5], [255.5, 255.5]])
        inverse = np.linalg.inv(np.vstack([crop.affine, [0, 0, 1]]))[:2]
        in_image = corners @ inverse[:, :2].T + inverse[:, 2]
        height, width = s.image.shape[:2]
        assert in_image.min() >= -0.5 - 1.5 and in_image[:, 0].max() <= width - 0.5 + 1.5
        assert in_image[:, 1].max() <= height - 0.5 + 1.5
        assert (crop.joints2d >= 0).all() and (crop.joints2d < 256).all()


@pytest.mark.parametrize(("domain", "split"), [("lab", "train"), ("lab", "test"), ("wild", "test")])
def test_3d_labels_project_onto_the_2d_labels_and_have_human_bones(batches, domain, split):
    for s in batches[(domain, split)]:
        projected = s.joints3d_cam @ s.intrinsics.T
        assert projected[:, :2] / projected[:, 2:] == pytest.approx(s.joints2d)
        total = joints.bone_lengths(s.joints3d_cam).sum()
        assert 0.75 * joints.SKELETON_SUM_MM < total < 1.25 * joints.SKELETON_SUM_MM


def view_angle(joints3d_cam: np.ndarray) -> float:
    """Degrees between the way the person faces and the way back to the camera (0 = frontal)."""
    left = joints3d_cam[joints.INDEX["l_hip"]] - joints3d_cam[joints.INDEX["r_hip"]]
    forward = np.cross(left, [0.0, -1.0, 0.0])  # camera y points down
    to_camera = -joints3d_cam[joints.ROOT]
    forward[1] = to_camera[1] = 0.0
    cosine = forward @ to_camera / np.linalg.norm(forward) / np.linalg.norm(to_camera)
    return float(np.degrees(np.arccos(np.clip(cosine, -1, 1))))


def test_lab_views_are_frontal_while_wild_views_go_all_round(config):
    lab = [view_angle(s.joints3d_cam) for s in domains.generate("lab", "test", 12, seed=5, config=config)]
    wild = [view_angle(s.joints3d_cam) for s in domains.generate("wild", "test", 12, seed=5, config=config)]
    assert max(lab) < 65.0  # yaw within +-60 degrees, plus the camera's height
    assert max(wild) > 100.0  # some from behind


def test_a_shorter_run_is_a_prefix_of_a_longer_one(config, batches):
    short = list(domains.generate("lab", "train", 3, seed=11, config=config))
    for a, b in zip(short, batches[("lab", "train")][:3], strict=True):
        assert a.image.tobytes() == b.image.tobytes()


def test_clean_config_turns_degradation_off_without_changing_the_scene(config):
    clean = dataclasses.replace(config, degrade=False)
    noisy = domains.sample("wild", "train", seed=3, index=1, config=config)
    plain = domains.sample("wild", "train", seed=3, index=1, config=clean)
    assert np.array_equal(noisy.joints2d, plain.joints2d) and noisy.source == plain.source
    assert noisy.image.tobytes() != plain.image.tobytes()


def test_faces_draw_eyes_nose_and_neckline_near_the_head_and_change_nothing_else(config):
    """The same samples with and without faces: equal labels, and pixels differ only around the head
    and neck (lab views are frontal, so every one shows its face)."""
    clean = dataclasses.replace(config, degrade=False)
    neck, top = joints.INDEX["upper_neck"], joints.INDEX["head_top"]
    for index in range(4):
        plain = domains.sample("lab", "train", seed=3, index=index, config=clean)
        faced = domains.sample("lab", "train", seed=3, index=index, config=dataclasses.replace(clean, faces=True))
        assert np.array_equal(plain.joints2d, faced.joints2d) and np.array_equal(plain.visible, faced.visible)
        assert np.array_equal(plain.joints3d_cam, faced.joints3d_cam) and plain.frame == faced.frame
        changed = np.argwhere(np.any(plain.image != faced.image, axis=2))[:, ::-1]  # (x, y)
        assert len(changed) > 20
        head = np.linalg.norm(faced.joints2d[top] - faced.joints2d[neck])
        assert np.linalg.norm(changed - faced.joints2d[neck], axis=1).max() < 1.2 * head


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: domains.generate("street", "train", 1, 0, c),
         r"unknown domain 'street'; valid domains are \['lab', 'wild'\]"),
        (lambda c: domains.generate("lab", "val", 1, 0, c), r"unknown split 'val' of domain 'lab'; valid splits are"),
        (lambda c: domains.generate("lab", "train", -1, 0, c), "count and seed must be >= 0"),
        (lambda c: domains.generate("lab", "train", 1, -5, c), "count and seed must be >= 0"),
        (lambda c: domains.sample("lab", "train", 0, -1, c), "seed and index must be >= 0"),
        (lambda c: dataclasses.replace(c, width=16), "image size must be 32..4096"),
        (lambda c: dataclasses.replace(c, fps=240.0), "fps must be 1..120"),
        (lambda c: dataclasses.replace(c, faces="yes"), "faces must be true or false"),
        (lambda c: dataclasses.replace(c, domains={"lab": domains.DOMAINS["wild"]}), "must map each name"),
        (lambda c: dataclasses.replace(domains.DOMAINS["lab"], splits={"train": ("02_01",), "test": ("02_01",)}),
         "02_01 is in both 'train' and 'test'"),
        (lambda c: dataclasses.replace(domains.DOMAINS["lab"], person_fraction=(0.5, 0.95)), "person_fraction"),
        (lambda c: dataclasses.replace(domains.DOMAINS["wild"], blur_prob=1.5), "blur_prob must be a probability"),
        (lambda c: dataclasses.replace(domains.DOMAINS["wild"], background="beach"), "background must be"),
    ],
)
def test_bad_generator_settings_are_config_errors(config, call, message):
    with pytest.raises(ConfigError, match=message):
        call(config)


def test_a_missing_mocap_folder_names_the_file(tmp_path):
    with pytest.raises(MocapError, match="09_01.bvh"):
        domains.sample("lab", "test", 0, 0, domains.SynthConfig(mocap_dir=str(tmp_path)))


def test_split_list_in_the_docstring_matches_the_domains():
    doc = domains.__doc__
    for (domain, split) in SPLITS:
        row = next(line for line in doc.splitlines() if line.startswith(f"- {domain}/{split}: "))
        for stem in domains.split_files(domain, split):
            assert stem in row
    assert len(list(itertools.chain.from_iterable(domains.split_files(d, s) for d, s in SPLITS))) == 12
