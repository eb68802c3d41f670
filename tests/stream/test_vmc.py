"""Live VMC: an OSC server on loopback (python-osc) receives, for every frame, the root, the Unity
humanoid bones with unit quaternions, OK and the time; a receiver that is not there stops nothing."""

from __future__ import annotations

import re
import threading
import time

import numpy as np
import pytest
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import ThreadingOSCUDPServer
from support import assert_one_error_line, free_port, wildpose

from wildpose.stream import vmc
from wildpose.training import bvh_export, joints

UNITY_BONES = {"Hips", "Spine", "Neck", "RightShoulder", "RightUpperArm", "RightLowerArm", "LeftShoulder",
               "LeftUpperArm", "LeftLowerArm", "RightUpperLeg", "RightLowerLeg", "LeftUpperLeg", "LeftLowerLeg"}


@pytest.fixture()
def receiver():
    messages: list[tuple[float, str, tuple]] = []
    dispatcher = Dispatcher()
    dispatcher.set_default_handler(lambda address, *args: messages.append((time.monotonic(), address, args)))
    server = ThreadingOSCUDPServer(("127.0.0.1", 0), dispatcher)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], messages
    server.shutdown()


def test_every_frame_reaches_the_receiver_as_unity_bones(pipeline, walker_clip, receiver):
    port, messages = receiver
    run = pipeline("--source", f"walker={walker_clip}", "--detector", "none", "--vmc", f"127.0.0.1:{port}")
    assert run.wait() == 0, run.log
    time.sleep(0.5)
    bones = [args for _, address, args in messages if address == "/VMC/Ext/Bone/Pos"]
    roots = [args for _, address, args in messages if address == "/VMC/Ext/Root/Pos"]
    ok = [args for _, address, args in messages if address == "/VMC/Ext/OK"]
    times = [args[0] for _, address, args in messages if address == "/VMC/Ext/T"]
    published = int(re.search(r"final stats walker: captured \d+, published (\d+)", run.log).group(1))
    # a bundle per published frame; a loaded machine publishes fewer of the clip's frames (stale ones drop)
    assert published >= 5 and len(roots) == len(ok) == len(times) == published
    assert {args[0] for args in bones} == UNITY_BONES and len(bones) == published * len(UNITY_BONES)
    assert all(args[0] == "root" for args in roots) and all(args == (1,) for args in ok)
    quaternions = np.array([args[4:8] for args in bones])
    assert np.allclose(np.linalg.norm(quaternions, axis=1), 1.0, atol=1e-5)
    rate = (len(times) - 1) / (times[-1] - times[0])
    print(f"{rate:.1f} bundles/s for {published} frames published (the clip runs at 24 frames/s)")
    # paced with the clip (24 frames/s): never faster, however many frames a loaded machine drops
    assert np.all(np.diff(times) > 0) and rate < 30


def test_a_t_pose_sends_identity_rotations_and_a_bent_elbow_turns_one_bone():
    rest = bvh_export._rest_positions({name: 300.0 for name, _ in bvh_export.TREE[1:]})
    pose = np.array([rest[name] for name in joints.NAMES])
    rotations = vmc.bone_rotations(pose)
    assert all(np.allclose(np.abs(q[3]), 1.0, atol=1e-6) for q in rotations.values())
    bent = pose.copy()
    bent[joints.INDEX["r_wrist"]] = pose[joints.INDEX["r_elbow"]] + [0.0, 300.0, 0.0]  # forearm up
    turned = {bone for bone, q in vmc.bone_rotations(bent).items() if not np.isclose(abs(q[3]), 1.0, atol=1e-6)}
    assert turned == {"RightLowerArm"}


def test_a_receiver_that_is_not_there_stops_nothing(pipeline, walker_clip):
    run = pipeline("--source", f"walker={walker_clip}", "--every-frame", "--detector", "none",
                   "--vmc", f"127.0.0.1:{free_port()}")
    assert run.wait() == 0, run.log
    assert "published 48" in run.log
    assert len(re.findall(r"VMC: cannot send to 127\.0\.0\.1:\d+ \(Connection refused\)", run.log)) == 1, run.log


@pytest.mark.parametrize("args, fragment", [
    (["--vmc", "localhost:notaport"], "expects HOST:PORT"),
    (["--vmc", "127.0.0.1:70000"], "port must be 1..65535"),
    (["--vmc", "127.0.0.1:39539", "--vmc-stream", "door"], "is not a stream of this run"),
    (["--vmc", "no-such-host.invalid:39539"], "--vmc no-such-host.invalid:39539"),
])
def test_bad_vmc_settings_get_one_clear_line(walker_clip, args, fragment):
    assert_one_error_line(wildpose("run", "--source", f"walker={walker_clip}", *args), fragment)
