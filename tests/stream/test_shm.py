"""Shared-memory rings: what is written comes back; a lapped slot is detected, never torn; a ring
that does not fit in /dev/shm is refused up front, not discovered by a SIGBUS."""

import subprocess
import sys

import numpy as np
import pytest
from support import assert_one_error_line, skip_without_small_disks, small_disk_command

from wildpose.stream.shm import SlotRing


@pytest.fixture()
def ring():
    created = SlotRing.create(f"wp_test_{np.random.default_rng().integers(1 << 30)}", slots=3, slot_bytes=64 * 48 * 3)
    yield created
    created.close()


def test_an_array_comes_back_with_its_shape(ring):
    frame = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    ring.write(7, frame)
    assert np.array_equal(ring.read(7), frame)


def test_a_child_attached_by_spec_reads_the_same_bytes(ring):
    ring.write(0, np.full((2, 4, 4, 3), 9, np.uint8))
    other = SlotRing.attach(ring.spec)
    try:
        assert other.read(0).shape == (2, 4, 4, 3) and other.read(0).max() == 9
    finally:
        other.close()


def test_crops_can_be_read_straight_into_a_buffer_after_others(ring):
    crops = np.random.default_rng(1).integers(0, 255, (2, 8, 8, 3), dtype=np.uint8)
    ring.write(3, crops)
    buffer = np.zeros((5, 8, 8, 3), np.uint8)
    assert ring.read_into(3, buffer[1:]) == (2, 8, 8, 3)
    assert np.array_equal(buffer[1:3], crops) and not buffer[0].any() and not buffer[3:].any()
    assert ring.read_into(3, buffer[4:]) is None  # two crops do not fit in one row
    assert ring.read_into(3, np.zeros((2, 4, 4, 3), np.uint8)) is None  # another crop size
    ring.write(6, crops)  # laps seq 3
    assert ring.read_into(3, buffer) is None


def test_whole_frames_can_be_read_one_after_another_into_a_flat_buffer(ring):
    frames = [np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8) for seed in (2, 3)]
    ring.write(0, frames[0])
    ring.write(1, frames[1][:24])  # frames of a stream may change size
    staging = np.zeros(2 * frames[0].nbytes, np.uint8)
    first = ring.read_flat_into(0, staging)
    second = ring.read_flat_into(1, staging[first.nbytes:])
    assert np.array_equal(first, frames[0]) and np.array_equal(second, frames[1][:24])
    assert np.shares_memory(first, staging) and np.shares_memory(second, staging)
    assert ring.read_flat_into(0, staging[:100]) is None  # does not fit
    ring.write(3, frames[1])  # laps seq 0
    assert ring.read_flat_into(0, staging) is None


def test_an_overwritten_slot_reads_as_none(ring):
    ring.write(1, np.zeros((4, 4), np.uint8))
    ring.write(4, np.ones((4, 4), np.uint8))  # 4 % 3 == 1: laps seq 1
    assert ring.read(1) is None
    assert ring.read(4).max() == 1
    assert ring.read(2) is None  # never written


def test_a_half_written_slot_reads_as_none(ring):
    ring.write(2, np.zeros((4, 4), np.uint8))
    ring._header(2)[0] = 5  # a writer has begun seq 5 in this slot and not finished
    assert ring.read(2) is None


def test_arrays_too_large_for_a_slot_are_refused(ring):
    with pytest.raises(ValueError, match="cannot store"):
        ring.write(0, np.zeros((100, 100, 3), np.uint8))


def test_closing_the_owner_unlinks_the_segment():
    ring = SlotRing.create("wp_test_unlink", slots=1, slot_bytes=8)
    ring.close()
    with pytest.raises(FileNotFoundError):
        SlotRing.attach(ring.spec)


def in_small_shm(megabytes: int, *command: str) -> subprocess.CompletedProcess:
    """`command` with /dev/shm a tmpfs of `megabytes` (as in a container; Docker's default is 64 MB),
    in a mount namespace of its own, so the machine's /dev/shm is untouched."""
    return subprocess.run(small_disk_command("/dev/shm", f"size={megabytes}m", list(command)), capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def mount_namespaces():
    skip_without_small_disks()


def test_a_ring_that_does_not_fit_is_refused_at_creation_and_leaves_nothing_behind(mount_namespaces):
    """Its memory is reserved at once: without that, the segment is created sparse and the first
    write past the tmpfs limit kills the writer with SIGBUS."""
    probe = ("import os\n"
             "from wildpose.errors import PipelineError\n"
             "from wildpose.stream.shm import SlotRing\n"
             "try:\n"
             "    SlotRing.create('wp_too_big', slots=6, slot_bytes=1920 * 1080 * 3)\n"
             "except PipelineError as exc:\n"
             "    print(exc)\n"
             "print(sorted(os.listdir('/dev/shm')))\n")
    result = in_small_shm(8, sys.executable, "-c", probe)
    assert result.returncode == 0, result.stderr
    message, left = result.stdout.splitlines()
    assert message.startswith("not enough shared memory: the frame and crop rings need 36 MB, /dev/shm has 8 MB free")
    assert "--shm-size" in message and left == "[]"


def test_a_run_whose_rings_do_not_fit_in_shm_says_so_in_one_line(mount_namespaces, walker_clip):
    """Before this check the run started, and its capture process died of SIGBUS and was restarted
    forever (a 4 MB /dev/shm and the 640x360 clip)."""
    result = in_small_shm(4, sys.executable, "-m", "wildpose.tools.cli", "run", "--source", str(walker_clip),
                          "--every-frame", "--detector", "none", "--publish", "ipc:///tmp/wildpose-small-shm.sock")
    assert_one_error_line(result, "not enough shared memory", "/dev/shm has 4 MB free", "--shm-size")


def test_crop_slots_reserve_one_person_and_a_crowd_that_may_not_fit_is_warned_of(mount_namespaces, walker_clip):
    """A crop slot has room for max_people crops; reserving them all would refuse runs that never see
    a crowd, so one crop a slot is reserved and the worst case is logged, with a warning when
    /dev/shm could not hold it (8 MB here: 6 MB reserved, up to 17 MB)."""
    result = in_small_shm(8, sys.executable, "-m", "wildpose.tools.cli", "run", "--source", str(walker_clip),
                          "--every-frame", "--detector", "none", "--publish", "ipc:///tmp/wildpose-small-shm.sock")
    assert result.returncode == 0, result.stderr
    assert "shared memory: 6 MB reserved for the frame and crop rings, up to 17 MB with 8 people" in result.stderr
    assert "crowds of 8 in many frames would need 17 MB, more than the 8 MB free" in result.stderr
    assert "published 48" in result.stderr
