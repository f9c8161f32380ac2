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
from textual.containers import Horizontal
from textual.filter import Monochrome, NoColor
from textual.widgets import Footer
from textual.worker import get_current_worker

from trm_core.autotune.engine import Outcome
from trm_core.config import ConfigError, SupervisorConfig
from trm_core.rundir.states import SUPERVISED, RunState
from trm_core.distributed import rank_files
from trm_core.control import commands
from trm_core.control.client import KeeperClient
from trm_core.config.start import Start
from trm_core.control.launch import ensure_keeper, stop_worker
from trm_core.rundir.layout import RunDir
from trm_core.rundir.identity import run_lock_held
from trm_core.rundir.records import AutotuneResult, Eval, KeeperEnd, RunStart, Step
from trm_core.telemetry import GpuProbe, GpuStatus, HostProbe, HostSample
from trm_tui.dashboard.history import read_history
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
# a run to tune: one that runs, or one stopped with a checkpoint
TUNABLE = frozenset({RunState.RUNNING, RunState.STOPPED, RunState.FAILED, RunState.STALLED})


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
        self.tuning = False
        self._keeper_search = False  # the search running is the keeper's, asked for from here
        self._autotune_cancel: threading.Event | None = None
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
            self.call_from_thread(self._show_history, history)
        client.start()
        self.call_from_thread(self._started, client, bool(history))
        worker = get_current_worker()
        over = False
        if client.exit_code is not None:  # opened a run that was over: show how it ended; looking is no failure
            over = True
            self.call_from_thread(self._supervision_over, client.exit_code, False)
        while not worker.is_cancelled:
            events = client.poll()
            if events:
                self.call_from_thread(self._ingest, events)
            for note in client.notes:
                self.call_from_thread(self.notify, note)
            client.notes.clear()
            if client.exit_code is not None and not over:
                over = True
                self.call_from_thread(self._supervision_over, client.exit_code)
            elif client.exit_code is None and over:
                over = False  # a new keeper took the run: a resume from another client
                self.call_from_thread(self.refresh_bindings)
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

    def _show_history(self, history: list[dict[str, Any]]) -> None:
        self.view.feed(history, history=True)
        self.call_after_refresh(self.redraw)  # the run's history on screen now, not at the next tick

    def _started(self, sup: KeeperClient, had_history: bool) -> None:
        self.sup = sup
        alive = sup.ident is not None and sup.ident.is_alive()
        if alive:  # a worker we attached to is running; one we launched is starting until its run_start
            self.view.state, self.view.pid = (RunState.RUNNING if had_history else RunState.STARTING), sup.ident.pid
            self.view.version += 1
        self.refresh_bindings()

    def _ingest(self, events: list[dict[str, Any]]) -> None:
        before = (self.view.state, self.view.tuning)
        self.view.feed(events)
        if self._keeper_search and any(e["event"] in (AutotuneResult.KIND, RunStart.KIND, KeeperEnd.KIND)
                                       for e in events):
            self._keeper_search_over()  # the keeper's search is over: it resumes the run (or ended it)
        if (self.view.state, self.view.tuning) != before:
            self.refresh_bindings()

    def _supervision_over(self, code: int | None, counts: bool = True) -> None:
        """The keeper is gone and the run is over. ``counts``: its outcome is this dashboard's exit code (not
        when the run was already over when opened)."""
        if counts:
            self.exit_code = code or 0
        if self._resume_when_over:
            self._resume_when_over = False
            self.call_after_refresh(self.action_resume)
        self.view.finish(code)
        self.refresh_bindings()

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

    def why_not(self, action: str) -> str | None:
        """Why the key for ``action`` cannot act now, in words for the user; None when it can."""
        if self.tuning and action in ("stop", "kill", "resume", "autotune"):
            return "the auto-tune search owns the run until it has written its choice (q cancels it)"
        if self._search_elsewhere() and action in ("resume", "autotune"):
            return None  # the action itself says a search from another window holds the run
        state = self.view.state
        active = state in SUPERVISED
        if action == "stop":
            if state == RunState.STOPPING:
                return "already stopping: the worker finishes its step and saves a checkpoint (K kills it now)"
            return None if active else f"nothing to stop: the run is {state}"
        if action == "kill":
            return None if active else f"nothing to kill: the run is {state}"
        if action == "autotune":  # a run to tune: one that runs, or one stopped with a checkpoint
            return None if state in TUNABLE else f"auto-tune needs a running or stopped run; this one is {state}"
        if action == "resume":
            if state == RunState.COMPLETED:
                return (f"the run is complete; train it further with: trm-tui --resume --run-dir {self.run_dir} "
                        f"--set train.max_steps=N")
            if state == RunState.STOPPING:
                return "resume waits for the worker to exit: it resumes then"
            supervising = self.sup is not None and self.sup.exit_code is None
            return f"the run is {state} already" if active or supervising else None
        return None

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
            self.view.state = RunState.STOPPING
            self.view.version += 1
            self.refresh_bindings()
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
        self.view.state = RunState.STARTING
        self.view.version += 1
        self.refresh_bindings()
        self.supervise(Start.resuming(self.rundir))

    def action_autotune(self) -> None:
        if self._tuned_elsewhere():
            return
        self.tuning = True
        self.view.version += 1
        self.refresh_bindings()
        self.notify("auto-tune: stopping the run with a checkpoint, then trials (see the events pane)")
        if self.sup is not None and self.sup.keeper_alive():
            self._keeper_search = True  # the keeper runs it: it outlives this window, and resumes the run
            self.ask_keeper_to_tune()
            return
        self._autotune_cancel = threading.Event()  # here, not in the thread: a q right after a must find it
        self.run_autotune(self._autotune_cancel)

    @work(thread=True, group="autotune-command", exit_on_error=False)
    def ask_keeper_to_tune(self) -> None:
        cid = commands.send(self.run_dir, commands.Autotune(), commands.sender_name("dashboard"))
        ack = commands.answer(self.run_dir, cid, timeout_s=30)
        if ack is None or not ack.accepted:
            why = "the keeper did not answer" if ack is None else ack.reason
            self.call_from_thread(self._keeper_search_over, f"auto-tune refused: {why}")

    def _keeper_search_over(self, error: str = "") -> None:
        self.tuning = self._keeper_search = False
        self.view.version += 1
        self.refresh_bindings()
        if error:
            self.notify(error, severity="error", timeout=10)

    @work(thread=True, exclusive=True, group="autotune", exit_on_error=False)
    def run_autotune(self, cancel: threading.Event) -> None:
        from trm_core.autotune.engine import AutotuneError, autotune  # only when asked for

        def show(ev: dict[str, Any]) -> None:
            if self._quit.is_set():
                return  # the app is gone or going: its loop takes no more calls
            try:
                self.call_from_thread(self._ingest, [ev])
            except RuntimeError:  # the app stopped between the check and the call
                pass

        was_running = self.view.state in SUPERVISED
        try:
            outcome = autotune(self.run_dir, on_event=show, cancel=cancel)
        except Exception as exc:  # noqa: BLE001 - whatever failed, the run must not be left stopped
            was_running = getattr(exc, "was_running", was_running)
            what = str(exc) if isinstance(exc, (AutotuneError, ConfigError)) else f"{type(exc).__name__}: {exc}"
            self._after_search(None, what, was_running)
            return
        self._after_search(outcome, "", outcome.was_running)

    def _after_search(self, outcome: Outcome | None, error: str, was_running: bool) -> None:
        """On the search's thread: hand over to the UI, or, when the dashboard has quit meanwhile, resume
        the run itself (training goes on, as q promises)."""
        if not self._quit.is_set():
            try:
                self.call_from_thread(self._autotune_over, outcome, error, was_running)
                return
            except RuntimeError:
                pass
        if was_running:
            ensure_keeper(Start.resuming(self.rundir))

    def _autotune_over(self, outcome: Outcome | None, error: str, was_running: bool) -> None:
        self.tuning = False
        self.view.version += 1
        self.refresh_bindings()
        if outcome is None:
            self.notify(f"auto-tune: {error}", severity="error", timeout=10)
        if was_running:
            self.action_resume()  # from the checkpoint, with the chosen settings if there are any
        elif outcome is not None:
            self.notify("auto-tune done; press r to resume the run")

    def action_runs(self) -> None:
        self.push_screen(RunsScreen(self.run_dir.resolve().parent, self.run_dir.resolve()))

    def switch_run(self, run_dir: Path) -> None:
        """Leave this run (as it is: q's rules) for another: the CLI opens that one next, as it is."""
        if run_dir == self.run_dir.resolve():
            self.pop_screen()
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
        self.call_from_thread(self.notify, "worker killed" if result.killed else "no worker was running")

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
