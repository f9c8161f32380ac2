"""A front end's hold on a run: start its keeper when there is none, follow its log, send it commands.

Every front end (the dashboard, ``--no-ui``) is a client of the run's keeper: what it shows comes from
the run's log, which the keeper and the worker alone write, so every client shows the same truth. A
client that notices the keeper is gone while the worker lives starts a new keeper, which adopts it, unless
it only reads (``may_adopt=False``: a read-only view, another user's run): then it says so and starts nothing.
"""

from __future__ import annotations

from typing import Any

from trm_core.config.start import Start
from trm_core.control import commands
from trm_core.control.launch import (StopResult, adoption_note, ensure_keeper, mark_stop_requested, orphan_note,
                                     revive_keeper, stop_worker)
from trm_core.rundir.events import EventTail
from trm_core.rundir.log_queries import last_run_end
from trm_core.rundir.identity import ProcessIdentity, live_keeper, live_worker
from trm_core.rundir.records import CommandAck, KeeperEnd, KeeperStart, RunEnd, parse
from trm_core.rundir.layout import EXIT_FAILED, EXIT_OK, RunDir
from trm_core.rundir.states import RunState


# node 0's keeper's comings and goings: on node N they are not this node's, and its own keeper log says those
NODE_0_KEEPER = (KeeperStart.KIND, KeeperEnd.KIND, CommandAck.KIND)


class KeeperClient:
    """Follow a run through its keeper. ``poll()`` returns the new log lines; ``exit_code`` is set when the
    keeper ends (its ``keeper_end``), and cleared again when a new keeper takes the run (a resume)."""

    def __init__(self, run: RunDir, start: Start | None, grace_s: float = 300.0, role: str = "trm-tui",
                 env: dict[str, str] | None = None, may_adopt: bool = True) -> None:
        self.rundir, self.start_request, self.grace_s, self.env = run, start, grace_s, env
        self.may_adopt = may_adopt  # False: a reading client, which never starts a keeper for an orphaned worker
        self.sender = commands.sender_name(role)
        self.tail = EventTail(run.keeper_events, from_end=True)
        # node N > 0 of a multi-node run: its keeper's log is its own; the run's progress is in rank 0's log
        self.run_tail = None if run.leads else EventTail(run.events, from_end=True)
        self.ident: ProcessIdentity | None = None  # the run's worker, while it lives
        self.keeper: ProcessIdentity | None = None
        self.attached = False   # the worker was already running when this client came
        self.started_run = False  # this client started the run: no worker and no keeper before it
        self.exit_code: int | None = None
        self.notes: list[str] = []  # what the client did that its user should hear (a keeper restarted)
        self.last_end: RunEnd | None = None
        self._said_orphan = False

    def start(self) -> None:
        """Attach to the run's keeper, or start one for the start request. With none (open a
        run as it is) nothing is started: a run that is over stays over, and ``exit_code`` says how it ended."""
        self.ident = live_worker(self.rundir.control)
        self.attached = self.ident is not None
        if self.start_request is None:
            self.keeper = live_keeper(self.rundir.control)
            if self.keeper is None and self._adopt() is not None:
                self.keeper = live_keeper(self.rundir.control)  # a worker without its keeper: adopted, as poll() would
            if self.keeper is None and self.ident is None:
                self.exit_code = self._ended_code()
            return
        self.keeper, started = ensure_keeper(self.start_request, self.env)
        self.started_run = started and not self.attached

    def _ended_code(self) -> int:
        """How the run ended, from its last ``run_end`` (none: the worker died without one, a failure)."""
        # a run_start after the last run_end: that worker died without a word. On node N the newer of its
        # own keeper's ending (a kill, a give-up) and rank 0's, in the run's log
        ends = [last_run_end(self.rundir.keeper_events)]
        if not self.rundir.leads:
            ends.append(last_run_end(self.rundir.events))
        self.last_end = max((e for e in ends if e is not None), key=lambda e: e.time, default=None)
        return self._code_of_last_end()

    def _code_of_last_end(self) -> int:
        """0 for a run that completed or was stopped, 1 otherwise (no run_end is a failure)."""
        end = self.last_end
        return EXIT_OK if end is not None and end.status in (RunState.COMPLETED, RunState.STOPPED) else EXIT_FAILED

    def poll(self) -> list[dict[str, Any]]:
        lines = self.tail.poll()
        self._note(lines)
        if self.run_tail is not None:  # the run's own records, not node 0's keeper's comings and goings
            lines += [line for line in self.run_tail.poll() if line.get("event") not in NODE_0_KEEPER]
        self.ident = live_worker(self.rundir.control)
        if self.exit_code is None and not self.keeper_alive():
            self.keeper = live_keeper(self.rundir.control)
            if self.keeper is None:
                last = self.tail.poll()  # its keeper_end may have landed just now
                self._note(last)
                lines += last
                if self.exit_code is None:
                    self._keeper_gone()
        return lines

    def keeper_alive(self) -> bool:
        return self.keeper is not None and self.keeper.is_alive()

    def _note(self, lines: list[dict[str, Any]]) -> None:
        for ev in map(parse, lines):
            if isinstance(ev, KeeperEnd):
                self.exit_code = ev.exit_code
            elif isinstance(ev, KeeperStart):
                self.exit_code = None  # a new keeper took the run (a resume from any client)
                self.keeper = live_keeper(self.rundir.control)
            elif isinstance(ev, RunEnd):
                self.last_end = ev

    def _adopt(self) -> ProcessIdentity | None:
        """A new keeper for a live worker whose keeper is gone; a reading client only says so, once."""
        if self.may_adopt:
            return revive_keeper(self.rundir, self.env)
        note = None if self._said_orphan else orphan_note(self.rundir)
        if note is not None:
            self.notes.append(note)
            self._said_orphan = True
        return None

    def _keeper_gone(self) -> None:
        """The keeper died without its last word (SIGKILL, OOM). A worker still alive gets a new keeper that
        adopts it; with none, the run is over and its log says how."""
        adopted = self._adopt()
        if adopted is not None:
            self.notes.append(adoption_note(adopted))
            self.keeper = live_keeper(self.rundir.control)
            return
        if self.ident is not None:  # a reading client goes on following the unsupervised worker
            return
        self.exit_code = self._code_of_last_end()

    # -- commands ------------------------------------------------------------------------------------------

    def request_stop(self, why: str = "") -> None:
        """Ask for a graceful stop (non-blocking); a second request makes the worker exit without a checkpoint.
        On a full disk, where no command file can be written, the worker still gets its signal."""
        if self.keeper_alive():
            try:
                commands.send(self.rundir.control, commands.Stop(why), self.sender)
                return
            except OSError as exc:
                self.notes.append(f"cannot write the stop command ({exc.strerror}): signalling the worker directly")
        try:
            mark_stop_requested(self.rundir, why)  # no keeper: straight to the worker, as `trm-tui stop` does
        except OSError:
            pass  # the signal below is the request; the mark only tells a keeper not to restart
        if self.ident is not None:
            self.ident.request_stop()

    def stop(self, force: bool = False) -> StopResult:
        """Stop and wait: through the keeper when there is one (it records a kill as a kill)."""
        if self.keeper_alive():
            was_running = self.ident is not None
            cid = commands.send(self.rundir.control, commands.Kill() if force else commands.Stop(), self.sender)
            ack = commands.answer(self.rundir.control, cid, timeout_s=30 if force else self.grace_s)
            return StopResult(was_running=was_running and ack is not None and ack.accepted,
                              graceful=not force, killed=force)
        return stop_worker(self.rundir, self.grace_s, force)
