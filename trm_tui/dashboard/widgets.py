"""The dashboard's panels. Each renders one part of the RunView or of the telemetry, nothing more."""

from __future__ import annotations

import time
from dataclasses import dataclass

import plotext as plt
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from trm_tui.dashboard.series import MinMaxSeries
from trm_core.rundir.states import HAS_WORKER, RunState
from trm_core.telemetry import GpuStatus, HostSample
from trm_core.distributed.rank_files import RankStatus, wait_share
from trm_tui.dashboard.view import RunView

from trm_tui.event_text import duration, step_progress_short

STATE_STYLE = {RunState.RUNNING: "bold green", RunState.STALLED: "bold red", RunState.FAILED: "bold red",
               RunState.RESTARTING: "bold yellow", RunState.STOPPED: "bold yellow", RunState.COMPLETED: "bold cyan",
               RunState.STARTING: "bold", RunState.STOPPING: "bold yellow", RunState.TUNING: "bold magenta",
               RunState.NOT_STARTED: "bold"}


def num(value: float | None, fmt: str = ".4f") -> str:
    return "N/A" if value is None else format(value, fmt)


class _Deduped(Static):
    """Skips ``update`` when the content is the same as last time: no re-render, no repaint. A change needs
    a repaint but no layout pass, unless the widget's height follows its content (``lines`` given) and the
    number of lines changed."""

    _last: object = None
    _lines: int | None = None

    def set(self, key: object, build, lines: int | None = None) -> None:
        if key != self._last:
            self._last = key
            layout, self._lines = lines is not None and lines != self._lines, lines
            self.update(build(), layout=layout)


def grid(rows: list[tuple[str, ...]]) -> str:
    """Left-aligned columns one space apart, as ``Table.grid(padding=(0, 1))`` showed them, without a Rich
    table measuring itself on every repaint (the panels' largest cost after the curves)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(" ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


class HeaderBar(_Deduped):
    DEFAULT_CSS = "HeaderBar { height: 1; background: $panel; }"

    def show(self, view: RunView, now: float, stalled: bool = False, tuning: bool = False) -> None:
        """``stalled``: the worker runs but has gone silent; the header says so before the watchdog acts."""
        up = duration(view.uptime_s(now))
        state = RunState.TUNING if tuning else RunState.STALLED if stalled and view.state == RunState.RUNNING \
            else view.state
        pid = view.pid if view.state in HAS_WORKER else None  # a gone worker's old pid means nothing
        world = view.world_size
        self.set((view.run_name, state, pid, up, world), lambda: self._text(view.run_name, state, pid, up, world))

    @staticmethod
    def _text(run_name: str, state: str, pid: int | None, up: str, world: int = 1) -> Text:
        ranks = f"   {world} ranks" if world > 1 else ""
        who = "rank 0 pid" if world > 1 else "pid"  # trm-tui status names the launcher's: say whose this is
        return Text.assemble((f" {run_name} ", "bold reverse"), "  ", (state.upper(), STATE_STYLE.get(state, "bold")),
                             f"   {who} {pid or '-'}{ranks}   up {up}")


BAR_WIDTH = 28


def now_row(view: RunView) -> tuple[str, str]:
    """The progress panel's last row: how far into a long step or eval (minutes on a CPU) the run is, else its
    speed (``now  eval 4/7  0:00:31/~0:00:54``: the value names the phase, the label does not repeat it)."""
    inside = step_progress_short(view.in_step)
    if inside and view.in_step:
        return "now", inside
    return "speed", f"{view.samples_per_s:,.1f} samples/s  {view.tokens_per_s:,.0f} tok/s"


def waiting_text(what: str) -> str:
    """An empty chart's line: the score chart (``t``) waits for the first eval, the others for steps."""
    return f"{what}: waiting for {'the first eval' if what.startswith('eval') else 'steps'}"


class ProgressPanel(Static):
    def show(self, view: RunView) -> None:
        total = view.total_steps or 0
        pct = 100 * view.step / total if total else 0.0
        done = min(BAR_WIDTH, BAR_WIDTH * view.step // total) if total else 0
        last = now_row(view)
        first, _, eta, speed = grid([("step", f"{view.step:,}/{total:,} ({pct:.1f}%)  epoch {view.epoch or '-'}"),
                                     ("", ""), ("ETA", duration(view.eta_s())), last]).split("\n")
        bar = "rgb(114,156,31)" if total and view.step >= total else "rgb(249,38,114)"  # Rich's bar colours
        indent = " " * (max(len("step"), len("ETA"), len(last[0])) + 1)  # the bar starts under the values
        self.update(Text.assemble(first, "\n", indent, ("━" * done, bar),
                                  ("━" * (BAR_WIDTH - done), "grey23"), "\n", eta, "\n", speed),
                    layout=False)  # fixed size: no layout pass


class MetricsPanel(Static):
    """Eight figures in two columns; where they do not fit (80 columns: half the screen), shorter labels, so
    every figure keeps its own line instead of wrapping and pushing the last ones out of the panel."""

    SHORT = {"eval loss": "eval", "halt loss": "halt", "accuracy": "acc", "grad norm": "gnorm", "sup steps": "sup",
             "eval masked acc": "ev mask", "masked acc": "mask", "eval pass@2": "ev p@2", "eval exact": "ev exact"}

    def show(self, view: RunView) -> None:
        m = view.metrics
        rows = [("loss", num(m.get("loss")), "lr", num(m.get("lr"), ".2e")),
                ("eval loss", num(view.eval_loss), "grad norm", num(m.get("grad_norm"), ".3f")),
                ("halt loss", num(m.get("halt_loss")), "sup steps", num(m.get("sup_steps"), ".2f")),
                ("accuracy", num(m.get("accuracy"), ".3f"), *task_cells(view))]
        text = grid(rows)
        room = self.content_size.width
        if room and max(len(line) for line in text.splitlines()) > room:
            text = grid([tuple(self.SHORT.get(cell, cell) if i % 2 == 0 else cell for i, cell in enumerate(row))
                         for row in rows])
        self.update(Text(text), layout=False)


def task_cells(view: RunView) -> tuple[str, str]:
    label, value = view.task_score()
    return label, num(value, ".3f")


class Curve(Static):
    """A plotext chart of downsampled series, redrawn only when the data or the size changed.

    ``from_zero``: the y axis starts at 0. For throughput that is the honest scale (a dip shows as a dip,
    jitter as jitter), and it is cheaper: plotext draws dot by dot, and a noisy series stretched over the
    full height cost about 100 ms a draw. ``log_y``: a logarithmic y axis, for a loss that falls from 5.7 to
    0.2 (on a linear axis everything after the first fall is one flat line on the bottom row). ``points``:
    series drawn as separate points (evals), so they differ from the lines by shape, not only by colour
    (NO_COLOR). The legend is one line over the top-right corner, where falling losses and throughput with
    headroom leave the chart empty; plotext's own legend took two rows over the top-left, where a loss starts.
    """

    DEFAULT_CSS = "Curve { width: 1fr; height: 100%; }"

    LINE_GLYPH, POINT_GLYPH, LEVEL_GLYPH = "⠒", "•", "─"

    def __init__(self, title: str, from_zero: bool = False, log_y: bool = False, points: frozenset[str] = frozenset(),
                 markers: dict[str, str] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.title, self.from_zero, self.log_y, self.points = title, from_zero, log_y, points
        self.border_title = title  # shown where the chart has a border (the compare view's)
        self.markers = markers or {}  # label -> plotext marker, where colour alone would not tell lines apart
        self._key: tuple = ()
        self._series: list[tuple[str, MinMaxSeries, str]] | None = None
        self._reference: tuple[str, float] | None = None
        self._empty = True
        self.shows = ""  # the first series' label: a switch of what the chart shows redraws it at once

    @property
    def empty(self) -> bool:
        """Nothing plotted yet (never drawn, or drawn while there was no data): draw as soon as there is."""
        return self._empty

    def on_resize(self) -> None:
        """Redrawn at the new size at once: a panel below may have changed height in the same repaint."""
        if self._series is not None:
            self.plot(self._series, self._key[0], self._reference)

    def plot(self, series: list[tuple[str, MinMaxSeries, str]], version: int,
             reference: tuple[str, float] | None = None) -> bool:
        """Redraw if the data or the size changed; True when it drew. ``reference``: (label, y) of a level
        drawn across the chart (the score a run aims at, the paper's for a paper preset), kept in view."""
        width, height = self.size.width, self.size.height
        key = (version, width, height, series[0][0] if series else "", reference)
        if key == self._key or width < 10 or height < 4:
            return False
        self._key, self._series, self._reference = key, series, reference
        self.shows = series[0][0] if series else ""
        plt.clear_figure()
        plt.theme("clear")
        plt.plotsize(width, height)
        plt.frame(False)  # no box and no title (the legend names the lines): every row is for data
        shown, extent = self._draw_series(series)
        self._empty = not shown
        if not shown:
            self.update(Text(waiting_text(series[0][0] if series else self.title), "dim"), layout=False)
            return True
        if reference is not None:
            plt.hline(reference[1], color="white")
            shown.append((reference[0], self.LEVEL_GLYPH, "white"))
            extent = extent.with_level(reference[1])
        self._scale_y(extent, reference is not None)
        ticks = step_ticks(extent.x_low, extent.x_high, max(2, min(5, width // 12)))
        plt.xticks(ticks, [step_label(t) for t in ticks])  # plotext's own cut the last label at the edge
        chart = Text.from_ansi(plt.build())
        self.update(with_legend(chart, shown, width), layout=False)
        return True

    def _draw_series(self, series: list[tuple[str, MinMaxSeries, str]]) -> tuple[list[tuple[str, str, str]], Extent]:
        """Each series with points, as a line or as points (with its marker); the legend's entries and the
        extent of what was drawn."""
        shown: list[tuple[str, str, str]] = []
        extent = Extent()
        for label, s, color in series:
            xs, ys = s.points()
            if not xs:
                continue
            marker = self.markers.get(label)
            if label in self.points:
                plt.scatter(xs, ys, color=color, marker=marker or self.POINT_GLYPH)
            else:
                plt.plot(xs, ys, color=color, marker=marker or "braille")
            glyph = marker if marker and len(marker) == 1 else self.POINT_GLYPH if label in self.points else self.LINE_GLYPH
            shown.append((label, glyph, color))
            extent = extent.with_points(xs, ys)
        return shown, extent

    def _scale_y(self, extent: Extent, has_level: bool) -> None:
        """The y range: a level kept in view with some margin; from zero with headroom for the legend; a flat
        series of scores from 0; a log axis for a loss that spans more than a factor of two."""
        top, low = extent.top, extent.low
        if has_level:
            pad = (top - low) * 0.15 or 0.05
            plt.ylim(max(0.0, low - pad) if low >= 0 else low - pad, top + pad)
        if self.from_zero and top > 0:
            plt.ylim(0, top * 1.3)  # headroom: the legend sits over the top-right corner
        elif not has_level and low >= 0 and top == low:
            plt.ylim(0, top * 1.3 or 1.0)  # a flat series of scores (all 0 early on): from 0, never -1 to 1
        if self.log_y and low > 0 and top > 2 * low:
            plt.yscale("log")


@dataclass(frozen=True)
class Extent:
    """The x and y range of what a chart has drawn (y's top starts at 0: a chart's floor)."""

    top: float = 0.0
    low: float = float("inf")
    x_low: float = float("inf")
    x_high: float = -float("inf")

    def with_points(self, xs: list[float], ys: list[float]) -> "Extent":
        return Extent(max(self.top, max(ys)), min(self.low, min(ys)), min(self.x_low, xs[0]), max(self.x_high, xs[-1]))

    def with_level(self, level: float) -> "Extent":
        return Extent(max(self.top, level), min(self.low, level), self.x_low, self.x_high)


def step_ticks(low: float, high: float, count: int) -> list[int]:
    """Whole steps, evenly spread from the first to the last."""
    if high - low < count:
        return sorted({int(low), int(high)})
    return sorted({int(round(low + (high - low) * i / (count - 1))) for i in range(count)})


def step_label(step: int) -> str:
    return f"{step / 1000:.0f}k" if step >= 100_000 else str(step)


def with_legend(chart: Text, shown: list[tuple[str, str, str]], width: int) -> Text:
    """The chart with its legend written over the right end of its first rows: one row when it fits, else as
    many as it needs (six runs compared do not fit one), at most half the chart's rows, each entry's label
    shortened as much as that takes."""
    lines = chart.split("\n", allow_blank=True)
    if not lines or not shown:
        return chart
    room = width - 3
    for longest in (max(len(label) for label, _, _ in shown), 24, 16, 10, 6):
        entries = [Text(f"{glyph} {label if len(label) <= longest else label[:longest - 1] + '~'}", style=color)
                   for label, glyph, color in shown]
        rows = _legend_rows(entries, room)
        if rows is not None and len(rows) <= max(1, len(lines) // 2):
            break
    else:
        return chart
    for i, legend in enumerate(rows):
        first = lines[i]
        first.truncate(width - legend.cell_len - 2, pad=True)
        lines[i] = Text.assemble(first, " ", legend, " ")  # a blank before and after: apart from a chart beside it
    return Text("\n").join(lines)


def _legend_rows(entries: list[Text], room: int) -> list[Text] | None:
    """The entries packed into rows of at most ``room`` cells, two blanks apart; None when one alone is wider."""
    rows: list[list[Text]] = [[]]
    for entry in entries:
        if entry.cell_len > room:
            return None
        row = rows[-1]
        if row and sum(e.cell_len for e in row) + 2 * len(row) + entry.cell_len > room:
            rows.append([entry])
        else:
            row.append(entry)
    return [Text("  ").join(row) for row in rows]


class GpuPanel(_Deduped):
    """Repainted only when a shown value changes; a layout pass only when the number of rows does."""

    def show(self, status: GpuStatus | None) -> None:
        if status is None:
            self.set("probing", lambda: Text("GPU: probing...", "dim"), 1)
            return
        if not status.available:
            reason = status.reason.split(" (")[0] if status.reason else "no NVIDIA GPU"
            self.set(reason, lambda: Text(reason, "dim"), 1)
            return
        rows = []
        for g in status.gpus:
            mem = "N/A" if g.mem_used_mb is None else f"{g.mem_used_mb / 1024:.1f}/{num(g.mem_total_mb and g.mem_total_mb / 1024, '.0f')}G"
            power = "N/A" if g.power_w is None else f"{g.power_w:.0f}/{num(g.power_limit_w, '.0f')}W"
            rows.append((f"{g.index} {g.name.removeprefix('NVIDIA ')}", num(g.util_pct, ".0f") + ("%" if g.util_pct is not None else ""),
                         mem, num(g.temp_c, ".0f") + ("C" if g.temp_c is not None else ""), power,
                         "N/A" if g.worker_mem_mb is None else f"{g.worker_mem_mb / 1024:.1f}G"))

        def table() -> Table:
            t = Table(box=None, padding=(0, 1), show_edge=False)
            # numbers keep their width; on a narrow terminal the GPU's name gives way (ellipsis), never a row
            t.add_column("GPU", no_wrap=True, overflow="ellipsis", ratio=1)
            for col, width in (("util", 4), ("memory", 9), ("temp", 4), ("power", 8), ("worker", 6)):
                t.add_column(col, no_wrap=True, min_width=width)
            for row in rows:
                t.add_row(*row)
            return t
        self.set(tuple(rows), table, 1 + len(rows))


class RanksPanel(_Deduped):
    """One row per rank of a run with several (from their files in ``RUN_DIR/ranks/``): where it runs, how far
    it is, the share of its last step it spent waiting for the others, its heartbeat's age, and a word for its
    health: a stalled or gone rank in red, the straggler the others wait for in yellow."""

    BAD = ("stalled", "gone", "failed", "lost_peer")

    def show(self, ranks: list[RankStatus], health: list[str], now: float) -> None:
        """``health``: each rank's word (``rank_files.health``), as the caller's alerts saw it."""
        hosts = len({s.host for s in ranks}) > 1  # one host: its name says nothing per row
        rows = tuple(((f"{s.rank}",) + ((s.host,) if hosts else ()) +
                      (str(s.step), "-" if (w := wait_share(s)) is None else f"{100 * w:.0f}%",
                       "-" if s.ended else f"{s.age(now):.0f}s",  # an ended rank beats no more: no age to count
                       word)) for s, word in zip(ranks, health))

        def table() -> Table:
            t = Table(box=None, padding=(0, 1, 0, 0), show_edge=False)
            t.add_column("rank", no_wrap=True)
            if hosts:
                t.add_column("host", no_wrap=True, overflow="ellipsis", ratio=1)
            for col in ("step", "wait", "beat", "health"):
                t.add_column(col, no_wrap=True)
            for row in rows:
                word = row[-1]
                style = "bold red" if word in self.BAD else "bold yellow" if word == "slow" else ""
                t.add_row(*row[:-1], Text(word.upper() if style else word, style))
            return t
        self.set(rows, table, 1 + len(rows))


class HostPanel(_Deduped):
    def show(self, host: HostSample | None) -> None:
        if host is None:
            self.set("probing", lambda: Text("CPU: probing...", "dim"), 1)
            return
        # two rows: at 80x24 every row spent here is one the curves lose
        worker = ("not running" if host.worker_cpu_pct is None else
                  f"{host.worker_cpu_pct:.0f}% {host.worker_rss_mb / 1024:.1f}G")
        disk = "N/A" if host.disk_free_mb is None else f"{host.disk_free_mb / 1024:.0f}G free"
        text = grid([("CPU", f"{host.cpu_pct:.0f}% of {host.cpu_count}", "RAM",
                      f"{host.ram_used_mb / 1024:.1f}/{host.ram_total_mb / 1024:.0f}G"),
                     ("worker", worker, "disk", disk)])
        self.set(text, lambda: Text(text), 2)


class EventsPane(_Deduped):
    DEFAULT_CSS = "EventsPane { height: 5; border: round $secondary; padding: 0 1; }"

    def show(self, view: RunView, alerts: list[str], rows: int) -> None:
        newest = view.events[-1] if view.events else None
        # under NO_COLOR only attributes survive: reverse video makes an alert stand out there
        style = "bold reverse" if self.app.no_color else "bold white on red"
        self.set((len(view.events), id(newest), tuple(alerts), rows), lambda: self._text(view, alerts, rows, style))

    @staticmethod
    def _text(view: RunView, alerts: list[str], rows: int, alert_style: str) -> Text:
        text = Text()
        for alert in alerts:
            text.append(f"! {alert}\n", style=alert_style)
        for line in list(view.events)[-max(1, rows - len(alerts)):]:
            stamp = time.strftime("%H:%M:%S", time.localtime(line.time))
            text.append(f"{stamp} ", "dim")
            text.append(line.text + "\n", "bold yellow" if line.alert else "")
        return text if text.plain else Text("no events yet", "dim")
