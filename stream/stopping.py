"""When a subscriber's session ends (`wildpose view`, `wildpose record`): on a signal, after a set
duration, or once the stream fell silent after it began. One definition, so both say why they
stopped in the same words."""

from __future__ import annotations

import time
from collections.abc import Callable


class StopConditions:
    """`reason()` is None while the session should go on, else why it stops; `heard()` marks traffic,
    which starts (and restarts) the idle clock: a stream not yet begun is waited for without limit."""

    def __init__(self, should_stop: Callable[[], bool], duration_s: float | None, idle_timeout_s: float | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._should_stop, self._duration_s, self._idle_timeout_s = should_stop, duration_s, idle_timeout_s
        self._clock = clock
        self._started = clock()
        self._last_heard: float | None = None

    def heard(self) -> None:
        self._last_heard = self._clock()

    def reason(self) -> str | None:
        if self._should_stop():
            return "signal"
        now = self._clock()
        if self._duration_s is not None and now - self._started >= self._duration_s:
            return "duration"
        if self._idle_timeout_s is not None and self._last_heard is not None \
                and now - self._last_heard >= self._idle_timeout_s:
            return f"nothing for {self._idle_timeout_s:g} s"
        return None
