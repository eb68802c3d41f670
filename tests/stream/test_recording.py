"""Recording and replay on real parts: a real pipeline recorded by `wildpose record`, replayed by
`wildpose replay` to real ZeroMQ subscribers, files read back with the mcap library."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import msgpack
import numpy as np
import pytest
from mcap.reader import make_reader
from support import RawSubscriber, free_port, skip_without_small_disks, small_disk_command

from wildpose.stream import recording


def replay_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "wildpose.tools.cli", "replay", *args]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("wildpose: error:")]


def test_a_recording_holds_every_topic_with_receive_times_and_its_schemas(recorded_session):
    messages = recorded_session.messages
    topics = {m.topic for m in messages}
    assert topics == {"meta", "pose/walker", "stats/walker", "frame/walker"}
    assert messages[0].topic == "meta"  # the publisher greets each subscriber with it
    times = [m.log_time_ns for m in messages]
    assert times == sorted(times)
    poses = [msgpack.unpackb(m.payload) for m in messages if m.topic == "pose/walker"]
    assert [p["seq"] for p in poses] == sorted(p["seq"] for p in poses) and poses[-1]["seq"] == 47
    with open(recorded_session.path, "rb") as file:  # the mcap library's own reader agrees
        reader = make_reader(file)
        channels = {c.topic: c for c in reader.get_summary().channels.values()}
        schemas = reader.get_summary().schemas
        assert {c.message_encoding for c in channels.values()} == {recording.MESSAGE_ENCODING}
        assert schemas[channels["pose/walker"].schema_id].name == "wildpose.pose.v1"
        assert schemas[channels["frame/walker"].schema_id].encoding == recording.SCHEMA_ENCODING
        assert [m.data for _, _, m in reader.iter_messages()] == [m.payload for m in messages]


def test_replay_round_trips_every_message_byte_for_byte_at_the_recorded_pace(recorded_session):
    messages = recorded_session.messages
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    with RawSubscriber(endpoint) as subscriber:
        replay = subprocess.Popen(replay_command(str(recorded_session.path), "--publish", endpoint,
                                                 "--wait-subscribers", "1"), stderr=subprocess.PIPE, text=True)
        received = subscriber.receive(len(messages), timeout=30)
        _, stderr = replay.communicate(timeout=30)
    assert replay.returncode == 0, stderr
    assert [(t, p) for t, p, _ in received] == [(m.topic, m.payload) for m in messages]
    # The meta reaches a subscriber when it subscribes, so gaps are compared from the first pose on.
    recorded_gaps = np.diff([m.log_time_ns / 1e9 for m in messages[1:]])
    received_gaps = np.diff([arrival for *_, arrival in received[1:]])
    error_ms = np.median(np.abs(received_gaps - recorded_gaps)) * 1000
    assert error_ms < 5.0, f"median inter-arrival error {error_ms:.2f} ms"


def cut(recorded_session, tmp_path, whole_messages: int, extra_bytes: int):
    """The recording cut `extra_bytes` past its `whole_messages`-th message record."""
    reader = recording.RecordingReader(recorded_session.path)
    for index, _ in enumerate(reader.messages()):
        if index + 1 == whole_messages:
            break
    end = reader.good_bytes
    truncated = tmp_path / "truncated.mcap"
    truncated.write_bytes(recorded_session.path.read_bytes()[:end + extra_bytes])
    return truncated, end


@pytest.mark.parametrize("extra_bytes, damage", [
    (0, "it ends without the MCAP footer"),  # the recorder was killed between two messages
    (5, "it ends in the middle of a record"),  # ... in the middle of the length field
    (300, "it ends in the middle of a record"),  # ... in the middle of a message
])
def test_a_truncated_recording_replays_to_its_last_whole_message_and_says_where_it_stopped(
        recorded_session, tmp_path, extra_bytes, damage):
    whole = len(recorded_session.messages) // 2
    truncated, end = cut(recorded_session, tmp_path, whole, extra_bytes)
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    with RawSubscriber(endpoint) as subscriber:
        replay = subprocess.Popen(replay_command(str(truncated), "--publish", endpoint, "--wait-subscribers", "1",
                                                 "--as-fast-as-possible"), stderr=subprocess.PIPE, text=True)
        _, stderr = replay.communicate(timeout=30)  # all sent (the socket lingers until they are out)
        received = subscriber.receive(len(recorded_session.messages), timeout=0.5)
    assert [p for _, p, _ in received] == [m.payload for m in recorded_session.messages[:whole]]
    assert replay.returncode == 1 and "Traceback" not in stderr
    (line,) = error_lines(stderr)
    assert damage in line and f"replayed its {whole} whole messages" in line
    assert f"stopped at byte {end} of {end + extra_bytes}" in line


def test_recording_rotates_files_by_size_and_the_parts_replay_as_one(recorded_session, tmp_path):
    source = f"tcp://127.0.0.1:{free_port()}"
    output = tmp_path / "rotated.mcap"
    recorder = subprocess.Popen([sys.executable, "-m", "wildpose.tools.cli", "record", "--endpoint", source,
                                 "--output", str(output), "--max-bytes", "65536", "--idle-timeout", "1"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # the session is replayed as often as it takes to fill three files: a loaded machine records fewer
    # frames (and thumbnails) in the fixture's seconds
    copies = math.ceil(3 * recording.MIN_FILE_BYTES / recorded_session.path.stat().st_size)
    replay = subprocess.run(replay_command(*[str(recorded_session.path)] * copies, "--publish", source,
                                           "--wait-subscribers", "1", "--as-fast-as-possible"),
                            capture_output=True, text=True, timeout=60)
    stdout, stderr = recorder.communicate(timeout=60)
    assert replay.returncode == 0 and recorder.returncode == 0, replay.stderr + stderr
    parts = [line for line in stdout.splitlines() if line]
    assert len(parts) >= 2 and parts[0].endswith("rotated.000.mcap"), parts
    # a file is closed once it reached the limit: it exceeds it by at most one message and the footer
    assert all(65536 <= Path(part).stat().st_size < 2 * 65536 for part in parts[:-1])
    for part in parts[1:]:  # each part starts with the meta, so it replays alone
        assert recording.read_all(part)[0][0].topic == "meta"
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    once = [(m.topic, m.payload) for m in recorded_session.messages]
    expected = once + [pair for pair in once if pair[0] != "meta"] * (copies - 1)  # an unchanged meta goes once
    with RawSubscriber(endpoint) as subscriber:
        again = subprocess.Popen(replay_command(*parts, "--publish", endpoint, "--wait-subscribers", "1",
                                                "--as-fast-as-possible"), stderr=subprocess.PIPE, text=True)
        _, again_stderr = again.communicate(timeout=30)
        received = subscriber.receive(len(expected) + 10, timeout=0.5)
    assert again.returncode == 0, again_stderr
    assert [(t, p) for t, p, _ in received] == expected


def test_a_full_disk_stops_the_recording_in_one_line_and_what_was_written_replays(recorded_session, tmp_path):
    """It was a traceback from the MCAP writer (found with a 200 kB tmpfs)."""
    skip_without_small_disks()
    disk, kept = tmp_path / "disk", tmp_path / "kept.mcap"
    disk.mkdir()
    source = f"tcp://127.0.0.1:{free_port()}"
    record = [sys.executable, "-m", "wildpose.tools.cli", "record", "--endpoint", source,
              "--output", disk / "full.mcap", "--idle-timeout", "2"]
    recorder = subprocess.Popen(small_disk_command(disk, "size=96k", record, then=f"cp {disk}/full.mcap {kept}"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    copies = math.ceil(4 * 96 * 1024 / recorded_session.path.stat().st_size)
    replay = subprocess.run(replay_command(*[str(recorded_session.path)] * copies, "--publish", source,
                                           "--wait-subscribers", "1", "--as-fast-as-possible"),
                            capture_output=True, text=True, timeout=60)
    _, stderr = recorder.communicate(timeout=60)
    assert replay.returncode == 0, replay.stderr
    assert recorder.returncode == 1 and "Traceback" not in stderr, stderr
    (line,) = error_lines(stderr)
    assert "cannot write the recording" in line and "No space left on device" in line, line
    written = int(re.search(r"recording stopped after (\d+) messages", line).group(1))
    once = [(m.topic, m.payload) for m in recorded_session.messages]
    sent = once + [pair for pair in once if pair[0] != "meta"] * (copies - 1)
    reader = recording.RecordingReader(kept)
    assert [(m.topic, m.payload) for m in reader.messages()] == sent[:written]
    assert 0 < written < len(sent) and reader.damage is not None


def test_a_replay_without_subscribers_runs_through_and_counts_what_it_sent(recorded_session):
    result = subprocess.run(replay_command(str(recorded_session.path), "--publish", f"tcp://127.0.0.1:{free_port()}",
                                           "--as-fast-as-possible"), capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    match = re.search(r"replayed (\d+) messages in [\d.]+ s; stopped by end of recording", result.stderr)
    assert match and int(match.group(1)) == len(recorded_session.messages), result.stderr
