"""A viewer's or recorder's session stops on a signal, after its duration, or once a begun stream fell
silent; a stream not yet begun is waited for."""

from wildpose.stream.stopping import StopConditions


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_nothing_stops_a_session_without_limits_but_a_signal():
    clock, signalled = Clock(), []
    stop = StopConditions(lambda: bool(signalled), None, None, clock)
    clock.now += 1e6
    assert stop.reason() is None
    signalled.append(True)
    assert stop.reason() == "signal"


def test_the_duration_counts_from_the_start():
    clock = Clock()
    stop = StopConditions(lambda: False, 5.0, None, clock)
    clock.now += 4.9
    assert stop.reason() is None
    clock.now += 0.1
    assert stop.reason() == "duration"


def test_silence_counts_only_once_the_stream_began_and_each_message_restarts_it():
    clock = Clock()
    stop = StopConditions(lambda: False, None, 2.0, clock)
    clock.now += 60
    assert stop.reason() is None  # nothing heard yet: still waiting for the stream
    stop.heard()
    clock.now += 1.5
    stop.heard()
    clock.now += 1.5
    assert stop.reason() is None
    clock.now += 0.5
    assert stop.reason() == "nothing for 2 s"


def test_a_signal_is_the_reason_whatever_else_holds():
    clock = Clock()
    stop = StopConditions(lambda: True, 1.0, 1.0, clock)
    stop.heard()
    clock.now += 10
    assert stop.reason() == "signal"
