"""Commands that write files, on a disk with no room or a read-only one: one line naming what could
not be written and what to do, never a traceback. Each runs in a mount namespace of its own with a
small tmpfs mounted over a temporary folder (a full disk in minutes of a long job, without filling one)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import assert_one_error_line

CHECKPOINT = Path(__file__).resolve().parents[2] / "weights" / "realtime-synthpose.pt"


def on_a_small_disk(disk: Path, options: str, *wildpose_args: str) -> subprocess.CompletedProcess:
    script = f"mount -t tmpfs -o {options} tmpfs {disk} || exit 99; exec \"$@\""
    result = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", sys.executable, "-m", "wildpose.tools.cli",
                             *wildpose_args], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "WILDPOSE_DEBUG": ""})
    if result.returncode == 99:
        pytest.skip("needs `unshare -m` and tmpfs mounts (root, or a user namespace) to give a command a small disk")
    return result


def test_an_export_that_does_not_fit_names_the_file(tmp_path):
    output = tmp_path / "models" / "model.onnx"
    result = on_a_small_disk(tmp_path, "size=100k", "export", str(CHECKPOINT), "-o", str(output))
    assert_one_error_line(result, f"No space left on device: {output}", "free some space")


def test_a_triton_repository_that_does_not_fit_names_the_folder(tmp_path):
    result = on_a_small_disk(tmp_path, "size=100k", "export", "--triton-repo", str(tmp_path / "repo"))
    assert_one_error_line(result, f"No space left on device: {tmp_path / 'repo'}", "free some space")


def test_an_export_to_a_read_only_file_system_says_so(tmp_path):
    result = on_a_small_disk(tmp_path, "size=1m,ro", "export", str(CHECKPOINT), "-o", str(tmp_path / "model.onnx"))
    assert_one_error_line(result, "Read-only file system", "write to another file system")
