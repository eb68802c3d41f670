"""Recordings to BVH: one skeleton file per tracked person, for Blender and other animation tools.

Each person (stream and id) of a recording becomes `OUT.<stream>.<id>.bvh` (or `OUT` itself when the
recording holds a single person). Frames run at the stream's median frame interval from the first to
the last frame the person was seen in; a frame where they were not seen repeats their last pose. The
skeleton is placed by `root_cam` where the publisher solved it (camera space, see camera_space.py),
else at the origin. Camera axes (y down, z forward) are turned to BVH's Y up; see
training/bvh_export.py for the skeleton's convention.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

import numpy as np

from wildpose.errors import ConfigError
from wildpose.stream import schema
from wildpose.stream.client import PoseMessage, SchemaError, decode
from wildpose.stream.recording import RecordingError, read_all
from wildpose.training import bvh_export

log = logging.getLogger(__name__)

MIN_FRAMES = 2


def check_output(output: str | Path) -> Path:
    output = Path(output)
    if output.suffix.lower() != ".bvh":
        raise ConfigError(f"BVH output must end in .bvh, got {output}")
    if not output.parent.is_dir():
        raise ConfigError(f"BVH output folder {output.parent} does not exist")
    return output


def convert(recordings: list[str | Path], output: str | Path) -> list[Path]:
    """Write the BVH files of every person in `recordings` (the parts of one recording, in order)."""
    output = check_output(output)
    people: dict[tuple[str, int], list[tuple[int, np.ndarray, np.ndarray | None]]] = defaultdict(list)
    seqs: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for path in recordings:
        messages, damage = read_all(path)
        if damage:
            log.warning("%s: %s; converting what it holds", path, damage)
        for message in messages:
            if not message.topic.startswith(schema.POSE_PREFIX):
                continue
            try:
                pose = decode(message.topic.encode(), message.payload)
            except SchemaError as exc:
                log.warning("%s: skipping a malformed pose message (%s)", path, exc)
                continue
            assert isinstance(pose, PoseMessage)
            seqs[pose.stream].append((pose.seq, pose.t_capture))
            for person in pose.people:
                people[(pose.stream, person.id)].append((pose.seq, person.joints3d, person.root_cam))
    kept = {key: frames for key, frames in people.items() if len({seq for seq, _, _ in frames}) >= MIN_FRAMES}
    if not kept:
        raise RecordingError(f"no person was seen in {MIN_FRAMES} or more frames of {', '.join(map(str, recordings))}; "
                             "nothing to write")
    written = []
    for (stream, person_id), frames in sorted(kept.items()):
        target = output if len(kept) == 1 else output.with_name(f"{output.stem}.{stream}.{person_id}.bvh")
        fps = _frame_rate(seqs[stream])
        poses, roots = _fill(frames)
        bvh_export.write_bvh(target, poses @ bvh_export.CAMERA_TO_Y_UP.T, fps,
                             roots @ bvh_export.CAMERA_TO_Y_UP.T)
        log.info("%s: person %d of %s, %d frames at %.2f frames/s", target, person_id, stream, len(poses), fps)
        written.append(target)
    return written


def _frame_rate(frames: list[tuple[int, float]]) -> float:
    """Frames per second from the sequence numbers and capture times of a stream's frames."""
    frames = sorted(set(frames))
    steps = [(t1 - t0) / (s1 - s0) for (s0, t0), (s1, t1) in zip(frames, frames[1:], strict=False)
             if s1 > s0 and t1 > t0]
    return 1.0 / float(np.median(steps)) if steps else 30.0


def _fill(frames: list[tuple[int, np.ndarray, np.ndarray | None]]) -> tuple[np.ndarray, np.ndarray]:
    """Poses `(F, 16, 3)` and roots `(F, 3)` (mm, camera axes) for every frame from the first to the
    last seen, holding the last pose (and root) over frames without one."""
    by_seq = {seq: (pose, root) for seq, pose, root in frames}
    first, last = min(by_seq), max(by_seq)
    poses, roots = [], []
    pose, root = by_seq[first][0], np.zeros(3)
    for seq in range(first, last + 1):
        if seq in by_seq:
            pose = by_seq[seq][0]
            root = by_seq[seq][1] if by_seq[seq][1] is not None else root
        poses.append(pose)
        roots.append(root)
    return np.asarray(poses, np.float64), np.asarray(roots, np.float64)
