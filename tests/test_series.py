"""Downsampled series keep every extreme in bounded memory."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from trm_tui.dashboard.series import MinMaxSeries


def test_memory_is_bounded_and_spikes_survive() -> None:
    s = MinMaxSeries(capacity=64)
    rng = random.Random(0)
    for i in range(1_000_000):
        s.append(i, 1.0 + rng.random() * 0.1 if i != 777_777 else 50.0)
    assert len(s) <= 64 and s.count == 1_000_000
    xs, ys = s.points()
    assert max(ys) == 50.0 and min(ys) >= 1.0
    assert xs[0] == 0 and xs == sorted(xs)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=1, max_size=3000), st.integers(4, 100))
def test_extremes_are_exact_for_any_input(values: list[float], capacity: int) -> None:
    s = MinMaxSeries(capacity)
    for i, v in enumerate(values):
        s.append(i, v)
    _, ys = s.points()
    assert min(ys) == min(values) and max(ys) == max(values) and len(s) <= s.capacity
