"""The One Euro filter (Casiez, Roussel, Vogel, CHI 2012), vectorised over coordinates.

A low-pass filter whose cutoff rises with the signal's speed: slow motion is smoothed hard (less
jitter), fast motion passes with little lag. It runs on the frames' real timestamps, never an assumed
frame rate, so dropped frames and variable-rate sources are filtered correctly.
"""

from __future__ import annotations

import math

import numpy as np


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    """Smoothing factor of an exponential filter with this cutoff (Hz) at this sampling interval."""
    r = 2.0 * math.pi * cutoff * dt
    return r / (r + 1.0)


class OneEuroFilter:
    """Filters arrays of a fixed shape, each element its own signal.

    min_cutoff: cutoff (Hz) at zero speed; lower means smoother at rest.
    beta: cutoff increase per unit of speed (units/s); higher means less lag when moving.
    d_cutoff: cutoff (Hz) of the speed estimate.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0) -> None:
        self.min_cutoff = min_cutoff
        self.beta = beta
        self.d_cutoff = d_cutoff
        self.reset()

    def reset(self) -> None:
        self._value: np.ndarray | None = None
        self._speed: np.ndarray | None = None
        self._time = 0.0
        self.lag_s: float | None = None  # mean group delay of the last step; None before filtering


    def __call__(self, value: np.ndarray, t: float) -> np.ndarray:
        """Filter `value` observed at time `t` (seconds); returns the filtered array (float64)."""
        value = np.asarray(value, dtype=np.float64)
        if self._value is None or t <= self._time:
            # first sample, or time went backwards (a source restarted): start afresh from here
            self._value, self._speed, self._time = value.copy(), np.zeros_like(value), t
            return value.copy()
        dt = t - self._time
        speed = (value - self._value) / dt
        self._speed += _alpha(self.d_cutoff, dt) * (speed - self._speed)
        cutoff = self.min_cutoff + self.beta * np.abs(self._speed)
        self._value += _alpha(cutoff, dt) * (value - self._value)
        self._time = t
        # An exponential filter x += a (u - x) with a = r / (r + 1), r = 2 pi fc dt, delays slow
        # signals by (1 - a) / a samples = 1 / (2 pi fc) seconds: the lag at the current cutoff.
        self.lag_s = float((1.0 / cutoff).mean()) / (2.0 * math.pi)
        return self._value.copy()
