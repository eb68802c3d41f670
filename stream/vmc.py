"""Live VMC (Virtual Motion Capture protocol: OSC over UDP) for VSeeFace, Warudo, Unity (EVMC4U) and
the Blender add-ons that receive it.

For each published frame of the chosen stream, the chosen person's pose becomes one OSC bundle:
`/VMC/Ext/Root/Pos` ("root" at the origin), `/VMC/Ext/Bone/Pos` for each Unity humanoid bone we can
drive (name, local position in metres, local rotation as a quaternion x, y, z, w), `/VMC/Ext/OK 1`
and `/VMC/Ext/T` (seconds since the start). Rotations come from training/bvh_export.py: each bone
turned from the T-pose onto the posed bone, which is what a normalised humanoid (VRM) expects.
Unity is left-handed (X right, Y up, Z forward, the avatar facing +Z), so our right-handed Y-up
rotations are mirrored across X. The Hips position is the person's `root_cam` when the publisher
solved it (camera space, in metres, Y up), else 1 m above the origin.
"""

from __future__ import annotations

import logging
import socket
import time

import numpy as np
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder
from scipy.spatial.transform import Rotation

from wildpose.errors import ConfigError
from wildpose.training import bvh_export

log = logging.getLogger(__name__)

DEFAULT_PORT = 39539  # the receiving side's (Marionette's) usual port
# Unity humanoid bone <- (our joint whose world rotation it takes, the joint whose world rotation is
# its parent's); leaves (hands, feet, head) keep their parent's rotation
BONES: tuple[tuple[str, str, str | None], ...] = (
    ("Hips", "pelvis", None),
    ("Spine", "thorax", "pelvis"),
    ("Neck", "upper_neck", "thorax"),
    ("RightShoulder", "r_clavicle", "upper_neck"), ("RightUpperArm", "r_shoulder", "r_clavicle"),
    ("RightLowerArm", "r_elbow", "r_shoulder"),
    ("LeftShoulder", "l_clavicle", "upper_neck"), ("LeftUpperArm", "l_shoulder", "l_clavicle"),
    ("LeftLowerArm", "l_elbow", "l_shoulder"),
    ("RightUpperLeg", "r_hip", "pelvis"), ("RightLowerLeg", "r_knee", "r_hip"),
    ("LeftUpperLeg", "l_hip", "pelvis"), ("LeftLowerLeg", "l_knee", "l_hip"),
)
_MIRROR_X = np.diag([-1.0, 1.0, 1.0])


def parse_target(text: str) -> tuple[str, int]:
    """"HOST:PORT", ":PORT" or "PORT" (loopback) -> (host, port)."""
    host, _, port = text.rpartition(":") if ":" in text else ("", "", text)
    host = host or "127.0.0.1"
    try:
        number = int(port)
    except ValueError:
        raise ConfigError(f"--vmc expects HOST:PORT (e.g. 127.0.0.1:{DEFAULT_PORT}), got {text!r}") from None
    if not 1 <= number <= 65535:
        raise ConfigError(f"--vmc port must be 1..65535, got {number}")
    return host, number


def bone_rotations(pose_y_up: np.ndarray) -> dict[str, np.ndarray]:
    """Unity bone -> local rotation quaternion (x, y, z, w), Unity axes, for one `(16, 3)` Y-up pose."""
    poses = pose_y_up[None]
    world = bvh_export.global_rotations(poses, bvh_export.bone_lengths(poses))
    result = {}
    for bone, joint, parent in BONES:
        local = world[joint][0] if parent is None else world[parent][0].T @ world[joint][0]
        mirrored = _MIRROR_X @ local @ _MIRROR_X
        result[bone] = Rotation.from_matrix(mirrored).as_quat()  # scipy's order is x, y, z, w
    return result


class VmcSender:
    """Sends one person's pose per frame to a VMC receiver; never raises on a network error (the
    pose stream must keep running), but says so in the log once a minute."""

    def __init__(self, target: str, person: int | None = None) -> None:
        self.host, self.port = parse_target(target)
        self.person = person
        # a connected UDP socket, so that "nothing listens there" comes back as an error to report
        # (an unconnected one, as python-osc's client uses, never hears of it)
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.socket.connect((self.host, self.port))
        except OSError as exc:
            self.socket.close()
            raise ConfigError(f"--vmc {self.host}:{self.port}: {exc.strerror or exc}") from None
        self.started = time.monotonic()
        self.sent = 0
        self.failed = 0
        self._next_warning = 0.0

    def send(self, people: list[tuple[int, np.ndarray, np.ndarray | None]]) -> None:
        """`people`: the frame's (id, joints3d mm camera axes, root_cam mm or None); the chosen id, or
        the lowest id in view."""
        chosen = [p for p in people if self.person is None or p[0] == self.person]
        if not chosen:
            return
        _, joints3d, root_cam = min(chosen, key=lambda p: p[0])
        pose = np.asarray(joints3d, np.float64) @ bvh_export.CAMERA_TO_Y_UP.T
        rotations = bone_rotations(pose)
        if root_cam is not None:
            hips = (np.asarray(root_cam, np.float64) @ bvh_export.CAMERA_TO_Y_UP.T) / 1000.0 * [-1, 1, 1]
        else:
            hips = np.array([0.0, 1.0, 0.0])
        bundle = OscBundleBuilder(IMMEDIATELY)
        bundle.add_content(_message("/VMC/Ext/Root/Pos", ["root", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]))
        for bone, quaternion in rotations.items():
            position = hips if bone == "Hips" else np.zeros(3)
            bundle.add_content(_message("/VMC/Ext/Bone/Pos", [bone, *map(float, position), *map(float, quaternion)]))
        bundle.add_content(_message("/VMC/Ext/OK", [1]))
        bundle.add_content(_message("/VMC/Ext/T", [float(time.monotonic() - self.started)]))
        try:
            self.socket.send(bundle.build().dgram)
            self.sent += 1
        except OSError as exc:
            self.failed += 1
            now = time.monotonic()
            if now >= self._next_warning:
                log.warning("VMC: cannot send to %s:%d (%s); poses are still published, VMC frames are "
                            "dropped until the receiver is back", self.host, self.port, exc.strerror or exc)
                self._next_warning = now + 60.0


def _message(address: str, arguments: list) -> object:
    builder = OscMessageBuilder(address=address)
    for argument in arguments:
        builder.add_arg(argument)
    return builder.build()
