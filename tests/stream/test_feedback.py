"""Pose feedback goes from smoothing to preprocess through a pipe a stream: whole messages, in order,
and a writer that never waits for a reader that is behind."""

import multiprocessing

import numpy as np

from wildpose.stream import feedback


def _pipe():
    reading, writing = multiprocessing.get_context("spawn").Pipe(duplex=False)
    return feedback.FeedbackReader(reading), feedback.open_writer(writing), (reading, writing)


def test_poses_arrive_as_sent_in_order():
    reader, fd, _ = _pipe()
    box = np.array([10.5, 20.25, 300.0, 470.125])
    assert feedback.send(fd, 7, [(3, box, 0.875), (4, None, 0.25)])
    assert feedback.send(fd, 8, [])
    (seq, poses), (next_seq, nobody) = reader.messages()
    assert (seq, next_seq, nobody) == (7, 8, [])
    assert [(track, confidence) for track, _, confidence in poses] == [(3, 0.875), (4, 0.25)]
    assert np.array_equal(poses[0][1], box) and poses[0][1].dtype == np.float64
    assert poses[1][1] is None  # out of the frame
    assert reader.messages() == []


def test_a_crowd_too_large_for_one_atomic_write_goes_as_several_messages_of_its_frame():
    reader, fd, _ = _pipe()
    people = feedback.PEOPLE_A_MESSAGE * 2 + 5
    assert feedback.send(fd, 42, [(track, np.full(4, float(track)), 0.5) for track in range(people)])
    messages = reader.messages()
    assert len(messages) == 3 and {seq for seq, _ in messages} == {42}
    tracks = [track for _, poses in messages for track, _, _ in poses]
    assert tracks == list(range(people))
    assert all(box[0] == track for _, poses in messages for track, box, _ in poses)


def test_a_writer_whose_reader_is_behind_drops_new_feedback_instead_of_waiting():
    reader, fd, _ = _pipe()
    results = [feedback.send(fd, seq, [(1, np.ones(4), 1.0)]) for seq in range(5000)]  # a blocking write hangs
    assert results[0] and not results[-1], "the pipe never filled"
    kept = reader.messages()
    assert [seq for seq, _ in kept] == list(range(len(kept)))  # the oldest kept, each whole, in order
    assert feedback.send(fd, 5000, [(1, np.ones(4), 1.0)])  # room again once read
    assert [seq for seq, _ in reader.messages()] == [5000]


def test_a_message_written_by_another_process_is_read_whole():
    reader, _, (reading, writing) = _pipe()
    ctx = multiprocessing.get_context("spawn")
    writer = ctx.Process(target=_write_frames, args=(writing, 200))
    writer.start()
    writer.join(timeout=60)
    assert writer.exitcode == 0
    seen = reader.messages()
    assert [seq for seq, _ in seen] == list(range(200))
    assert all(poses[0][0] == seq and poses[0][1][2] == seq + 0.5 for seq, poses in seen)


def _write_frames(writing, frames: int) -> None:
    fd = feedback.open_writer(writing)
    for seq in range(frames):
        assert feedback.send(fd, seq, [(seq, np.array([0.0, 0.0, seq + 0.5, 1.0]), 0.9)])
