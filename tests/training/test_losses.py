"""The paper's losses against hand-computed values, and the reference's bugs that must not return."""

import numpy as np
import pytest
import torch

from wildpose.errors import InputError
from wildpose.training import joints, losses

B, J, H = 2, 16, 8


def test_heatmap_loss_is_the_mean_squared_error_of_each_stack_summed():
    target = torch.zeros(B, J, H, H)
    weight = torch.ones(B, J)
    one = [torch.full((B, J, H, H), 0.5)]
    assert losses.heatmap_loss(one, target, weight).item() == pytest.approx(0.25)
    two = [torch.full((B, J, H, H), 0.5), torch.full((B, J, H, H), 0.1)]
    assert losses.heatmap_loss(two, target, weight).item() == pytest.approx(0.25 + 0.01)


def test_every_stack_is_supervised_not_only_the_last():
    """The reference's loop overwrote the loss, so only the last stack learned."""
    stacks = [torch.rand(B, J, H, H, requires_grad=True) for _ in range(3)]
    losses.heatmap_loss(stacks, torch.zeros(B, J, H, H), torch.ones(B, J)).backward()
    assert all(stack.grad.abs().sum() > 0 for stack in stacks)
    first_changed = [stacks[0].detach() + 1.0, *(s.detach() for s in stacks[1:])]
    assert losses.heatmap_loss(first_changed, torch.zeros(B, J, H, H), torch.ones(B, J)) > \
        losses.heatmap_loss([s.detach() for s in stacks], torch.zeros(B, J, H, H), torch.ones(B, J))


def test_unannotated_joints_do_not_count():
    weight = torch.ones(B, J)
    weight[:, 3] = 0.0
    predicted = torch.zeros(B, J, H, H)
    predicted[:, 3] = 10.0  # anything goes for joint 3
    assert losses.heatmap_loss([predicted], torch.zeros(B, J, H, H), weight).item() == 0.0


def test_depth_loss_averages_joints_per_3d_sample_and_divides_by_the_whole_batch():
    predicted = torch.zeros(3, J)
    target = torch.zeros(3, J)
    target[0] = 1.0    # 3D sample: mean squared error 1
    target[1, :4] = 2.0  # 3D sample: (4 * 4) / 16 = 1
    target[2] = 5.0    # 2D-only sample: ignored
    value = losses.depth_loss(predicted, target, torch.tensor([1.0, 1.0, 0.0]))
    assert value.item() == pytest.approx((1.0 + 1.0) / 3)


def reference_ratio_pose() -> np.ndarray:
    """A pose whose bones within each group have exactly the reference length ratios: walking the
    skeleton out from the pelvis, each grouped bone keeps its direction and gets length 300 / w_e."""
    from wildpose.training.datasets.synthetic import random_pose

    pose = random_pose(np.random.default_rng(0))
    weights = {frozenset(bone): w for group in joints.BONE_GROUPS.values() for bone, w in group}
    placed, frontier = {joints.ROOT}, [joints.ROOT]
    while frontier:
        parent = frontier.pop(0)
        for a, b in joints.EDGES:
            if parent in (a, b) and (child := b if a == parent else a) not in placed:
                offset = pose[child] - pose[parent]
                if frozenset((a, b)) in weights:
                    offset = offset / np.linalg.norm(offset) * 300.0 / weights[frozenset((a, b))]
                # move the child's whole subtree with it
                subtree = _subtree(child, parent)
                pose[subtree] += pose[parent] + offset - pose[child]
                placed.add(child)
                frontier.append(child)
    return pose


def _subtree(joint: int, parent: int) -> list[int]:
    found, stack = [joint], [joint]
    while stack:
        current = stack.pop()
        for a, b in joints.EDGES:
            if current in (a, b) and (other := b if a == current else a) not in found and other != parent:
                found.append(other)
                stack.append(other)
    return found


def split(pose: np.ndarray, input_size: int = 256):
    """(depth (1, J), joints2d (1, J, 2) crop px) with x, y, z in one weak-perspective scale."""
    pose = pose - pose[joints.ROOT]
    scaled = pose * 0.1  # crop px per mm
    joints2d = torch.tensor(scaled[None, :, :2] + 128.0, dtype=torch.float64)
    depth = torch.tensor(scaled[None, :, 2] / (input_size / 2), dtype=torch.float64, requires_grad=True)
    return depth, joints2d


def test_geometric_loss_is_zero_on_a_pose_with_the_reference_bone_ratios():
    pose = reference_ratio_pose()
    depth, joints2d = split(pose)
    value = losses.geometric_loss(depth, joints2d, torch.ones(1, J), torch.ones(1), 256)
    assert value.item() == pytest.approx(0.0, abs=1e-12)


def test_geometric_loss_of_a_perturbed_pose_is_positive_and_moves_only_depth():
    pose = reference_ratio_pose()
    pose[joints.INDEX["l_knee"], 2] += 80.0
    depth, joints2d = split(pose)
    joints2d.requires_grad_(True)
    value = losses.geometric_loss(depth, joints2d, torch.ones(1, J), torch.ones(1), 256)
    value.backward()
    assert value.item() > 1e-6
    assert depth.grad.abs().sum() > 0 and joints2d.grad is None
    gradient = np.abs(depth.grad[0].numpy())
    touched = set(np.flatnonzero(gradient > 1e-6 * gradient.max()))  # the legs group only
    assert touched == {joints.INDEX[n] for n in ("l_hip", "l_knee", "l_ankle", "r_ankle", "r_knee", "r_hip")}


def test_geometric_loss_by_hand():
    """Only the hips differ: (2, 6) has length 3 and (3, 6) length 1 in normalised units; the mean is
    2, so the group's term is ((3 - 2)^2 + (1 - 2)^2) / 2 = 1; every other bone has length 0."""
    joints2d = torch.zeros(2, J, 2, dtype=torch.float64)
    joints2d[:, joints.INDEX["r_hip"], 0] = 3.0 * 128
    joints2d[:, joints.INDEX["r_ankle"], 0] = 3.0 * 128
    joints2d[:, joints.INDEX["r_knee"], 0] = 3.0 * 128
    joints2d[:, joints.INDEX["l_hip"], 0] = -1.0 * 128
    joints2d[:, joints.INDEX["l_knee"], 0] = -1.0 * 128
    joints2d[:, joints.INDEX["l_ankle"], 0] = -1.0 * 128
    depth = torch.zeros(2, J, dtype=torch.float64)
    terms = losses.geometric_terms(depth, joints2d, torch.ones(2, J), 256)
    assert terms.tolist() == pytest.approx([1.0, 1.0], abs=1e-6)
    # the second sample is a 3D sample: it adds nothing, but the batch is still 2
    assert losses.geometric_loss(depth, joints2d, torch.ones(2, J), torch.tensor([1.0, 0.0]), 256).item() == \
        pytest.approx(0.5, abs=1e-6)


def test_bones_with_an_invisible_end_leave_their_group():
    pose = reference_ratio_pose()
    pose[joints.INDEX["l_wrist"]] += [0.0, 0.0, 250.0]  # a wild forearm ...
    depth, joints2d = split(pose)
    visible = torch.ones(1, J)
    assert losses.geometric_terms(depth, joints2d, visible, 256).item() > 1e-4
    visible[0, joints.INDEX["l_wrist"]] = 0.0  # ... that is not annotated
    assert losses.geometric_terms(depth, joints2d, visible, 256).item() == pytest.approx(0.0, abs=1e-12)


def test_each_sample_of_a_mixed_batch_contributes_its_own_term():
    pose = reference_ratio_pose()
    pose[joints.INDEX["r_elbow"], 2] += 60.0
    depth, joints2d = split(pose)
    depth = depth.detach().repeat(2, 1)
    joints2d = joints2d.repeat(2, 1, 1)
    batch = {"heatmaps": torch.zeros(2, J, H, H), "visible": torch.ones(2, J), "joints2d": joints2d,
             "depth": torch.zeros(2, J, dtype=torch.float64), "has3d": torch.tensor([1.0, 0.0])}
    terms = losses.total_loss([torch.zeros(2, J, H, H)], depth, batch, depth_weight=0.1, geometric_weight=0.01,
                              input_size=256)
    expected_depth = (depth[0] ** 2).mean() / 2  # only sample 0 is 3D
    expected_geometric = losses.geometric_terms(depth[1:], joints2d[1:], torch.ones(1, J), 256)[0] / 2
    assert terms["depth"].item() == pytest.approx(expected_depth.item())
    assert terms["geometric"].item() == pytest.approx(expected_geometric.item())
    assert terms["loss"].item() == pytest.approx(0.1 * expected_depth.item() + 0.01 * expected_geometric.item())


@pytest.mark.parametrize("call, message", [
    (lambda: losses.heatmap_loss([], torch.zeros(1, J, H, H), torch.ones(1, J)), "at least one stack"),
    (lambda: losses.heatmap_loss([torch.zeros(1, J, H, 4)], torch.zeros(1, J, H, H), torch.ones(1, J)),
     r"predicted heatmaps: expected shape \(1, 16, 8, 8\), got \(1, 16, 8, 4\)"),
    (lambda: losses.depth_loss(torch.zeros(2, 17), torch.zeros(2, 17), torch.ones(2)), r"expected shape \(\*, 16\)"),
    (lambda: losses.geometric_loss(torch.zeros(2, J), torch.zeros(2, J, 3), torch.ones(2, J), torch.ones(2), 64),
     r"joints2d: expected shape \(2, 16, 2\)"),
])
def test_wrong_shapes_are_refused_before_computing(call, message):
    with pytest.raises(InputError, match=message):
        call()
