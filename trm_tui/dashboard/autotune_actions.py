"""The dashboard's auto-tune: a search through the run's keeper (it outlives the window and resumes the
run), or, with no keeper, one in this process whose result goes to the UI while the window is open and
whose resume ``tune.finish`` makes once it has gone. Mixed into the ``Dashboard``."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable

from textual import work
from textual.message import Message

from trm_core.control import commands, tune
from trm_core.control.client import KeeperClient
from trm_core.rundir.identity import run_lock_held
from trm_core.rundir.layout import RunDir
from trm_core.rundir.states import SUPERVISED
from trm_tui.dashboard.keys import Search
from trm_tui.dashboard.messages import EventsArrived, KeeperSearchRefused, SearchFinished
from trm_tui.dashboard.view import RunView

class AutotuneActions:
    """The ``a`` key and what follows it; the search's state is the app's ``search`` reactive. What it uses
    of the app:"""

    run_dir: Path
    rundir: RunDir
    view: RunView
    client: KeeperClient | None
    search: Search
    quitting: threading.Event
    _autotune_cancel: threading.Event | None
    refuse_acting: Callable[[], bool]  # the app's: a read-only view or another user's run acts on nothing

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

    def action_autotune(self) -> None:
        if self.refuse_acting() or self._tuned_elsewhere():
            return
        self.view.version += 1
        self.notify("auto-tune: stopping the run with a checkpoint, then trials (see the events pane)")
        if self.client is not None and self.client.keeper_alive():
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

        over = tune.SearchOver.of(lambda: tune.tune(self.run_dir, on_event=show, cancel=cancel),
                                  was_running=self.view.state in SUPERVISED)
        tune.finish(over, self.rundir, lambda result: self._deliver(SearchFinished(result)))

    def _deliver(self, message: Message) -> bool:
        """Post to the UI from a thread while the dashboard is open; False once it has quit (its loop takes no
        more messages)."""
        if self.quitting.is_set():
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

