"""Screens over the dashboard: key help, the run's events, the raw worker log, and the force-kill confirmation."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Label, Log, Static
from trm_tui.keys_footer import KeysFooter

KEYS_HELP = """\
[b]s[/b]  stop gracefully: the worker finishes its step, saves a checkpoint and exits
[b]r[/b]  resume from the newest good checkpoint (when the run is not running)
[b]a[/b]  auto-tune micro-batch and threads (stops, measures, resumes the run)
[b]t[/b]  the right chart: samples/s, or the held-out score (masked-byte accuracy, or puzzles solved)
[b]e[/b]  every event of the run so far (scroll with the arrows, PgUp/PgDn), following new ones
[b]l[/b]  the raw worker log
[b]K[/b]  force-kill the worker (asks first; the newest good checkpoint stays)
[b]R[/b]  the runs beside this one: enter opens one, space marks, c compares the marked runs' curves
[b]p[/b]  the newest eval's predictions: each example drawn, left/right through the supervision steps
[b]q[/b]  quit the dashboard: training keeps running; run trm-tui again to attach
[b]?[/b]  this help            [b]escape[/b] close a screen"""


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    #dialog { width: 76; height: auto; border: thick $accent; background: $surface; padding: 1 2; }
    """
    BINDINGS = [Binding("escape,question_mark,q", "app.pop_screen", "close")]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("[b]trm-tui keys[/b]")
            yield Static(KEYS_HELP)


class EventsScreen(Screen[None]):
    """The run's notable events (the events pane's source, up to the newest 1000), scrollable, following new
    ones: the three-line pane cannot hold an auto-tune's trials or a long run's restarts."""

    BINDINGS = [Binding("escape,e,q", "app.pop_screen", "back")]

    def __init__(self, view) -> None:
        super().__init__()
        self.view = view
        self._seen = 0

    def compose(self) -> ComposeResult:
        yield Label("[b]events[/b] (newest last, following; ← → scroll long lines)")
        yield Log(id="events-log", max_lines=1000)
        yield KeysFooter()

    def on_mount(self) -> None:
        self.follow()
        self.set_interval(1.0, self.follow)

    def follow(self) -> None:
        import time

        new = min(self.view.events_seen - self._seen, len(self.view.events))
        if new <= 0:
            return
        self._seen = self.view.events_seen
        lines = list(self.view.events)[-new:]
        self.query_one(Log).write_lines(
            f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(line.time))} {'! ' if line.alert else ''}{line.text}"
            for line in lines)


class LogScreen(Screen[None]):
    """The raw worker log, followed live (new lines appear as the worker writes them, once a second)."""

    BINDINGS = [Binding("escape,l,q", "app.pop_screen", "back")]

    def __init__(self, path: Path, lines: int = 2000) -> None:
        super().__init__()
        self.path, self.lines = path, lines
        self._offset = 0
        self._partial = ""

    def compose(self) -> ComposeResult:
        yield Label(f"[b]{self.path}[/b] (last {self.lines} lines, following; ← → scroll long lines)")
        yield Log(id="worker-log", max_lines=self.lines)
        yield KeysFooter()

    def on_mount(self) -> None:
        log = self.query_one(Log)
        try:
            with open(self.path, "rb") as fh:
                size = fh.seek(0, 2)
                fh.seek(max(0, size - 256 * self.lines))  # enough for the last lines, never the whole file
                blob = fh.read()
            self._offset = size
            text = blob.decode(errors="replace").splitlines()[-self.lines:]
        except OSError as exc:
            text = [f"cannot read {self.path}: {exc.strerror}"]
        log.write_lines(text or ["(empty)"])
        self.set_interval(1.0, self.follow)

    def follow(self) -> None:
        """Append what the worker wrote since the last look (a restart's new output included)."""
        try:
            with open(self.path, "rb") as fh:
                size = fh.seek(0, 2)
                if size < self._offset:  # truncated or replaced: start over
                    self._offset, self._partial = 0, ""
                if size == self._offset:
                    return
                fh.seek(self._offset)
                blob = fh.read(size - self._offset)
        except OSError:
            return
        self._offset += len(blob)
        text = self._partial + blob.decode(errors="replace")
        *complete, self._partial = text.split("\n")
        if complete:
            self.query_one(Log).write_lines(complete)


class ConfirmKill(ModalScreen[bool]):
    DEFAULT_CSS = """
    ConfirmKill { align: center middle; }
    #dialog { width: 76; height: auto; border: thick $accent; background: $surface; padding: 1 2; }
    """
    BINDINGS = [Binding("y", "answer(True)", "yes, kill"), Binding("n,escape", "answer(False)", "no")]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("[b]Force-kill the worker?[/b]")
            yield Static("SIGKILL now: the current step is lost, the newest good checkpoint stays.\n"
                         "[b]y[/b] kill    [b]n[/b] cancel")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
