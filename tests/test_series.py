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


def test_a_flat_series_of_scores_is_drawn_from_zero() -> None:
    """Every eval scored 0 so far (early in a puzzle run): the chart's y axis starts at 0, not at -1 (plotext's
    own choice for a flat line is -1 to 1, which shows scores that cannot be below 0)."""
    import asyncio

    from textual.app import App, ComposeResult

    from trm_tui.dashboard.series import MinMaxSeries
    from trm_tui.dashboard.widgets import Curve

    class OneChart(App[None]):
        def compose(self) -> ComposeResult:
            yield Curve("score")

    async def drawn() -> str:
        app = OneChart()
        async with app.run_test(size=(60, 14)) as pilot:
            series = MinMaxSeries()
            for step in range(10, 60, 10):
                series.append(step, 0.0)
            chart = app.query_one(Curve)
            chart.plot([("exact", series, "magenta")], 1)
            await pilot.pause(0.2)
            return str(chart.render())
    import re

    text = asyncio.run(drawn())
    labels = [float(m.group(1)) for line in text.splitlines() if (m := re.match(r"(-?\d+\.\d+)", line))]
    assert labels[-1] == 0.0 and min(labels) == 0.0 and labels[0] > 0, text  # the bottom of the axis is 0
