"""The one definition of WildPose's 16 joints that every room imports.

Order, names, flip pairs, skeleton edges, the geometric loss's bone groups and the dataset joint
mappings are taken from the paper's reference code (pose-hg-3d); see
`../shared/reference/paper-facts.md`. Nothing else in the project may hard-code a joint index.
"""

from __future__ import annotations

from typing import Final

import numpy as np

# MPII order, 0-indexed (paper-facts.md, "Joints").
NAMES: Final[tuple[str, ...]] = (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle",
    "pelvis", "thorax", "upper_neck", "head_top",
    "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist",
)
NUM_JOINTS: Final[int] = len(NAMES)
INDEX: Final[dict[str, int]] = {name: i for i, name in enumerate(NAMES)}
ROOT: Final[int] = INDEX["pelvis"]

# Left/right pairs swapped by a horizontal flip.
FLIP_PAIRS: Final[tuple[tuple[int, int], ...]] = ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13))

# The 14 bones of the reference skeleton (the thorax lies on none of them). Their summed length is
# the metric prior used to put the weak-perspective 3D output into millimetres.
EDGES: Final[tuple[tuple[int, int], ...]] = (
    (0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5),
    (10, 11), (11, 12), (12, 8), (8, 13), (13, 14), (14, 15),
    (6, 8), (8, 9),
)

# Sum of the 14 bone lengths of the reference's mean Human3.6M skeleton, in mm (pose-hg-3d eval).
SKELETON_SUM_MM: Final[float] = 4296.99

# Bone groups of the geometric loss and each bone's weight (paper-facts.md, "Losses"). A weight makes
# the bones of a group equal in length on the reference skeleton: thigh/shin = 456.0086/452.1255 and
# upper-arm/forearm = 284.1253/249.7726.
_LEG_RATIO: Final[float] = 1.0085885
_ARM_RATIO: Final[float] = 1.1375361
BONE_GROUPS: Final[dict[str, tuple[tuple[tuple[int, int], float], ...]]] = {
    "legs": (((0, 1), _LEG_RATIO), ((1, 2), 1.0), ((3, 4), 1.0), ((4, 5), _LEG_RATIO)),
    "arms": (((10, 11), _ARM_RATIO), ((11, 12), 1.0), ((13, 14), 1.0), ((14, 15), _ARM_RATIO)),
    "hips": (((2, 6), 1.0), ((3, 6), 1.0)),
    "shoulders": (((12, 8), 1.0), ((13, 8), 1.0)),
}

# Right bone, left bone: the pairs whose length difference is the bone-symmetry error.
SYMMETRIC_BONES: Final[tuple[tuple[tuple[int, int], tuple[int, int]], ...]] = (
    ((0, 1), (5, 4)), ((1, 2), (4, 3)), ((2, 6), (3, 6)),
    ((10, 11), (15, 14)), ((11, 12), (14, 13)), ((12, 8), (13, 8)),
)

# Human3.6M's 17 joints (its own order) and the mappings to and from ours.
H36M_NAMES: Final[tuple[str, ...]] = (
    "pelvis", "r_hip", "r_knee", "r_foot", "l_hip", "l_knee", "l_foot", "spine", "thorax",
    "neck", "head", "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist",
)
# ours[i] = h36m[H36M_TO_OURS[i]]; slot 7 (thorax) holds H36M's spine, 8 its thorax, 9 its head.
H36M_TO_OURS: Final[tuple[int, ...]] = (3, 2, 1, 4, 5, 6, 0, 7, 8, 10, 16, 15, 14, 11, 12, 13)
# h36m[j] = ours[OURS_TO_H36M[j]]; H36M's neck and head both come from our head_top (reference code).
OURS_TO_H36M: Final[tuple[int, ...]] = (6, 2, 1, 0, 3, 4, 5, 7, 8, 9, 9, 13, 14, 15, 12, 11, 10)

# MPI-INF-3DHP's 17 joints and the mapping to ours.
MPI_INF_3DHP_NAMES: Final[tuple[str, ...]] = (
    "head_top", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist",
    "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "root", "spine", "head",
)
MPI_INF_3DHP_TO_OURS: Final[tuple[int, ...]] = (10, 9, 8, 11, 12, 13, 14, 15, 1, 0, 4, 3, 2, 5, 6, 7)
# The 14 joints scored by 3DHP's PCK/AUC: all of ours but the pelvis (root) and thorax (spine).
MPI_INF_3DHP_EVAL_JOINTS: Final[tuple[int, ...]] = tuple(i for i in range(NUM_JOINTS) if i not in (6, 7))


def flip_permutation() -> np.ndarray:
    """`(J,)` int index array: joint i of a mirrored image is joint `perm[i]` of the original."""
    perm = np.arange(NUM_JOINTS)
    for a, b in FLIP_PAIRS:
        perm[a], perm[b] = b, a
    return perm


def bone_lengths(joints: np.ndarray) -> np.ndarray:
    """`(..., 14)` lengths of the skeleton's EDGES for joints of shape `(..., J, D)`, any units."""
    edges = np.asarray(EDGES)
    return np.linalg.norm(joints[..., edges[:, 0], :] - joints[..., edges[:, 1], :], axis=-1)


def describe() -> dict:
    """The joint set as published in the stream's `meta` topic and written into model files."""
    return {
        "names": list(NAMES),
        "root": ROOT,
        "edges": [list(e) for e in EDGES],
        "flip_pairs": [list(p) for p in FLIP_PAIRS],
    }
