"""The dashboard's panels. Each renders one part of the RunView or of the telemetry, nothing more."""

from __future__ import annotations

import time

import plotext as plt
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from trm_tui.dashboard.series import MinMaxSeries
from trm_core.rundir.states import HAS_WORKER, RunState
from trm_core.telemetry import GpuStatus, HostSample
from trm_tui.dashboard.view import RunView
from trm_tui.progress import duration, step_progress_short

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
    def show(self, view: RunView, now: float, stalled: bool = False, tuning: bool = False) -> None:
        """``stalled``: the worker runs but has gone silent; the header says so before the watchdog acts."""
        up = duration(view.uptime_s(now))
        state = RunState.TUNING if tuning else RunState.STALLED if stalled and view.state == RunState.RUNNING \
            else view.state
        pid = view.pid if view.state in HAS_WORKER else None  # a gone worker's old pid means nothing
        self.set((view.run_name, state, pid, up), lambda: self._text(view.run_name, state, pid, up))

    @staticmethod
    def _text(run_name: str, state: str, pid: int | None, up: str) -> Text:
        return Text.assemble((f" {run_name} ", "bold reverse"), "  ", (state.upper(), STATE_STYLE.get(state, "bold")),
                             f"   pid {pid or '-'}   up {up}")


BAR_WIDTH = 28


class ProgressPanel(Static):
    def show(self, view: RunView) -> None:
        total = view.total_steps or 0
        pct = 100 * view.step / total if total else 0.0
        done = min(BAR_WIDTH, BAR_WIDTH * view.step // total) if total else 0
        inside = step_progress_short(view.in_step)  # a long step (minutes on a CPU): how far into it
        last = ("in step", inside) if inside else \
            ("speed", f"{view.samples_per_s:,.1f} samples/s  {view.tokens_per_s:,.0f} tok/s")
        first, _, eta, speed = grid([("step", f"{view.step:,}/{total:,} ({pct:.1f}%)  epoch {view.epoch or '-'}"),
                                     ("", ""), ("ETA", duration(view.eta_s())), last]).split("\n")
        bar = "rgb(114,156,31)" if total and view.step >= total else "rgb(249,38,114)"  # Rich's bar colours
        indent = " " * (max(len("step"), len("ETA"), len(last[0])) + 1)  # the bar starts under the values
        self.update(Text.assemble(first, "\n", indent, ("━" * done, bar),
                                  ("━" * (BAR_WIDTH - done), "grey23"), "\n", eta, "\n", speed),
                    layout=False)  # fixed size: no layout pass


class MetricsPanel(Static):
    def show(self, view: RunView) -> None:
        m = view.metrics
        self.update(Text(grid([("loss", num(m.get("loss")), "lr", num(m.get("lr"), ".2e")),
                               ("eval loss", num(view.eval_loss), "grad norm", num(m.get("grad_norm"), ".3f")),
                               ("halt loss", num(m.get("halt_loss")), "sup steps", num(m.get("sup_steps"), ".2f")),
                               ("accuracy", num(m.get("accuracy"), ".3f"), "", "")])), layout=False)


class Curve(Static):
    """A plotext line chart of downsampled series, redrawn only when the data or the size changed.

    ``from_zero``: the y axis starts at 0. For throughput that is the honest scale (a dip shows as a dip,
    jitter as jitter), and it is cheaper: plotext draws dot by dot, and a noisy series stretched over the
    full height cost about 100 ms a draw.
    """

    def __init__(self, title: str, from_zero: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.title, self.from_zero = title, from_zero
        self._key: tuple = ()
        self._series: list[tuple[str, MinMaxSeries, str]] | None = None
        self._empty = True

    @property
    def empty(self) -> bool:
        """Nothing plotted yet (never drawn, or drawn while there was no data): draw as soon as there is."""
        return self._empty

    def on_resize(self) -> None:
        """Redrawn at the new size at once: a panel below may have changed height in the same repaint."""
        if self._series is not None:
            self.plot(self._series, self._key[0])

    def plot(self, series: list[tuple[str, MinMaxSeries, str]], version: int) -> bool:
        """Redraw if the data or the size changed; True when it drew."""
        width, height = self.size.width, self.size.height
        key = (version, width, height)
        if key == self._key or width < 10 or height < 4:
            return False
        self._key, self._series = key, series
        plt.clear_figure()
        plt.theme("clear")
        plt.plotsize(width, height)
        plt.frame(False)  # no box and no title (the legend names the lines): every row is for data
        drawn, top = False, 0.0
        for label, s, color in series:
            xs, ys = s.points()
            if xs:
                plt.plot(xs, ys, label=label, color=color, marker="braille")
                drawn, top = True, max(top, max(ys))
        if self.from_zero and top > 0:
            plt.ylim(0, top * 1.3)  # headroom: the legend sits over the top-left corner
        self._empty = not drawn
        self.update(Text.from_ansi(plt.build()) if drawn else Text(f"{self.title}: waiting for steps", "dim"),
                    layout=False)
        return True


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
