"""The JavaScript subscriber of examples/js (zeromq.js + @msgpack/msgpack) against a replayed recording:
installed from the npm registry with its lock file, as a user would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import msgpack
import pytest
from support import free_port

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "js"


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory):
    if os.environ.get("WILDPOSE_SKIP_NPM") == "1":
        pytest.skip("WILDPOSE_SKIP_NPM=1: not installing the JavaScript example's packages from the npm registry")
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js and npm are not installed; the JavaScript example needs them")
    folder = tmp_path_factory.mktemp("js")
    for name in ("package.json", "package-lock.json", "subscriber.mjs"):
        shutil.copy(EXAMPLE / name, folder / name)
    result = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=folder, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, f"npm ci failed (is the npm registry reachable?):\n{result.stderr}"
    return folder


def test_the_javascript_subscriber_receives_every_pose_of_a_replay(installed_example, recorded_session):
    poses = [msgpack.unpackb(m.payload) for m in recorded_session.messages if m.topic.startswith("pose/")]
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    node = subprocess.Popen(["node", "subscriber.mjs", endpoint, str(len(poses))], cwd=installed_example,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # the example subscribes to "pose/" and "meta": two subscriptions
        replay = subprocess.run([sys.executable, "-m", "wildpose.tools.cli", "replay", str(recorded_session.path),
                                 "--publish", endpoint, "--wait-subscribers", "2", "--as-fast-as-possible"],
                                capture_output=True, text=True, timeout=60)
        stdout, stderr = node.communicate(timeout=60)
    finally:
        node.kill()
    assert replay.returncode == 0, replay.stderr
    assert node.returncode == 0, stderr
    assert "meta: 16 joints, streams walker" in stderr
    lines = [json.loads(line) for line in stdout.splitlines()]
    assert [line["seq"] for line in lines] == [p["seq"] for p in poses]
    assert [line["people"][0]["joints3d"] for line in lines] == [p["people"][0]["joints3d"] for p in poses]
