"""The One Euro filter: smooth at rest, little lag when moving, on real timestamps."""

import numpy as np
import pytest

from wildpose.stream.one_euro import OneEuroFilter


def run(filter_, values, times):
    return np.array([filter_(np.asarray(v, dtype=float), t) for v, t in zip(values, times, strict=True)])


def test_a_constant_signal_passes_unchanged():
    out = run(OneEuroFilter(1.0, 0.1), [[3.0, -2.0]] * 20, np.arange(20) / 30)
    assert np.allclose(out, [[3.0, -2.0]] * 20)


def test_jitter_at_rest_is_reduced_a_lot():
    rng = np.random.default_rng(0)
    noisy = 100.0 + rng.normal(0, 2.0, 300)
    out = run(OneEuroFilter(min_cutoff=1.0, beta=0.0), noisy, np.arange(300) / 30)
    assert np.std(out[30:]) < 0.4 * np.std(noisy[30:])


def test_a_higher_beta_lags_less_on_fast_motion():
    times = np.arange(90) / 30
    ramp = 500.0 * times  # 500 units/s
    slow = run(OneEuroFilter(min_cutoff=1.0, beta=0.0), ramp, times)
    fast = run(OneEuroFilter(min_cutoff=1.0, beta=0.1), ramp, times)
    assert abs(ramp[-1] - fast[-1]) < 0.25 * abs(ramp[-1] - slow[-1])


def test_it_uses_the_real_time_between_samples():
    """The same step response after 1 s, whether sampled at 10 Hz or at 50 Hz."""
    def after_one_second(rate):
        times = np.arange(rate + 1) / rate
        return run(OneEuroFilter(1.0, 0.0), [0.0] + [1.0] * rate, times)[-1]

    assert after_one_second(10) == pytest.approx(after_one_second(50), abs=0.1)


def test_time_going_backwards_restarts_the_filter():
    filter_ = OneEuroFilter(1.0, 0.0)
    filter_(np.array([0.0]), 1.0)
    filter_(np.array([10.0]), 1.1)
    assert filter_(np.array([50.0]), 0.5)[0] == 50.0


def test_reset_forgets_the_past():
    filter_ = OneEuroFilter(1.0, 0.0)
    filter_(np.array([0.0]), 0.0)
    filter_.reset()
    assert filter_(np.array([7.0]), 0.1)[0] == 7.0
