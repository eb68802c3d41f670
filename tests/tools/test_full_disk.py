"""Commands that write files, on a disk with no room or a read-only one: one line naming what could
not be written and what to do, never a traceback. Each runs in a mount namespace of its own with a
small tmpfs mounted over a temporary folder (a full disk in minutes of a long job, without filling one)."""

import os
import subprocess
import sys
from pathlib import Path

from support import assert_one_error_line, skip_without_small_disks, small_disk_command

CHECKPOINT = Path(__file__).resolve().parents[2] / "weights" / "realtime-synthpose.pt"


def on_a_small_disk(disk: Path, options: str, *wildpose_args: str) -> subprocess.CompletedProcess:
    skip_without_small_disks()
    command = [sys.executable, "-m", "wildpose.tools.cli", *wildpose_args]
    return subprocess.run(small_disk_command(disk, options, command), capture_output=True, text=True, timeout=300,
                          env={**os.environ, "WILDPOSE_DEBUG": ""})


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
