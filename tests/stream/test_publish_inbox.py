"""Publish's inbox: what the smoothing processes send over their pipes comes out whole, in order per
pipe, a busy pipe starving none, and a set of pipes read to its end before the next is taken."""

import multiprocessing

from wildpose.stream.publish import _Inbox


class ControlQueue:
    def __init__(self) -> None:
        self.items = []

    def put(self, item) -> None:
        self.items.append(item)


def pipes(count: int):
    pairs = [multiprocessing.Pipe(duplex=False) for _ in range(count)]
    return [reader for reader, _ in pairs], [writer for _, writer in pairs]


def drain(inbox: _Inbox, expected: int) -> list:
    got = []
    for _ in range(10 * expected):
        item = inbox.get(0.5)
        if item is not None:
            got.append(item)
        if len(got) == expected:
            break
    return got


def test_every_item_comes_out_in_its_pipes_order_and_a_busy_pipe_starves_no_other():
    readers, writers = pipes(8)
    handover_reader, handover_writer = multiprocessing.Pipe(duplex=False)
    handover_writer.send(readers)
    for index in range(40):
        writers[0].send(("busy", index))
    for number, writer in enumerate(writers[1:], start=1):
        writer.send((f"quiet {number}", 0))
        writer.send((f"quiet {number}", 1))
    inbox = _Inbox(handover_reader, ControlQueue())
    got = drain(inbox, 40 + 14)
    assert len(got) == 54
    for name in {name for name, _ in got}:
        assert [index for n, index in got if n == name] == sorted(index for n, index in got if n == name)
    first_of_each = {name: got.index((name, 0)) for name in {name for name, _ in got}}
    assert max(first_of_each.values()) < 8  # every pipe's first item in the first round of eight
    assert sum(name == "busy" for name, _ in got[:16]) <= 2  # one item a pipe a round


def test_a_set_of_pipes_is_read_to_its_end_then_reported_drained_and_the_next_set_taken():
    control = ControlQueue()
    handover_reader, handover_writer = multiprocessing.Pipe(duplex=False)
    old_readers, old_writers = pipes(3)
    handover_writer.send(old_readers)
    for number, writer in enumerate(old_writers):
        writer.send(("old", number))
        writer.close()  # the old stages died after sending
    new_readers, new_writers = pipes(2)
    handover_writer.send(new_readers)
    new_writers[0].send(("new", 0))
    inbox = _Inbox(handover_reader, control)
    assert sorted(drain(inbox, 3)) == [("old", 0), ("old", 1), ("old", 2)]
    assert drain(inbox, 1) == [("new", 0)]
    assert control.items == [("drained", "publish", 1)]
    assert inbox.number == 2
