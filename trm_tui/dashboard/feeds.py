"""Where the dashboard's data comes from: the run (followed through its keeper) and the machine (NVML,
psutil), each on a thread of the App's, handed over as messages (the run) or plain samples (the machine).

The App is given its feeds, so a test shows a fixed run (``FixedFeeds``) through the same messages the
live feeds post, with no worker, no keeper and no threads, instead of subclassing the App to stop it.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Protocol

from textual.message import Message
from textual.worker import get_current_worker

from trm_core.config.start import Start
from trm_core.control.client import KeeperClient
from trm_core.config import SupervisorConfig
from trm_core.distributed.rank_files import RankStatus, read_all
from trm_core.rundir.layout import RunDir
from trm_core.rundir.states import SUPERVISED
from trm_core.telemetry import GpuProbe, GpuStatus, HostProbe, HostSample
from trm_tui.dashboard.history import run_history
from trm_tui.dashboard.messages import (Attached, EventsArrived, HistoryRead, Note, SupervisionOver,
                                        SupervisionResumed)

# Each wake-up of a dashboard thread can preempt one of the worker's torch threads on a small machine and
# stall the other with it (measured: 40 wake-ups/s cost the worker 4% of its samples/s), so the threads
# wake once a second and the UI loop is entered only when there is something new.
POLL_S = 1.0


class FedApp(Protocol):
    """What a feed sees of the dashboard: where the run is, what it shows, where the samples go."""

    rundir: RunDir
    settings: SupervisorConfig
    start_request: Start | None
    refused: str | None  # why this view may not act (read-only, another user's run); None: the owner's view
    gpu_probe: GpuProbe | None
    quitting: threading.Event
    client: KeeperClient | None
    host: HostSample | None
    gpu: GpuStatus | None
    ranks: list[RankStatus]

    @property
    def view(self) -> Any: ...

    def post_message(self, message: Message) -> bool: ...

    def run_worker(self, work: Callable[[], None], *, thread: bool, exclusive: bool, group: str) -> Any: ...

    def call_after_refresh(self, callback: Callable[..., Any], *args: Any) -> bool: ...

    def redraw(self) -> None: ...


class Feeds(Protocol):
    def start(self, app: FedApp) -> None:
        """Begin feeding the App, once it is mounted: its run (its start request, or as it is) and its machine."""

    def follow(self, app: FedApp, start: Start | None) -> None:
        """Follow the run anew, for ``start`` (a resume from this dashboard)."""


class LiveFeeds:
    """The real run and the real machine."""

    def start(self, app: FedApp) -> None:
        self.follow(app, app.start_request)
        app.run_worker(lambda: watch_machine(app), thread=True, exclusive=True, group="telemetry")

    def follow(self, app: FedApp, start: Start | None) -> None:
        app.run_worker(lambda: follow_run(app, start), thread=True, exclusive=True, group="supervise")


def follow_run(app: FedApp, start: Start | None) -> None:
    """Follow the run through its keeper (started here when there is none) for as long as the dashboard is
    open: past the keeper's end too, so a resume from any other client shows here. ``None``: open the run as
    it is, starting nothing (a stopped, failed or finished run stays so until ``r``)."""
    # a view that may not act (read-only, another user's run) only reads: it never adopts an orphaned worker
    client = KeeperClient(app.rundir, start, app.settings.stop_grace_s, role="dashboard",
                          may_adopt=app.refused is None)
    # the run's past only once: after a resume from this dashboard the view already holds it
    history = run_history(client) if app.view.version == 0 else []
    if history:  # on screen before the keeper is found or started: that takes a process start
        app.post_message(HistoryRead(history))
    client.start()
    app.post_message(Attached(client, bool(history)))
    worker = get_current_worker()
    over = False
    if client.exit_code is not None:  # opened a run that was over: show how it ended; looking is no failure
        over = True
        app.post_message(SupervisionOver(client.exit_code, counts=False))
    while not worker.is_cancelled:
        events = client.poll()
        if events:
            app.post_message(EventsArrived(events))
        for note in client.notes:
            app.post_message(Note(note))
        client.notes.clear()
        if client.exit_code is not None and not over:
            over = True
            app.post_message(SupervisionOver(client.exit_code))
        elif client.exit_code is None and over:
            over = False  # a new keeper took the run: a resume from another client
            app.post_message(SupervisionResumed())
        if app.quitting.wait(POLL_S):
            return


def watch_machine(app: FedApp) -> None:
    """The GPUs and the CPU, once a second, stored on the App for its next redraw: no call into the UI loop,
    no extra repaint."""
    gpu_probe = app.gpu_probe or GpuProbe()
    host_probe = HostProbe(app.rundir.control)
    worker = get_current_worker()
    while not worker.is_cancelled:
        client = app.client
        # SUPERVISED, not HAS_WORKER: after a relaunch the new worker is probed before its first event
        pid = client.ident.pid if client and client.ident and app.view.state in SUPERVISED else None
        host = host_probe.sample(pid)
        app.host, app.gpu = host, gpu_probe.sample(host.worker_pids)
        world = app.view.world_size
        app.ranks = read_all(app.rundir.root, world) if world > 1 else []
        if app.quitting.wait(1.0):
            break
    gpu_probe.close()


class FixedFeeds:
    """A run that is already written: its events (and how it ended), and one sample of the machine. Fed
    through the live feeds' own messages, on the UI loop; ``fed`` once the App has drawn it."""

    def __init__(self, events: list[dict[str, Any]], host: HostSample | None, gpu: GpuStatus | None,
                 exit_code: int | None = None) -> None:
        self.events, self.host, self.gpu, self.exit_code = events, host, gpu, exit_code
        self.fed = False

    def start(self, app: FedApp) -> None:
        app.host, app.gpu = self.host, self.gpu
        app.post_message(EventsArrived(self.events))
        if self.exit_code is not None:
            app.post_message(SupervisionOver(self.exit_code, counts=False))
        app.call_after_refresh(self._drawn, app)

    def _drawn(self, app: FedApp) -> None:
        app.redraw()
        self.fed = True  # the whole run went in: the picture is not of a half-fed screen

    def follow(self, app: FedApp, start: Start | None) -> None:
        """A fixed run is not followed anew."""
