"""The dashboard: one run, fit for SSH. Supervision and telemetry run in threads; the screen redraws at
most twice a second and only what changed."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.containers import Horizontal
from textual.filter import Monochrome, NoColor
from textual.widgets import Footer
from textual.worker import get_current_worker

from trm_core.config import SupervisorConfig
from trm_core.rundir.states import SUPERVISED, RunState
from trm_core.distributed import rank_files
from trm_core.control import commands, tune
from trm_core.control.client import KeeperClient
from trm_core.config.start import Start
from trm_core.control.launch import stop_worker
from trm_core.rundir.layout import RunDir
from trm_core.rundir.identity import run_lock_held
from trm_core.rundir.records import AutotuneResult, KeeperEnd, RunStart
from trm_core.telemetry import GpuProbe, GpuStatus, HostProbe, HostSample
from trm_tui.dashboard import keys
from trm_tui.dashboard.history import read_history
from trm_tui.dashboard.keys import KeyFacts, Search
from trm_tui.dashboard.messages import (Attached, EventsArrived, HistoryRead, KeeperSearchRefused, Note, SearchFinished,
                                       SupervisionOver, SupervisionResumed)
from trm_tui.dashboard.runs_screen import RunsScreen
from trm_tui.dashboard.screens import ConfirmKill, EventsScreen, HelpScreen, LogScreen
from trm_tui.dashboard.view import RunView
from trm_tui.dashboard.widgets import (Curve, EventsPane, GpuPanel, HeaderBar, HostPanel, MetricsPanel, RanksPanel,
                                       ProgressPanel)

CURVE_PERIOD_S = 5.0
# Each wake-up of a dashboard thread can preempt one of the worker's torch threads on a small machine and
# stall the other with it (measured: 40 wake-ups/s cost the worker 4% of its samples/s), so the threads
# wake once a second and the UI loop is entered only when there is something new.
POLL_S = 1.0


class Dashboard(App[int]):
    TITLE = "trm-tui"
    ENABLE_COMMAND_PALETTE = False  # every action has its own key; the palette's footer slot is worth more
    CSS = """
    Screen { layout: vertical; }
    HeaderBar { height: 1; background: $panel; }
    #top { height: 6; }
    #top > Static { width: 1fr; height: 100%; border: round $primary; padding: 0 1; }
    #curves { height: 1fr; min-height: 4; }
    Curve { width: 1fr; height: 100%; }
    #machine { height: auto; max-height: 7; }
    #machine > Static { width: 1fr; height: auto; border: round $primary; padding: 0 1; }
    #machine > RanksPanel { width: 1.5fr; }
    #compare-curves { height: 1fr; }
    #compare-curves > Curve { width: 1fr; height: 1fr; border: round $primary; }
    EventsPane { height: 5; border: round $secondary; padding: 0 1; }
    #dialog { width: 76; height: auto; border: thick $accent; background: $surface; padding: 1 2; }
    HelpScreen, ConfirmKill { align: center middle; }
    """
    # what the footer's keys depend on: each change refreshes which keys can act (check_action)
    run_state: reactive[RunState] = reactive(RunState.NOT_STARTED, bindings=True, layout=False, repaint=False)
    search: reactive[Search] = reactive(Search.NONE, bindings=True, layout=False, repaint=False)
    supervising: reactive[bool] = reactive(False, bindings=True, layout=False, repaint=False)
    tuning_logged: reactive[bool] = reactive(False, bindings=True, layout=False, repaint=False)

    BINDINGS = [
        Binding("s", "stop", "stop"),
        Binding("r", "resume", "resume"),
        Binding("a", "autotune", "auto-tune"),
        Binding("e", "events", "events"),
        Binding("l", "log", "log"),
        Binding("K", "kill", "kill"),
        Binding("R", "runs", "runs"),
        Binding("t", "toggle_chart", "chart", show=False),
        Binding("question_mark", "help", "help"),
        Binding("q", "quit_keep", "quit"),  # the run goes on: the help and the exit message say so
    ]

    def __init__(self, run_dir: Path, start: Start | list[str] | None, settings: SupervisorConfig,
                 gpu_probe: GpuProbe | None = None) -> None:
        super().__init__()
        if self.no_color:  # NO_COLOR means no colour codes at all; Textual's default draws greys
            self._filters = [f for f in self._filters if not isinstance(f, Monochrome)] + [NoColor()]
        # what to start (a Start, or its flags as a list), or None: open the run as it is
        self.start_request = Start.from_argv(run_dir, start) if isinstance(start, list) else start
        self.run_dir, self.settings = run_dir, settings
        # node N of a multi-node run: the run's name, and which node this is
        self.rundir = self.start_request.rundir if self.start_request is not None else RunDir.at(run_dir)
        root = self.rundir.root
        self.view = RunView((root.name or str(root)) + ("" if self.rundir.leads else f" ({run_dir.name})"))
        self.gpu_probe = gpu_probe
        self.gpu: GpuStatus | None = None
        self.host: HostSample | None = None
        self.sup: KeeperClient | None = None
        self.exit_code = 0
        self._drawn = -1
        self._curves_at = 0.0
        self.clock: Callable[[], float] = time.time  # wall clock for ages and uptime; tests freeze it
        self._autotune_cancel: threading.Event | None = None  # the handle of a search in this process
        self._quit = threading.Event()  # wakes the threads at once when the dashboard exits
        self._key_actions = {b.key: b.action for b in self.BINDINGS if isinstance(b, Binding)}
        self._resume_when_over = False  # r pressed while the run was stopping
        self.show_score = False  # t: the right chart shows the eval score instead of samples/s
        self.switch_to: Path | None = None  # the run to open next (the runs screen); the CLI opens it

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
        yield Footer()

    def on_mount(self) -> None:
        self.supervise(self.start_request)
        self.telemetry()
        self.set_interval(1.0, self.redraw)
        self.call_after_refresh(self.redraw)  # after the first layout, when the panels know their sizes

    def on_unmount(self) -> None:
        self._quit.set()  # however the app ends, its threads stop within a poll

    # -- threads ----------------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="supervise")
    def supervise(self, start: Start | None) -> None:
        """Follow the run through its keeper (started here when there is none) for as long as the dashboard
        is open: past the keeper's end too, so a resume from any other client shows here. ``None``: open the
        run as it is, starting nothing (a stopped, failed or finished run stays so until ``r``)."""
        client = KeeperClient(self.rundir, start, self.settings.stop_grace_s, role="dashboard")
        # the run's past only once: after a resume from this dashboard the view already holds it
        history = self._history(client.tail.offset) if self.view.version == 0 else []
        if history:  # on screen before the keeper is found or started: that takes a process start
            self.post_message(HistoryRead(history))
        client.start()
        self.post_message(Attached(client, bool(history)))
        worker = get_current_worker()
        over = False
        if client.exit_code is not None:  # opened a run that was over: show how it ended; looking is no failure
            over = True
            self.post_message(SupervisionOver(client.exit_code, counts=False))
        while not worker.is_cancelled:
            events = client.poll()
            if events:
                self.post_message(EventsArrived(events))
            for note in client.notes:
                self.post_message(Note(note))
            client.notes.clear()
            if client.exit_code is not None and not over:
                over = True
                self.post_message(SupervisionOver(client.exit_code))
            elif client.exit_code is None and over:
                over = False  # a new keeper took the run: a resume from another client
                self.post_message(SupervisionResumed())
            if self._quit.wait(POLL_S):
                return

    def _history(self, end: int) -> list[dict[str, Any]]:
        return read_history(self.rundir.keeper_events, end)

    @work(thread=True, exclusive=True, group="telemetry")
    def telemetry(self) -> None:
        gpu_probe = self.gpu_probe or GpuProbe()
        host_probe = HostProbe(self.run_dir)
        worker = get_current_worker()
        while not worker.is_cancelled:
            # SUPERVISED, not HAS_WORKER: after a relaunch the new worker is probed before its first event
            pid = self.sup.ident.pid if self.sup and self.sup.ident and self.view.state in SUPERVISED else None
            host = host_probe.sample(pid)
            gpu = gpu_probe.sample(host.worker_pids)
            # plain references, read by the next redraw: no call into the UI loop, no extra repaint
            self.host, self.gpu = host, gpu
            if self._quit.wait(1.0):
                break
        gpu_probe.close()

    # -- state (on the UI thread) ----------------------------------------------------------------------

    def on_history_read(self, message: HistoryRead) -> None:
        self.view.feed(message.events, history=True)
        self.run_state = self.view.state
        self.call_after_refresh(self.redraw)  # the run's history on screen now, not at the next tick

    def on_attached(self, message: Attached) -> None:
        self.sup = client = message.client
        alive = client.ident is not None and client.ident.is_alive()
        if alive:  # a worker we attached to is running; one we launched is starting until its run_start
            self.view.state = RunState.RUNNING if message.had_history else RunState.STARTING
            self.view.pid = client.ident.pid
            self.view.version += 1
        self.run_state, self.supervising = self.view.state, client.exit_code is None

    def on_events_arrived(self, message: EventsArrived) -> None:
        self.view.feed(message.events)
        if self.search == Search.KEEPER and any(e["event"] in (AutotuneResult.KIND, RunStart.KIND, KeeperEnd.KIND)
                                                for e in message.events):
            self.search = Search.NONE  # the keeper's search is over: it resumes the run (or ended it)
        self.run_state, self.tuning_logged = self.view.state, self.view.tuning

    def on_note(self, message: Note) -> None:
        self.notify(message.text, severity=message.severity)

    def on_supervision_over(self, message: SupervisionOver) -> None:
        if message.counts:
            self.exit_code = message.code or 0
        if self._resume_when_over:
            self._resume_when_over = False
            self.call_after_refresh(self.action_resume)
        self.view.finish(message.code)
        self.run_state, self.supervising = self.view.state, False

    def on_supervision_resumed(self, _message: SupervisionResumed) -> None:
        self.supervising = True

    def redraw(self) -> None:
        """Once a second: panels whose data changed. Curves at most every CURVE_PERIOD_S (plotting is
        the costliest thing the dashboard does), or at once while they are still empty (a resize redraws
        a curve by itself)."""
        view = self.view
        now, wall = time.monotonic(), self.clock()
        gpu_idle = bool(self.gpu and self.gpu.available and self.gpu.gpus and
                        all((g.util_pct or 0) < 5 for g in self.gpu.gpus))
        stall_after = view.stall_after_s(self.settings.stall_after_s)
        alerts = view.alerts(wall, stall_after, self.host.disk_free_mb if self.host else None, gpu_idle)
        ranks = rank_files.read_all(self.rundir.root, view.world_size) if view.world_size > 1 else []
        words = [rank_files.health(s, wall, stall_after, ranks) for s in ranks]
        for s, word in zip(ranks, words):
            if view.state == RunState.RUNNING and word in ("stalled", "gone"):
                alerts.append(f"RANK {s.rank} {word.upper()} on {s.host}: {s.phase} of step {s.step}, "
                              f"heartbeat {s.age(wall):.0f}s old")
        panel = self.query_one(RanksPanel)
        panel.display = bool(ranks)
        if ranks:
            panel.show(ranks, words, wall)
        self.query_one(HeaderBar).show(view, wall, stalled=any(a.startswith("STALLED") for a in alerts),
                                       tuning=self.tuning or self._search_elsewhere())
        pane = self.query_one(EventsPane)
        pane.show(view, alerts, max(1, pane.size.height))
        self.query_one(HostPanel).show(self.host)
        self.query_one(GpuPanel).show(self.gpu)
        curves_due = now - self._curves_at >= CURVE_PERIOD_S
        right = [(view.task_curve_label(), view.eval_score_curve, "magenta")] if self.show_score \
            else [("samples/s", view.throughput, "green")]
        for curve, series in ((self.query_one("#loss-curve", Curve),
                               [("loss", view.loss, "cyan"), ("eval", view.eval_curve, "yellow")]),
                              (self.query_one("#speed-curve", Curve), right)):
            if curves_due or curve.empty or curve.shows != series[0][0]:
                if curve.plot(series, view.version):
                    self._curves_at = now
        if self._drawn == view.version:
            return
        self._drawn = view.version
        self.query_one(ProgressPanel).show(view)
        self.query_one(MetricsPanel).show(view)

    # -- keys -------------------------------------------------------------------------------------------

    @property
    def tuning(self) -> bool:
        """A search this dashboard started (here or through the keeper) holds the run."""
        return self.search != Search.NONE

    def why_not(self, action: str) -> str | None:
        """Why the key for ``action`` cannot act now, in words for the user; None when it can (``keys``)."""
        facts = KeyFacts(self.view.state, self.search, self._search_elsewhere(),
                         self.sup is not None and self.sup.exit_code is None, self.run_dir)
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
        if self.sup is not None:
            self.sup.request_stop()
            self.view.state = self.run_state = RunState.STOPPING
            self.view.version += 1
            self.notify("stopping: the worker finishes its step and saves a checkpoint")

    def _search_elsewhere(self) -> bool:
        """Another client's auto-tune search holds the run: its autotune_start has no result yet and the run's
        lock is held (a search that was killed leaves the first but not the second)."""
        return self.view.tuning and not self.tuning and run_lock_held(self.run_dir)

    def _tuned_elsewhere(self) -> bool:
        """Another client's auto-tune search holds the run: say so instead of acting."""
        if self._search_elsewhere():
            self.notify("busy: an auto-tune search from another window holds the run; it resumes the run when "
                        "it is done", severity="warning")
            return True
        return False

    def action_resume(self) -> None:
        if self._tuned_elsewhere():
            return
        self.exit_code = 0  # the outcome of the run before this resume no longer counts
        self.view.state = self.run_state = RunState.STARTING
        self.view.version += 1
        self.supervising = True
        self.supervise(Start.resuming(self.rundir))

    def action_autotune(self) -> None:
        if self._tuned_elsewhere():
            return
        self.view.version += 1
        self.notify("auto-tune: stopping the run with a checkpoint, then trials (see the events pane)")
        if self.sup is not None and self.sup.keeper_alive():
            self.search = Search.KEEPER  # the keeper runs it: it outlives this window, and resumes the run
            self.ask_keeper_to_tune()
            return
        self.search = Search.HERE
        self._autotune_cancel = threading.Event()  # here, not in the thread: a q right after a must find it
        self.run_autotune(self._autotune_cancel)

    @work(thread=True, group="autotune-command", exit_on_error=False)
    def ask_keeper_to_tune(self) -> None:
        cid = commands.send(self.run_dir, commands.Autotune(), commands.sender_name("dashboard"))
        ack = commands.answer(self.run_dir, cid, timeout_s=30)
        if ack is None or not ack.accepted:
            self.post_message(KeeperSearchRefused("the keeper did not answer" if ack is None else ack.reason))

    def on_keeper_search_refused(self, message: KeeperSearchRefused) -> None:
        self.search = Search.NONE
        self.view.version += 1
        self.notify(f"auto-tune refused: {message.why}", severity="error", timeout=10)

    @work(thread=True, exclusive=True, group="autotune", exit_on_error=False)
    def run_autotune(self, cancel: threading.Event) -> None:
        """The search in this process, its trials shown as they are written; when it is over, the result goes
        to the UI, or, once the dashboard has quit, a run the search stopped is resumed (``tune.finish``)."""
        def show(ev: dict[str, Any]) -> None:
            self._deliver(EventsArrived([ev]))

        over = tune.SearchOver.of(self.run_dir, lambda: tune.tune(self.run_dir, on_event=show, cancel=cancel),
                                  was_running=self.view.state in SUPERVISED)
        tune.finish(over, self.rundir, lambda result: self._deliver(SearchFinished(result)))

    def _deliver(self, message: Message) -> bool:
        """Post to the UI from a thread while the dashboard is open; False once it has quit (its loop takes no
        more messages)."""
        if self._quit.is_set():
            return False
        try:
            return self.post_message(message)
        except RuntimeError:  # the loop closed between the check and the post
            return False

    def on_search_finished(self, message: SearchFinished) -> None:
        over = message.over
        self.search = Search.NONE
        self.view.version += 1
        if over.outcome is None:
            self.notify(f"auto-tune: {over.error}", severity="error", timeout=10)
        if over.was_running:
            self.action_resume()  # from the checkpoint, with the chosen settings if there are any
        elif over.outcome is not None:
            self.notify("auto-tune done; press r to resume the run")

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

    def action_log(self) -> None:
        self.push_screen(LogScreen(self.rundir.worker_log))

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_kill(self) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self.force_kill()
        self.push_screen(ConfirmKill(), answered)

    @work(thread=True, group="kill")
    def force_kill(self) -> None:
        # through the supervisor when there is one: it then restarts nothing, pending or not
        result = self.sup.stop(force=True) if self.sup is not None else \
            stop_worker(self.rundir, self.settings.stop_grace_s, force=True)
        self.post_message(Note("worker killed" if result.killed else "no worker was running"))

    def action_quit(self) -> None:
        """Textual's own quit keys (ctrl+q) leave the same way as q: training goes on."""
        self.action_quit_keep()

    def action_quit_keep(self) -> None:
        if self._autotune_cancel is not None:
            self._autotune_cancel.set()  # the trial in flight is killed; the run keeps its settings
        self._quit.set()
        for w in self.workers:
            w.cancel()
        self.exit(self.exit_code)
