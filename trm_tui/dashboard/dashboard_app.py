"""The dashboard: one run, fit for SSH. The App holds the run as this window follows it (``view``, a RunView:
the one source of truth for the screen and the keys) and its keys; its feeds follow the run and the machine
on threads (``feeds``); the run screen draws, once a second, only what changed (``run_screen``).

The view is changed in place (``RunView.feed``, ``finish``, ``move_to``: each bumps its ``version``, which
the screen redraws by) and then announced with Textual's ``mutate_reactive``, so the footer re-checks which
keys can act. Nothing else holds a copy of the run's state."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.reactive import reactive
from textual.filter import Monochrome, NoColor

from trm_core.config import ConfigError, SupervisorConfig
from trm_core.rundir.states import RunState
from trm_core.control.client import KeeperClient
from trm_core.control.start_checks import check_start
from trm_core.config.start import Start
from trm_core.control.launch import stop_worker
from trm_core.distributed.rank_files import RankStatus
from trm_core.rundir.layout import RunDir
from trm_core.rundir.records import AutotuneResult, KeeperEnd, RunStart
from trm_core.telemetry import GpuProbe, GpuStatus, HostSample
from trm_tui.dashboard import keys
from trm_tui.dashboard.feeds import Feeds, LiveFeeds
from trm_tui.dashboard.keys import KeyFacts, Search, acting_refused, view_label
from trm_tui.dashboard.messages import (Attached, EventsArrived, HistoryRead, KeeperSearchRefused, Note,
                                       SearchFinished, SupervisionOver, SupervisionResumed)
from trm_tui.dashboard.autotune_actions import AutotuneControl
from trm_tui.dashboard.runs_screen import RunsScreen
from trm_tui.dashboard.screens import ConfirmKill, EventsScreen, HelpScreen, LogScreen
from trm_tui.dashboard.view import RunView
from trm_tui.dashboard.run_screen import Frame, RunScreen

class Dashboard(App[int]):
    TITLE = "trm-tui"
    ENABLE_COMMAND_PALETTE = False  # every action has its own key; the palette's footer slot is worth more
    # the main screen's layout; each widget and screen keeps its own look (DEFAULT_CSS)
    CSS = """
    Screen { layout: vertical; }
    #top { height: 6; }
    #top > Static { width: 1fr; height: 100%; border: round $primary; padding: 0 1; }
    #curves { height: 1fr; min-height: 4; }
    #machine { height: auto; max-height: 7; }
    #machine > Static { width: 1fr; height: auto; border: round $primary; padding: 0 1; }
    #machine > RanksPanel { width: 1.5fr; }
    """
    # what the footer's keys depend on: each change refreshes which keys can act (check_action). The run as
    # this window follows it; changed in place, then announced (view_changed)
    view: reactive[RunView] = reactive(RunView, bindings=True, layout=False, repaint=False, init=False)
    search: reactive[Search] = reactive(Search.NONE, bindings=True, layout=False, repaint=False)
    supervising: reactive[bool] = reactive(False, bindings=True, layout=False, repaint=False)

    BINDINGS = [
        Binding("s", "stop", "stop"),
        Binding("r", "resume", "resume"),
        Binding("a", "autotune", "tune"),
        Binding("e", "events", "events"),
        Binding("l", "log", "log"),
        Binding("K", "kill", "kill"),
        Binding("R", "runs", "runs"),
        Binding("p", "predictions", "preds"),
        Binding("t", "toggle_chart", "plot"),
        Binding("question_mark", "help", "help"),
        Binding("q", "quit_keep", "quit"),  # the run goes on: the help and the exit message say so
    ]

    def __init__(self, run_dir: Path, start: Start | list[str] | None, settings: SupervisorConfig,
                 gpu_probe: GpuProbe | None = None, feeds: Feeds | None = None, read_only: bool = False) -> None:
        super().__init__()
        if self.no_color:  # NO_COLOR means no colour codes at all; Textual's default draws greys
            self._filters = [f for f in self._filters if not isinstance(f, Monochrome)] + [NoColor()]
        # what to start (a Start, or its flags as a list), or None: open the run as it is
        self.start_request = Start.from_argv(run_dir, start) if isinstance(start, list) else start
        self.run_dir, self.settings = run_dir, settings
        # node N of a multi-node run: the run's name, and which node this is
        self.rundir = self.start_request.rundir if self.start_request is not None else RunDir.at(run_dir)
        root = self.rundir.root
        self.read_only = read_only
        self.refused = acting_refused(root, read_only)  # why this view may not act at all, or None
        self._config_key: tuple | None = ("unread",)
        self._config_error: str | None = None
        self.set_reactive(Dashboard.view, RunView((root.name or str(root)) + (
            "" if self.rundir.leads else f" ({run_dir.name})") + view_label(root, read_only)))
        self.gpu_probe = gpu_probe
        self.feeds: Feeds = feeds or LiveFeeds()  # the run and the machine, each on a thread (feeds.py)
        self.gpu: GpuStatus | None = None
        self.host: HostSample | None = None
        self.ranks: list[RankStatus] = []  # with several ranks: each one's file, read by the machine feed
        self.client: KeeperClient | None = None
        self.exit_code = 0
        self.clock: Callable[[], float] = time.time  # wall clock for ages and uptime; tests freeze it
        self._keys_read: tuple = ()  # the view's state and search as the keys last saw them (view_changed)
        self.tuner = AutotuneControl(self)  # the a key: a search through the keeper, or in this process
        self.quitting = threading.Event()  # set as the dashboard leaves: wakes its threads at once
        self._key_actions = {b.key: b.action for b in self.BINDINGS if isinstance(b, Binding)}
        self._resume_when_over = False  # r pressed while the run was stopping
        self.show_score = False  # t: the right chart shows the eval score instead of samples/s
        self.switch_to: Path | None = None  # the run to open next (the runs screen); the CLI opens it

    def get_default_screen(self) -> RunScreen:
        return RunScreen()

    def on_mount(self) -> None:
        self.feeds.start(self)
        self.set_interval(1.0, self.redraw)
        self.call_after_refresh(self.redraw)  # after the first layout, when the panels know their sizes

    def on_unmount(self) -> None:
        self.quitting.set()  # however the app ends, its threads stop within a poll

    # -- state (on the UI thread) ----------------------------------------------------------------------

    def view_changed(self) -> None:
        """After the view changed in place: the keys are checked again when what they depend on (the run's
        state, a search in the log) moved. Every step's records would otherwise redraw the footer each second
        (its recompose tripled the dashboard's CPU at steady state)."""
        keys_read = (self.view.state, self.view.tuning)
        if keys_read != self._keys_read:
            self._keys_read = keys_read
            self.mutate_reactive(Dashboard.view)

    def watch_search(self) -> None:
        """A search began or ended here: the header says TUNING (or no longer) at once, not at the next tick."""
        self.call_after_refresh(self.redraw)

    def on_history_read(self, message: HistoryRead) -> None:
        self.view.feed(message.events, history=True)
        self.view_changed()
        self.call_after_refresh(self.redraw)  # the run's history on screen now, not at the next tick

    def on_attached(self, message: Attached) -> None:
        self.client = client = message.client
        alive = client.ident is not None and client.ident.is_alive()
        if alive:  # a worker we attached to is running; one we launched is starting until its run_start
            self.view.move_to(RunState.RUNNING if message.had_history else RunState.STARTING, client.ident.pid)
        self.supervising = client.exit_code is None
        self.view_changed()

    def on_events_arrived(self, message: EventsArrived) -> None:
        self.view.feed(message.events)
        if self.search == Search.KEEPER and any(e["event"] in (AutotuneResult.KIND, RunStart.KIND, KeeperEnd.KIND)
                                                for e in message.events):
            self.search = Search.NONE  # the keeper's search is over: it resumes the run (or ended it)
        self.view_changed()

    def on_note(self, message: Note) -> None:
        self.notify(message.text, severity=message.severity)

    def on_supervision_over(self, message: SupervisionOver) -> None:
        if message.counts:
            self.exit_code = message.code or 0
        if self._resume_when_over:
            self._resume_when_over = False
            self.call_after_refresh(self.action_resume)
        self.view.finish(message.code)
        self.supervising = False
        self.view_changed()

    def on_supervision_resumed(self, _message: SupervisionResumed) -> None:
        self.supervising = True

    def redraw(self) -> None:
        """Once a second, and when new history arrives: the run screen draws what changed."""
        self.run_screen.draw(Frame(self.view, self.clock(), self.host, self.gpu, self.settings.stall_after_s,
                                   self.ranks, self.tuning or self.tuner.searching_elsewhere(), self.show_score,
                                   self.config_error()))

    def config_error(self) -> str | None:
        """Why the run's config.toml does not read (r and a cannot work then), checked again when it changes."""
        from trm_core.control.run_status import config_error

        path = self.rundir.config
        try:
            key: tuple | None = (path.stat().st_mtime_ns, path.stat().st_size)
        except OSError:
            key = None
        if key != self._config_key:
            self._config_key = key
            self._config_error = config_error(self.rundir.root, self.view.state)
        return self._config_error

    @property
    def run_screen(self) -> RunScreen:
        return self.screen_stack[0]  # the default screen, under any help or log screen on top

    # -- keys -------------------------------------------------------------------------------------------

    @property
    def tuning(self) -> bool:
        """A search this dashboard started (here or through the keeper) holds the run."""
        return self.search != Search.NONE

    def why_not(self, action: str) -> str | None:
        """Why the key for ``action`` cannot act now, in words for the user; None when it can (``keys``)."""
        facts = KeyFacts(self.view.state, self.search, self.tuner.searching_elsewhere(),
                         self.client is not None and self.client.exit_code is None, self.run_dir, self.refused,
                         self.config_error())
        return keys.why_not(action, facts)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Keys that cannot act now are greyed in the footer (hidden under NO_COLOR, where grey does not show);
        pressed anyway, they say why (on_key)."""
        if self.why_not(action) is None:
            return True
        return False if self.no_color else None

    def on_key(self, event) -> None:
        """A key whose action cannot run now reaches here instead: say why, and remember a resume asked for
        while the run stops (it runs once the worker is gone)."""
        action = self._key_actions.get(event.key)
        why = self.why_not(action) if action else None
        if why is None:
            return
        event.stop()
        if action == "resume" and self.view.state == RunState.STOPPING:
            self._resume_when_over = True
        self.notify(why, severity="warning", timeout=6)

    def action_stop(self) -> None:
        if self.refuse_acting():
            return
        if self.client is not None:
            self.client.request_stop("s in the dashboard")
            self.view.move_to(RunState.STOPPING)
            self.view_changed()
            self.notify("stopping: the worker finishes its step and saves a checkpoint")

    def action_resume(self) -> None:
        if self.refuse_acting():
            return
        if self.tuner.refuse_if_elsewhere():
            return
        start = Start.resuming(self.rundir)
        try:  # the checks every start passes (trm_core/control/start_checks.py), before anything is launched
            check_start(start)
        except ConfigError as exc:
            self.notify(f"not resumed: {exc}", severity="error", timeout=12)
            return
        self.exit_code = 0  # the outcome of the run before this resume no longer counts
        self.view.move_to(RunState.STARTING)
        self.supervising = True
        self.view_changed()
        self.feeds.follow(self, start)

    def action_autotune(self) -> None:
        self.tuner.start()

    def on_keeper_search_refused(self, message: KeeperSearchRefused) -> None:
        self.tuner.keeper_refused(message.why)

    def on_search_finished(self, message: SearchFinished) -> None:
        self.tuner.finished(message.over)

    def action_runs(self) -> None:
        self.push_screen(RunsScreen(self.run_dir.resolve().parent, self.run_dir.resolve()), self.switch_run)

    def switch_run(self, run_dir: Path | None) -> None:
        """The runs screen's choice: leave this run (as it is: q's rules) for another; the CLI opens that one
        next, as it is. This run again, or none, stays here."""
        if run_dir is None or run_dir == self.run_dir.resolve():
            return
        self.switch_to = run_dir
        self.action_quit_keep()

    def action_toggle_chart(self) -> None:
        """The right chart: samples/s, or the held-out score that fits the task (masked-byte accuracy for code,
        whole answers right for puzzles), one point per eval."""
        self.show_score = not self.show_score
        self.redraw()

    def action_events(self) -> None:
        self.push_screen(EventsScreen(self.view))

    def action_predictions(self) -> None:
        """The newest eval's predictions (trm-tui eval, or train.eval_save_predictions), in the browser."""
        from trm_core.evaluate.predictions import newest_eval
        from trm_tui.predictions.screen import PredictionsScreen

        folder = newest_eval(self.rundir.evals)
        if folder is None:
            self.notify(f"no eval with predictions yet: trm-tui eval --run-dir {self.rundir.root} writes one "
                        f"(or train.eval_save_predictions = true)", severity="warning")
            return
        self.push_screen(PredictionsScreen(folder))

    def action_log(self) -> None:
        self.push_screen(LogScreen(self.rundir.worker_log))

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_kill(self) -> None:
        if self.refuse_acting():
            return
        def answered(yes: bool | None) -> None:
            if yes:
                self.force_kill()
        self.push_screen(ConfirmKill(), answered)

    @work(thread=True, group="kill")
    def force_kill(self) -> None:
        # through the supervisor when there is one: it then restarts nothing, pending or not
        result = self.client.stop(force=True) if self.client is not None else \
            stop_worker(self.rundir, self.settings.stop_grace_s, force=True)
        self.post_message(Note("worker killed" if result.killed else "no worker was running"))

    def refuse_acting(self) -> bool:
        """An acting action reached some other way than its key (the command palette): refused all the same."""
        if self.refused is None:
            return False
        self.notify(self.refused, severity="warning", timeout=6)
        return True

    def action_quit(self) -> None:
        """Textual's own quit keys (ctrl+q) leave the same way as q: training goes on."""
        self.action_quit_keep()

    def action_quit_keep(self) -> None:
        self.tuner.stop()  # a trial in flight is killed; the run keeps its settings
        self.quitting.set()
        for w in self.workers:
            w.cancel()
        self.exit(self.exit_code)
