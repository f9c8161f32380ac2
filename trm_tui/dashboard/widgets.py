"""The dashboard's panels. Each renders one part of the RunView or of the telemetry, nothing more."""

from __future__ import annotations

import datetime
import time

import plotext as plt
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from trm_core.series import MinMaxSeries
from trm_core.telemetry import GpuStatus, HostSample
from trm_tui.dashboard.view import RunView

LIVE_STATES = ("running", "stalled", "stopping", "starting")
STATE_STYLE = {"running": "bold green", "stalled": "bold red", "failed": "bold red", "restarting": "bold yellow",
               "stopped": "bold yellow", "completed": "bold cyan", "starting": "bold", "stopping": "bold yellow",
               "tuning": "bold magenta"}


def duration(seconds: float | None) -> str:
    return "-" if seconds is None else str(datetime.timedelta(seconds=int(max(0, seconds))))


def num(value: float | None, fmt: str = ".4f") -> str:
    return "N/A" if value is None else format(value, fmt)


class _Deduped(Static):
    """Skips ``update`` when the content is the same as last time: no re-render, no repaint. Its size is
    fixed by CSS, so a change needs a repaint but no layout pass."""

    _last: object = None

    def set(self, key: object, build) -> None:
        if key != self._last:
            self._last = key
            self.update(build(), layout=False)


class HeaderBar(_Deduped):
    def show(self, view: RunView, now: float, stalled: bool = False, tuning: bool = False) -> None:
        """``stalled``: the worker runs but has gone silent; the header says so before the watchdog acts."""
        up = duration(view.uptime_s(now))
        state = "tuning" if tuning else "stalled" if stalled and view.state == "running" else view.state
        pid = view.pid if view.state in LIVE_STATES else None  # a stopped run's old pid means nothing
        self.set((view.run_name, state, pid, up), lambda: self._text(view.run_name, state, pid, up))

    @staticmethod
    def _text(run_name: str, state: str, pid: int | None, up: str) -> Text:
        return Text.assemble((f" {run_name} ", "bold reverse"), "  ", (state.upper(), STATE_STYLE.get(state, "bold")),
                             f"   pid {pid or '-'}   up {up}")


class ProgressPanel(Static):
    def show(self, view: RunView) -> None:
        total = view.total_steps or 0
        pct = 100 * view.step / total if total else 0.0
        grid = Table.grid(padding=(0, 1))
        grid.add_row("step", f"{view.step:,}/{total:,} ({pct:.1f}%)  epoch {view.epoch or '-'}")
        grid.add_row("", ProgressBar(total=max(total, 1), completed=view.step, width=28))
        grid.add_row("ETA", duration(view.eta_s()))
        grid.add_row("speed", f"{view.samples_per_s:,.1f} samples/s  {view.tokens_per_s:,.0f} tok/s")
        self.update(grid, layout=False)  # fixed size: no layout pass


class MetricsPanel(Static):
    def show(self, view: RunView) -> None:
        m = view.metrics
        grid = Table.grid(padding=(0, 1))
        grid.add_row("loss", num(m.get("loss")), "lr", num(m.get("lr"), ".2e"))
        grid.add_row("eval loss", num(view.eval_loss), "grad norm", num(m.get("grad_norm"), ".3f"))
        grid.add_row("halt loss", num(m.get("halt_loss")), "sup steps", num(m.get("sup_steps"), ".2f"))
        grid.add_row("accuracy", num(m.get("accuracy"), ".3f"), "", "")
        self.update(grid, layout=False)


class Curve(Static):
    """A plotext line chart of downsampled series, redrawn only when the data or the size changed."""

    def __init__(self, title: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.title = title
        self._key: tuple = ()

    @property
    def drawn_once(self) -> bool:
        return bool(self._key)

    @property
    def resized(self) -> bool:
        return bool(self._key) and self._key[1:] != (self.size.width, self.size.height)

    def plot(self, series: list[tuple[str, MinMaxSeries, str]], version: int) -> bool:
        """Redraw if the data or the size changed; True when it drew."""
        width, height = self.size.width, self.size.height
        key = (version, width, height)
        if key == self._key or width < 10 or height < 4:
            return False
        self._key = key
        plt.clear_figure()
        plt.theme("clear")
        plt.plotsize(width, height)
        plt.frame(False)  # no box and no title (the legend names the lines): every row is for data
        drawn = False
        for label, s, color in series:
            xs, ys = s.points()
            if xs:
                plt.plot(xs, ys, label=label, color=color, marker="braille")
                drawn = True
        self.update(Text.from_ansi(plt.build()) if drawn else Text(f"{self.title}: waiting for steps", "dim"),
                    layout=False)
        return True


class GpuPanel(Static):
    def show(self, status: GpuStatus | None) -> None:
        if status is None:
            self.update(Text("GPU: probing...", "dim"))
            return
        if not status.available:
            self.update(Text(status.reason.split(" (")[0] if status.reason else "no NVIDIA GPU", "dim"))
            return
        table = Table(box=None, padding=(0, 1), show_edge=False)
        # numbers keep their width; on a narrow terminal the GPU's name gives way (ellipsis), never a row
        table.add_column("GPU", no_wrap=True, overflow="ellipsis", ratio=1)
        for col, width in (("util", 4), ("memory", 9), ("temp", 4), ("power", 8), ("worker", 6)):
            table.add_column(col, no_wrap=True, min_width=width)
        for g in status.gpus:
            mem = "N/A" if g.mem_used_mb is None else f"{g.mem_used_mb / 1024:.1f}/{num(g.mem_total_mb and g.mem_total_mb / 1024, '.0f')}G"
            power = "N/A" if g.power_w is None else f"{g.power_w:.0f}/{num(g.power_limit_w, '.0f')}W"
            table.add_row(f"{g.index} {g.name.removeprefix('NVIDIA ')}", num(g.util_pct, ".0f") + ("%" if g.util_pct is not None else ""),
                          mem, num(g.temp_c, ".0f") + ("C" if g.temp_c is not None else ""), power,
                          "N/A" if g.worker_mem_mb is None else f"{g.worker_mem_mb / 1024:.1f}G")
        self.update(table)


class HostPanel(Static):
    def show(self, host: HostSample | None) -> None:
        if host is None:
            self.update(Text("CPU: probing...", "dim"))
            return
        grid = Table.grid(padding=(0, 1))  # two rows: at 80x24 every row spent here is one the curves lose
        worker = ("not running" if host.worker_cpu_pct is None else
                  f"{host.worker_cpu_pct:.0f}% {host.worker_rss_mb / 1024:.1f}G")
        disk = "N/A" if host.disk_free_mb is None else f"{host.disk_free_mb / 1024:.0f}G free"
        grid.add_row("CPU", f"{host.cpu_pct:.0f}% of {host.cpu_count}", "RAM",
                     f"{host.ram_used_mb / 1024:.1f}/{host.ram_total_mb / 1024:.0f}G")
        grid.add_row("worker", worker, "disk", disk)
        self.update(grid)


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
