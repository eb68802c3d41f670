"""The renderer: labels that land on the drawn figure, the project's crop convention, self-occlusion
flags, and degradations that are deterministic under an rng."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from wildpose.errors import ConfigError
from wildpose.stream import crop as stream_crop
from wildpose.training import joints
from wildpose.training.synthpose import body, raster, render
from wildpose.training.synthpose.camera import Camera

SIZE = 256
GREY = np.full((SIZE, SIZE, 3), 100, np.uint8)
# A reddish figure: no shading can turn it into the grey background.
APPEARANCE = render.Appearance(albedo=np.tile([0.9, 0.35, 0.1], (body.NUM_MATERIALS, 1)),
                               light=np.array([0.3, 0.9, 0.3]), ambient=0.4, diffuse=0.6, tint=np.ones(3))
CLEAN = render.Effects(optics_sigma=0.0)


def scene(standing, yaw=0.0, effects=CLEAN, background=GREY, draw_figure=True, rng=None):
    shape = body.mean_shape()
    pose, extras = body.retarget(*standing, shape)
    camera = Camera.orbit(pose.mean(axis=0), body.facing(pose), 4000.0, 1300.0, yaw, 480.0, SIZE, SIZE)
    sample = render.render(pose, extras, shape, APPEARANCE, camera, background, effects, rng, draw_figure=draw_figure)
    return sample, camera, pose


@pytest.mark.parametrize("yaw", [0.0, 60.0, 90.0, 180.0, -120.0])
def test_every_joint_projects_inside_the_image_and_onto_the_figure(standing, yaw):
    sample, _, _ = scene(standing, yaw)
    empty, _, _ = scene(standing, yaw, draw_figure=False)
    assert np.array_equal(empty.image, GREY)  # without the person: the background, untouched
    assert sample.visible.all()
    u, v = np.round(sample.joints2d).astype(int).T
    assert sample.mask[v, u].all()
    assert (np.abs(sample.image[v, u].astype(int) - GREY[v, u]).sum(axis=1) > 0).all()


def test_labels_are_one_camera_view_of_the_retargeted_pose(standing):
    sample, camera, pose = scene(standing, 30.0)
    assert sample.joints3d_cam == pytest.approx(camera.world_to_camera(pose))
    projected = sample.joints3d_cam @ sample.intrinsics.T
    assert projected[:, :2] / projected[:, 2:] == pytest.approx(sample.joints2d)
    assert joints.bone_lengths(sample.joints3d_cam) == pytest.approx(joints.bone_lengths(pose))
    assert sample.box == pytest.approx([*sample.joints2d.min(axis=0), *sample.joints2d.max(axis=0)])
    assert sample.image.shape == (SIZE, SIZE, 3) and sample.image.dtype == np.uint8


@pytest.mark.parametrize(
    ("yaw", "hidden", "shown"),
    [
        (0.0, (), joints.NAMES),  # frontal, arms at the sides: nothing hidden
        (90.0, ("r_shoulder", "r_elbow", "r_wrist"), ("l_shoulder", "l_elbow", "l_wrist", "head_top")),
        (-90.0, ("l_shoulder", "l_elbow", "l_wrist"), ("r_shoulder", "r_elbow", "r_wrist", "head_top")),
        (180.0, ("r_wrist", "l_wrist"), ("r_shoulder", "l_shoulder", "head_top")),  # hands in front of the hips
    ],
)
def test_self_occlusion_flags_joints_behind_other_body_parts(standing, yaw, hidden, shown):
    sample, _, _ = scene(standing, yaw)
    occluded = dict(zip(joints.NAMES, sample.occluded, strict=True))
    assert all(occluded[name] for name in hidden)
    assert not any(occluded[name] for name in shown)


FACE = {"r_eye", "l_eye", "r_brow", "l_brow", "nose", "neckline"}


@pytest.mark.parametrize(("yaw", "seen"), [(0.0, FACE), (30.0, FACE), (180.0, set()), (150.0, set())])
def test_the_face_shows_from_the_front_and_not_from_behind(standing, yaw, seen):
    """What tells a figure's front from its back, and so its left limbs from its right ones."""
    shape = dataclasses.replace(body.mean_shape(), face=True)
    pose, extras = body.retarget(*standing, shape)
    camera = Camera.orbit(pose.mean(axis=0), body.facing(pose), 4000.0, 1300.0, yaw, 480.0, SIZE, SIZE)
    parts = body.primitives(camera.world_to_camera(pose), camera.world_to_camera(extras), shape)
    buffers = raster.rasterise([p for _, p in parts], camera, np.array([0.0, 0.0, -1.0]))
    shown = {parts[i][0] for i in np.unique(buffers.index) if i >= 0}
    assert shown & FACE == seen
    assert {name for name, _ in parts} >= FACE
    assert not {name for name, _ in body.primitives(camera.world_to_camera(pose), camera.world_to_camera(extras),
                                                   body.mean_shape())} & FACE


@pytest.mark.parametrize("size", [64, 256])
@pytest.mark.parametrize("padding", [1.0, 1.25])
def test_crop_uses_the_stream_crop_convention(size, padding):
    box = np.array([40.3, 12.7, 130.9, 250.2])
    expected = stream_crop.box_to_affine(stream_crop.square_box(box, padding), size)
    assert render.crop_affine(box, size, padding) == pytest.approx(expected)
    # the padded square's edges land on crop pixel edges -0.5 and size - 0.5
    side = (250.2 - 12.7) * padding
    top = (12.7 + 250.2 - side) / 2
    affine = render.crop_affine(box, size, padding)
    assert affine[1, 1] * top + affine[1, 2] == pytest.approx(-0.5)
    assert affine[1, 1] * (top + side) + affine[1, 2] == pytest.approx(size - 0.5)


def test_cropped_image_and_cropped_joints_agree_to_a_tenth_of_a_pixel():
    """Blobs drawn at sub-pixel joint positions reappear at the joints' crop coordinates; half a pixel
    of convention error would show as a full pixel at this 2x zoom."""
    rng = np.random.default_rng(0)
    points = rng.uniform([60, 40], [140, 160], (16, 2))
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    image = np.zeros((SIZE, SIZE), np.float64)
    for x, y in points[:4]:
        image += 250 * np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * 1.5 ** 2))
    image = np.repeat(np.clip(image, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    box = np.array([*points.min(axis=0), *points.max(axis=0)])
    sample = render.RenderedSample(image, points, None, np.ones(16, bool), np.zeros(16, bool), box, np.eye(3),
                                   np.zeros((SIZE, SIZE), bool))
    crop = sample.crop(size=300)
    assert crop.image.shape == (300, 300, 3)
    assert crop.affine[0, 0] > 1.9
    grey = crop.image[..., 0].astype(np.float64)
    for x, y in crop.joints2d[:4]:
        x0, y0 = int(round(x)), int(round(y))
        window = grey[y0 - 6:y0 + 7, x0 - 6:x0 + 7]
        wy, wx = np.mgrid[y0 - 6:y0 + 7, x0 - 6:x0 + 7]
        centroid = np.array([(window * wx).sum(), (window * wy).sum()]) / window.sum()
        assert centroid == pytest.approx([x, y], abs=0.1)


def test_degradation_is_deterministic_under_the_rng_and_changes_the_image(standing):
    noisy = render.Effects(blur_px=5.0, blur_angle_deg=30.0, optics_sigma=0.8, noise_sigma=6.0, jpeg_quality=60)
    first, _, _ = scene(standing, effects=noisy, rng=np.random.default_rng(3))
    again, _, _ = scene(standing, effects=noisy, rng=np.random.default_rng(3))
    other, _, _ = scene(standing, effects=noisy, rng=np.random.default_rng(4))
    clean, _, _ = scene(standing)
    assert np.array_equal(first.image, again.image)
    assert not np.array_equal(first.image, other.image)
    assert np.abs(first.image.astype(int) - clean.image).mean() > 2.0
    assert np.array_equal(first.joints2d, clean.joints2d)  # labels are not degraded


def test_sampled_appearance_is_valid_and_varies():
    albedos = [render.sample_appearance(np.random.default_rng(seed)).albedo for seed in range(20)]
    assert all(a.shape == (body.NUM_MATERIALS, 3) and a.min() >= 0 and a.max() <= 1 for a in albedos)
    assert np.std([a[body.SHIRT] for a in albedos], axis=0).min() > 0.1


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: render.Effects(blur_px=-1.0), "must be >= 0"),
        (lambda: render.Effects(jpeg_quality=101), "jpeg_quality must be 0"),
        (lambda: render.Appearance(np.zeros((3, 3)), np.ones(3), 0.3, 0.5, np.ones(3)), "albedo must be"),
        (lambda: render.Appearance(np.zeros((body.NUM_MATERIALS, 3)), np.ones(3), 1.3, 0.5, np.ones(3)),
         "light weights"),
    ],
)
def test_bad_render_settings_are_config_errors(build, message):
    with pytest.raises(ConfigError, match=message):
        build()


def test_background_must_match_the_camera(standing):
    with pytest.raises(ConfigError, match=r"background must be \(256, 256, 3\) uint8"):
        scene(standing, background=cv2.resize(GREY, (128, 128)))


def test_crop_size_must_be_positive(standing):
    sample, _, _ = scene(standing)
    with pytest.raises(ConfigError, match="crop size and padding must be positive"):
        sample.crop(0)


def test_without_3d_withholds_only_the_3d_label(standing):
    sample, _, _ = scene(standing)
    two_d = sample.without_3d()
    assert sample.has_3d and not two_d.has_3d and two_d.joints3d_cam is None
    assert np.array_equal(two_d.joints2d, sample.joints2d) and two_d.image is sample.image
