"""The dashboard's auto-tune: a search through the run's keeper (it outlives the window and resumes the
run), or, with no keeper, one in this process whose result goes to the UI while the window is open and
whose resume ``tune.finish`` makes once it has gone.

``AutotuneControl`` is a component of the dashboard with an explicit interface (``TuneHost``: what it reads
and asks of the app); the app forwards the ``a`` key and the two messages a search ends with to it. The
search's state is the app's ``search`` reactive, which the footer's keys depend on.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable, Protocol

from textual.message import Message
from textual.worker import Worker

from trm_core.control import commands, tune
from trm_core.control.client import KeeperClient
from trm_core.rundir.identity import run_lock_held
from trm_core.rundir.layout import RunDir
from trm_core.rundir.states import SUPERVISED
from trm_tui.dashboard.keys import Search
from trm_tui.dashboard.messages import EventsArrived, KeeperSearchRefused, SearchFinished
from trm_tui.dashboard.view import RunView


class TuneHost(Protocol):
    """What the auto-tune component needs of the dashboard."""

    run_dir: Path
    rundir: RunDir
    view: RunView
    client: KeeperClient | None
    search: Search            # the reactive: set here, read by the keys
    quitting: threading.Event

    def refuse_acting(self) -> bool: ...

    def notify(self, message: str, *, severity: Any = ..., timeout: float | None = ...) -> None: ...

    def post_message(self, message: Message) -> bool: ...

    def run_worker(self, work: Callable[[], Any], *, thread: bool = ..., group: str = ..., exclusive: bool = ...,
                   exit_on_error: bool = ...) -> Worker: ...

    def action_resume(self) -> None: ...


class AutotuneControl:
    """The ``a`` key and what follows it: start a search (the keeper's, or one here), hear how it ended."""

    def __init__(self, host: TuneHost) -> None:
        self.host = host
        self.cancel: threading.Event | None = None  # the handle of a search in this process

    def searching_elsewhere(self) -> bool:
        """Another client's auto-tune search holds the run: its autotune_start has no result yet and the run's
        lock is held (a search that was killed leaves the first but not the second)."""
        host = self.host
        return host.view.tuning and host.search == Search.NONE and run_lock_held(host.run_dir)

    def refuse_if_elsewhere(self) -> bool:
        """Another client's auto-tune search holds the run: say so instead of acting."""
        if self.searching_elsewhere():
            self.host.notify("busy: an auto-tune search from another window holds the run; it resumes the run "
                             "when it is done", severity="warning")
            return True
        return False

    def start(self) -> None:
        host = self.host
        if host.refuse_acting() or self.refuse_if_elsewhere():
            return
        host.notify("auto-tune: stopping the run with a checkpoint, then trials (see the events pane)")
        if host.client is not None and host.client.keeper_alive():
            host.search = Search.KEEPER  # the keeper runs it: it outlives this window, and resumes the run
            host.run_worker(self._ask_keeper, thread=True, group="autotune-command", exit_on_error=False)
            return
        host.search = Search.HERE
        cancel = self.cancel = threading.Event()  # here, not in the thread: a q right after a must find it
        host.run_worker(lambda: self._search_here(cancel), thread=True, exclusive=True, group="autotune",
                        exit_on_error=False)

    def stop(self) -> None:
        """The window leaves: a trial in flight is killed; the run keeps its settings."""
        if self.cancel is not None:
            self.cancel.set()

    def _ask_keeper(self) -> None:
        run_dir = self.host.run_dir
        cid = commands.send(run_dir, commands.Autotune(), commands.sender_name("dashboard"))
        ack = commands.answer(run_dir, cid, timeout_s=30)
        if ack is None or not ack.accepted:
            self.deliver(KeeperSearchRefused("the keeper did not answer" if ack is None else ack.reason))

    def keeper_refused(self, why: str) -> None:
        self.host.search = Search.NONE
        self.host.notify(f"auto-tune refused: {why}", severity="error", timeout=10)

    def _search_here(self, cancel: threading.Event) -> None:
        """The search in this process, its trials shown as they are written; when it is over, the result goes
        to the UI, or, once the dashboard has quit, a run the search stopped is resumed (``tune.finish``)."""
        host = self.host

        def show(ev: dict[str, Any]) -> None:
            self.deliver(EventsArrived([ev]))

        over = tune.SearchOver.of(lambda: tune.tune(host.run_dir, on_event=show, cancel=cancel),
                                  was_running=host.view.state in SUPERVISED)
        tune.finish(over, host.rundir, lambda result: self.deliver(SearchFinished(result)))

    def deliver(self, message: Message) -> bool:
        """Post to the UI from a thread while the dashboard is open; False once it has quit (its loop takes no
        more messages)."""
        if self.host.quitting.is_set():
            return False
        try:
            return self.host.post_message(message)
        except RuntimeError:  # the loop closed between the check and the post
            return False

    def finished(self, over: tune.SearchOver) -> None:
        host = self.host
        host.search = Search.NONE
        if over.outcome is None:
            host.notify(f"auto-tune: {over.error}", severity="error", timeout=10)
        if over.was_running:
            host.action_resume()  # from the checkpoint, with the chosen settings if there are any
        elif over.outcome is not None:
            host.notify("auto-tune done; press r to resume the run")
