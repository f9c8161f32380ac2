"""The dashboard's main screen: one run's panels, and how they are redrawn from what the App holds.

The App keeps the run's state (the view folded from its events, the machine's samples, the search) and its
keys; this screen only draws: panels whose data changed, curves at most every ``CURVE_PERIOD_S`` (plotting
is the costliest thing the dashboard does), or at once while they are still empty (a resize redraws a curve
by itself). A young run's curves are redrawn every ``YOUNG_CURVE_PERIOD_S``: 5 s behind its progress line
is half its chart (x to step 6 at step 13); later it is a sliver.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.screen import Screen

from trm_core.control.snapshot import RankHealth, health_of
from trm_core.distributed.rank_files import RankStatus
from trm_core.rundir.states import RunState
from trm_core.telemetry import GpuStatus, HostSample
from trm_tui.dashboard.view import RunView
from trm_tui.keys_footer import KeysFooter
from trm_tui.dashboard.widgets import (Curve, EventsPane, GpuPanel, HeaderBar, HostPanel, MetricsPanel, ProgressPanel,
                                       RanksPanel)

CURVE_PERIOD_S = 5.0
YOUNG_CURVE_PERIOD_S, YOUNG_STEPS = 1.0, 200  # redrawing each second costs about 2% of a core more


@dataclass(frozen=True)
class Frame:
    """What one redraw shows: the run's view at wall-clock time ``wall``, the machine's last samples, and
    the App's own words (a search on, which chart is on the right)."""

    view: RunView
    wall: float
    host: HostSample | None
    gpu: GpuStatus | None
    stall_setting_s: float
    ranks: list[RankStatus]  # with several ranks: each one's file, read by the machine feed
    tuning: bool
    show_score: bool
    config_error: str | None = None  # the run's config.toml does not read: an alert, and r and a refuse


class RunScreen(Screen[None]):
    def __init__(self) -> None:
        super().__init__()
        self._drawn = -1
        self._curves_at = 0.0

    def compose(self) -> ComposeResult:
        yield HeaderBar()
        with Horizontal(id="top"):
            yield ProgressPanel()
            yield MetricsPanel()
        with Horizontal(id="curves"):
            yield Curve("loss / eval loss", log_y=True, points=frozenset({"eval"}), id="loss-curve")
            yield Curve("samples/s", from_zero=True, id="speed-curve")
        with Horizontal(id="machine"):
            ranks = RanksPanel()
            ranks.display = False  # shown once the run has several ranks
            yield ranks
            yield GpuPanel()
            yield HostPanel()
        yield EventsPane()
        yield KeysFooter(compact=True)  # every key fits 80 columns

    def draw(self, frame: Frame) -> None:
        view, wall, gpu = frame.view, frame.wall, frame.gpu
        now = time.monotonic()
        gpu_idle = bool(gpu and gpu.available and gpu.gpus and all((g.util_pct or 0) < 5 for g in gpu.gpus))
        stall_after = view.stall_after_s(frame.stall_setting_s)
        alerts = view.alerts(wall, stall_after, frame.host.disk_free_mb if frame.host else None, gpu_idle)
        alerts += self._draw_ranks(view, health_of(frame.ranks, wall, stall_after), wall)
        if frame.config_error:
            alerts.append(f"CONFIG CORRUPT: {frame.config_error}")
        self.query_one(HeaderBar).show(view, wall, stalled=any(a.startswith("STALLED") for a in alerts),
                                       tuning=frame.tuning)
        pane = self.query_one(EventsPane)
        pane.show(view, alerts, max(1, pane.size.height))
        self.query_one(HostPanel).show(frame.host)
        self.query_one(GpuPanel).show(gpu)
        period = YOUNG_CURVE_PERIOD_S if view.step < YOUNG_STEPS else CURVE_PERIOD_S
        curves_due = now - self._curves_at >= period
        right = [(view.task_curve_label(), view.eval_score_curve, "magenta")] if frame.show_score \
            else [("samples/s", view.throughput, "green")]
        level = (f"{view.target_name} {view.target_score:.3f}", view.target_score) \
            if frame.show_score and view.target_score else None
        for curve, series, reference in ((self.query_one("#loss-curve", Curve),
                                          [("loss", view.loss, "cyan"), ("eval", view.eval_curve, "yellow")], None),
                                         (self.query_one("#speed-curve", Curve), right, level)):
            if curves_due or curve.empty or curve.shows != series[0][0]:
                if curve.plot(series, view.version, reference):
                    self._curves_at = now
        if self._drawn == view.version:
            return
        self._drawn = view.version
        self.query_one(ProgressPanel).show(view)
        self.query_one(MetricsPanel).show(view)

    def _draw_ranks(self, view: RunView, health: list[RankHealth], wall: float) -> list[str]:
        """The ranks panel (shown with several ranks); the alerts for a rank stalled or gone."""
        ranks, words = [r.status for r in health], [r.health for r in health]
        panel = self.query_one(RanksPanel)
        panel.display = bool(ranks)
        if ranks:
            panel.show(ranks, words, wall)
        return [f"RANK {s.rank} {word.upper()} on {s.host}: {s.phase} of step {s.step}, heartbeat {s.age(wall):.0f}s old"
                for s, word in zip(ranks, words) if view.state == RunState.RUNNING and word in ("stalled", "gone")]
