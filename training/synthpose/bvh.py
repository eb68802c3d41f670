"""A small BVH reader and numpy forward kinematics, so SynthPose can pose figures from CMU mocap.

We read the files ourselves rather than add a dependency: the format is small, but the CMU releases we
use differ in joint names, channel order (ZYX on most joints, ZXY on the 3dsMax release's arms) and
line endings (mixed CRLF/LF), and a malformed file must fail with its name and line, not deep in numpy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wildpose.errors import MocapError

log = logging.getLogger(__name__)

POSITION_CHANNELS = ("Xposition", "Yposition", "Zposition")
ROTATION_CHANNELS = ("Xrotation", "Yrotation", "Zrotation")
END_SITE_SUFFIX = "_end"  # an End Site is reported as a joint named after its parent plus this


@dataclass(frozen=True)
class BvhJoint:
    """One node of the hierarchy. `offset` is in file units, in the parent's frame; an End Site has
    no channels and is named `<parent>_end`. `first_channel` indexes its channels in a motion row."""

    name: str
    parent: int  # index into Bvh.joints; -1 for the root
    offset: tuple[float, float, float]
    channels: tuple[str, ...]
    first_channel: int

    @property
    def is_end_site(self) -> bool:
        return not self.channels and self.name.endswith(END_SITE_SUFFIX)


@dataclass(frozen=True, eq=False)
class Bvh:
    """A parsed BVH file: the joints in file order (parents before children) and `motion`,
    `(F, C)` float64 channel values (degrees for rotations, file units for positions)."""

    source: str
    joints: tuple[BvhJoint, ...]
    frame_time: float  # seconds
    motion: np.ndarray

    @property
    def num_frames(self) -> int:
        return int(self.motion.shape[0])

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(j.name for j in self.joints)

    def index(self, name: str) -> int:
        """Index of the joint called `name` (End Sites are `<parent>_end`)."""
        for i, joint in enumerate(self.joints):
            if joint.name == name:
                return i
        raise MocapError(f"{self.source}: expected a joint named {name!r}, got only {list(self.names)}; "
                         "fix: check the skeleton's naming scheme")


class _Tokens:
    """Whitespace tokens of the HIERARCHY section with the line each came from, for error messages."""

    def __init__(self, lines: list[str], source: str) -> None:
        self.items: list[tuple[str, int]] = []
        self.source = source
        self.motion_line = None  # 0-based index of the line holding MOTION
        for number, line in enumerate(lines):
            words = line.split()
            if words[:1] == ["MOTION"]:
                self.motion_line = number
                break
            self.items.extend((word, number + 1) for word in words)
        self.pos = 0

    def error(self, expected: str, got: str | None = None, line: int | None = None) -> MocapError:
        if line is None:
            line = self.items[min(self.pos, len(self.items) - 1)][1] if self.items else 1
        got_text = "end of the hierarchy" if got is None else repr(got)
        return MocapError(f"{self.source}:{line}: expected {expected}, got {got_text}; "
                          "fix: the BVH file is malformed or truncated, re-export or re-download it")

    def next(self, expected: str) -> tuple[str, int]:
        if self.pos >= len(self.items):
            raise self.error(expected)
        item = self.items[self.pos]
        self.pos += 1
        return item

    def expect(self, word: str) -> int:
        token, line = self.next(repr(word))
        if token != word:
            raise self.error(repr(word), token, line)
        return line

    def number(self, what: str) -> float:
        token, line = self.next(what)
        try:
            return float(token)
        except ValueError:
            raise self.error(what, token, line) from None

    def peek(self) -> str | None:
        return self.items[self.pos][0] if self.pos < len(self.items) else None


def _parse_joint(tokens: _Tokens, name: str, parent: int, joints: list[BvhJoint], num_channels: int) -> int:
    """Parse `{ OFFSET .. CHANNELS .. children }` of joint `name`; returns the channel count so far."""
    tokens.expect("{")
    tokens.expect("OFFSET")
    offset = tuple(tokens.number("an OFFSET coordinate") for _ in range(3))
    channels: tuple[str, ...] = ()
    if tokens.peek() == "CHANNELS":
        tokens.next("CHANNELS")
        count_token, line = tokens.next("a channel count")
        if not count_token.isdigit() or not 0 <= int(count_token) <= 6:
            raise tokens.error("a channel count 0..6", count_token, line)
        names = []
        for _ in range(int(count_token)):
            channel, line = tokens.next("a channel name")
            if channel not in POSITION_CHANNELS + ROTATION_CHANNELS:
                raise tokens.error(f"a channel name in {POSITION_CHANNELS + ROTATION_CHANNELS}", channel, line)
            names.append(channel)
        if len(set(names)) != len(names):
            raise tokens.error("each channel at most once", " ".join(names), line)
        channels = tuple(names)
    index = len(joints)
    joints.append(BvhJoint(name, parent, offset, channels, num_channels))  # type: ignore[arg-type]
    num_channels += len(channels)
    while True:
        token, line = tokens.next("JOINT, End Site or '}'")
        if token == "}":
            return num_channels
        if token == "JOINT":
            child, _ = tokens.next("a joint name")
            num_channels = _parse_joint(tokens, child, index, joints, num_channels)
        elif token == "End":
            tokens.expect("Site")
            tokens.expect("{")
            tokens.expect("OFFSET")
            end_offset = tuple(tokens.number("an OFFSET coordinate") for _ in range(3))
            tokens.expect("}")
            joints.append(BvhJoint(name + END_SITE_SUFFIX, index, end_offset, (), num_channels))  # type: ignore[arg-type]
        else:
            raise tokens.error("JOINT, End Site or '}'", token, line)


def _header_value(lines: list[str], number: int, key: str, source: str) -> str:
    line = lines[number] if number < len(lines) else ""
    if not line.strip().startswith(key):
        got = repr(line.strip()) if number < len(lines) else "end of file"
        raise MocapError(f"{source}:{number + 1}: expected '{key} ...', got {got}; "
                         "fix: the BVH file is malformed or truncated, re-export or re-download it")
    return line.strip()[len(key):].strip()


def _parse_motion(lines: list[str], start: int, num_frames: int, num_channels: int, source: str) -> np.ndarray:
    """`(F, C)` from the frame lines after `Frame Time:`; locates the bad line only on failure."""
    rows = lines[start:]
    text = " ".join(rows)
    try:
        values = np.array(text.split(), dtype=np.float64)
    except ValueError:
        values = None
    if values is not None and values.size == num_frames * num_channels:
        return values.reshape(num_frames, num_channels)
    frame = 0
    for number, line in enumerate(rows, start=start + 1):
        words = line.split()
        if not words:
            continue
        frame += 1
        if frame > num_frames:
            raise MocapError(f"{source}:{number}: expected {num_frames} frames as the header says, got "
                             "more; fix: correct the 'Frames:' count or remove the extra lines")
        if len(words) != num_channels:
            raise MocapError(f"{source}:{number}: expected {num_channels} values in frame {frame} (one per "
                             f"channel), got {len(words)}; fix: the file is truncated or corrupt")
        for word in words:
            try:
                float(word)
            except ValueError:
                raise MocapError(f"{source}:{number}: expected numbers in frame {frame}, got {word!r}; "
                                 "fix: the file is corrupt") from None
    raise MocapError(f"{source}:{len(lines)}: expected {num_frames} frames as the header says, got {frame}; "
                     "fix: the file is truncated, re-download it")


def parse_bvh(text: str, source: str = "<string>") -> Bvh:
    """Parse BVH text (CRLF, LF or both). `source` names the file in error messages."""
    lines = text.splitlines()  # splits on \r\n, \n and a lone \r alike
    tokens = _Tokens(lines, source)
    tokens.expect("HIERARCHY")
    tokens.expect("ROOT")
    root, _ = tokens.next("the root joint's name")
    joints: list[BvhJoint] = []
    num_channels = _parse_joint(tokens, root, -1, joints, 0)
    if tokens.peek() is not None:
        token, line = tokens.next("MOTION")
        raise tokens.error("MOTION after the root joint's '}' (one ROOT per file)", token, line)
    if tokens.motion_line is None:
        raise MocapError(f"{source}:{len(lines)}: expected a MOTION section, got end of file; "
                         "fix: the file is truncated, re-download it")
    names = [j.name for j in joints]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise MocapError(f"{source}: expected unique joint names, got duplicates {duplicates}; "
                         "fix: rename the joints in the file")
    frames_line = tokens.motion_line + 1
    frames_text = _header_value(lines, frames_line, "Frames:", source)
    if not frames_text.isdigit():
        raise MocapError(f"{source}:{frames_line + 1}: expected a whole number of frames, got {frames_text!r}; "
                         "fix: correct the 'Frames:' line")
    frame_time_text = _header_value(lines, frames_line + 1, "Frame Time:", source)
    try:
        frame_time = float(frame_time_text)
    except ValueError:
        frame_time = -1.0
    if not frame_time > 0:
        raise MocapError(f"{source}:{frames_line + 2}: expected a positive frame time in seconds, got "
                         f"{frame_time_text!r}; fix: correct the 'Frame Time:' line")
    motion = _parse_motion(lines, frames_line + 2, int(frames_text), num_channels, source)
    return Bvh(source=source, joints=tuple(joints), frame_time=frame_time, motion=motion)


def load_bvh(path: str | Path) -> Bvh:
    """Read and parse a BVH file; a missing or unreadable file is a `MocapError` naming it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="latin-1")
    except OSError as exc:
        raise MocapError(f"{path}: expected a readable BVH file, got {exc.strerror or exc}; "
                         "fix: check the path (mocap lives in ../shared/data/cmu_mocap)") from None
    bvh = parse_bvh(text, source=str(path))
    log.debug("read %s: %d joints, %d frames at %.1f fps", path.name, len(bvh.joints), bvh.num_frames, bvh.fps)
    return bvh


def _axis_rotation(axis: str, degrees: np.ndarray) -> np.ndarray:
    """`(F, 3, 3)` rotation about the x, y or z axis (right-handed, counter-clockwise)."""
    a = np.radians(degrees)
    c, s = np.cos(a), np.sin(a)
    one, zero = np.ones_like(a), np.zeros_like(a)
    if axis == "X":
        rows = ((one, zero, zero), (zero, c, -s), (zero, s, c))
    elif axis == "Y":
        rows = ((c, zero, s), (zero, one, zero), (-s, zero, c))
    else:
        rows = ((c, -s, zero), (s, c, zero), (zero, zero, one))
    return np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)


def local_transforms(bvh: Bvh, frames: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per joint local rotation `(F, J, 3, 3)` and translation `(F, J, 3)` (file units).

    BVH semantics: rotation channels compose in the order listed (`Zrotation Yrotation Xrotation`
    means R = Rz @ Ry @ Rx, so X applies to the vector first); position channels are added to OFFSET.
    """
    motion = bvh.motion if frames is None else bvh.motion[np.asarray(frames)]
    num_frames = motion.shape[0]
    rotations = np.broadcast_to(np.eye(3), (num_frames, len(bvh.joints), 3, 3)).copy()
    translations = np.broadcast_to(np.asarray([j.offset for j in bvh.joints], np.float64),
                                   (num_frames, len(bvh.joints), 3)).copy()
    for j, joint in enumerate(bvh.joints):
        for k, channel in enumerate(joint.channels):
            values = motion[:, joint.first_channel + k]
            if channel in POSITION_CHANNELS:
                translations[:, j, POSITION_CHANNELS.index(channel)] += values
            else:
                rotations[:, j] = rotations[:, j] @ _axis_rotation(channel[0], values)
    return rotations, translations


def forward_kinematics(bvh: Bvh, unit_mm: float, frames: np.ndarray | None = None) -> np.ndarray:
    """World positions of every joint (End Sites included), `(F, J, 3)` float64 in millimetres.

    `unit_mm` is the length of one file unit in mm (the file does not say; CMU's is 56.444). Axes are
    the file's (y-up for CMU). `frames` selects frame indices; default all.
    """
    if not unit_mm > 0:
        raise ValueError(f"unit_mm must be positive, got {unit_mm}")
    rotations, translations = local_transforms(bvh, frames)
    num_frames, num_joints = translations.shape[:2]
    world_rot = np.empty_like(rotations)
    world_pos = np.empty((num_frames, num_joints, 3))
    for j, joint in enumerate(bvh.joints):  # file order puts parents first
        if joint.parent < 0:
            world_rot[:, j] = rotations[:, j]
            world_pos[:, j] = translations[:, j]
        else:
            parent_rot = world_rot[:, joint.parent]
            world_rot[:, j] = parent_rot @ rotations[:, j]
            world_pos[:, j] = world_pos[:, joint.parent] + np.einsum("fij,fj->fi", parent_rot, translations[:, j])
    return world_pos * unit_mm
