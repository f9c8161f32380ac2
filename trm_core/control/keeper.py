"""The run's keeper: ``python -m trm_core.control.keeper --run-dir DIR [start flags]``.

One keeper per run, detached in its own session, holding ``keeper.lock`` for its life. It launches the
worker (or adopts the live one), restarts it after a crash or a stall under the restart policy, answers
clients' commands, and alone writes the supervision events (``keeper_start``, ``restart``, ``give_up``,
``command``, ``keeper_end``). It outlives every front end, so a run that dies at 3 a.m. is restarted
whether or not anyone is watching, and ends when the run ends: completed, stopped on request, or given up.

Front ends are clients (``control.client``): they start a keeper when there is none, follow the log, and
send commands through ``RUN_DIR/commands/`` (``control.commands``).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from trm_core import config as config_mod
from trm_core.config import AlertsConfig, ExportConfig, Start, SupervisorConfig
from trm_core.export.live import LiveMirror
from trm_core.control import commands
from trm_core.control.alerts import Alerts
from trm_core.control.supervisor import Supervisor
from trm_core.rundir.identity import KeeperClaimed, claim_keeper, live_worker, run_lock_held
from trm_core.rundir.layout import COMMANDS, EXIT_CONFIG, EXIT_FAILED, EXIT_OK
from trm_core.rundir.ownership import file_uid, private_dir, who
from trm_core.rundir.records import CommandAck, KeeperEnd, KeeperStart, WarningEvent

if TYPE_CHECKING:
    from trm_core.control.tune import KeeperSearch

POLL_S = commands.POLL_S


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m trm_core.control.keeper",
                                description="Supervise one run: launch or adopt its worker, restart it, answer commands.")
    p.add_argument("--run-dir", required=True, type=Path)
    config_mod.add_start_arguments(p)
    return p


class Keeper:
    def __init__(self, start: Start, settings: SupervisorConfig, alerts: AlertsConfig | None = None,
                 export: ExportConfig | None = None) -> None:
        self.start_request, self.rundir, self.settings = start, start.rundir, settings
        self.sup = Supervisor(start, settings)
        self.alerts = Alerts(self.rundir.control, alerts or AlertsConfig(), settings, self.sup.emit)
        self.search: KeeperSearch | None = None
        self.export = export or ExportConfig()
        self.mirror: LiveMirror | None = None

    def run(self) -> int:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # no terminal to lose; a logout must not touch it
        for sig in (signal.SIGTERM, signal.SIGINT):  # kill, systemctl stop: stop the run with a checkpoint
            signal.signal(sig, lambda *_: self.act(commands.Stop()))
        adopted = live_worker(self.rundir.control)
        start_flags = self.start_request.to_argv()
        self.sup.emit(KeeperStart(pid=os.getpid(), adopted=adopted.pid if adopted else None, launch=start_flags))
        config_uid = file_uid(self.rundir.config)
        if config_uid is not None and config_uid != os.geteuid():
            self.sup.emit(WarningEvent(message=f"{self.rundir.config} is owned by {who(config_uid)}, not by the "
                                               f"run's owner {who(os.geteuid())}: its [alerts] and [supervisor] "
                                               f"are not used (defaults; no alert command runs)"))
        if adopted is None and run_lock_held(self.rundir.control):
            # an auto-tune search holds the run (it stopped the worker and resumes it when done)
            reason = "an auto-tune search holds the run; it resumes the run when it is done"
            self.sup.emit(KeeperEnd(exit_code=EXIT_CONFIG, reason=reason))
            return EXIT_CONFIG
        self.sup.start()
        if self.export.tensorboard_dir and self.rundir.leads:  # the run's log is node 0's to mirror
            self.mirror = LiveMirror(self.rundir.root, self.export.tensorboard_dir, self.sup.emit).start()
        while True:
            if self.search is None:
                self.alerts.see(self.sup.poll())
            elif not self.search.thread.is_alive():
                self.after_search()
            self.alerts.check()
            self.refuse_foreign_stop_requests()
            for cmd in commands.pending(self.rundir.control):
                self.answer(cmd)
            if self.sup.exit_code is not None:
                break
            time.sleep(POLL_S)
        code = self.sup.exit_code
        self.sup.emit(KeeperEnd(exit_code=code, reason=self.verdict(code)))
        if self.mirror is not None:
            self.mirror.close()  # after the keeper's last word, so the mirror has it too
        self.alerts.wait(self.alerts.settings.timeout_s + 1)  # the last alert (completed, gave up) goes out
        return code

    def verdict(self, code: int) -> str:
        if self.sup.verdict:
            return self.sup.verdict
        if code == EXIT_CONFIG:
            return f"the worker refused its config or its run dir; see {self.rundir.worker_log}"
        if code == EXIT_FAILED:
            return "the worker failed beyond its restarts"
        end = self.sup.last_end
        if end is not None:
            return f"the run {end.status} at step {end.step} ({end.reason})"
        return "stopped on request"

    def answer(self, cmd: commands.Command) -> None:
        if cmd.uid != os.geteuid():  # only the run's owner (this keeper's user) commands it
            accepted, reason = False, (f"refused: the command file is owned by {who(cmd.uid)}, not by the run's "
                                       f"owner {who(os.geteuid())}")
        else:
            accepted, reason = self.act(cmd.request)
        self.sup.emit(CommandAck(id=cmd.id, command=cmd.command, sender=cmd.sender, accepted=accepted, reason=reason))
        cmd.path.unlink(missing_ok=True)

    def refuse_foreign_stop_requests(self) -> None:
        """A ``stop.request`` someone else wrote (in a folder they could write) stops nothing (the worker and
        the supervisor count the owner's alone): record the refusal, naming the uid, and remove it."""
        for path in self.rundir.stop_requests():
            uid = file_uid(path)
            if uid is None or uid == os.geteuid():
                continue
            self.sup.emit(CommandAck(id=path.name, command="stop", sender=f"{path} by {who(uid)}", accepted=False,
                                     reason=f"refused: {path.name} is owned by {who(uid)}, not by the run's owner "
                                            f"{who(os.geteuid())}"))
            try:
                path.unlink()
            except OSError:
                pass  # not ours to remove (a sticky folder): ignored all the same, and said once a poll

    def act(self, request: commands.Request) -> tuple[bool, str]:
        """Carry out a request, or say why not: (accepted, the reason the answer gives)."""
        if self.search is not None:
            return self.act_searching(request)
        match request:
            case commands.Autotune():
                return self._autotune(request)
            case commands.CancelAutotune():
                return False, "no search is running"
            case commands.Stop():
                return self._stop(request.why)
            case commands.Kill():
                return self._kill()
            case commands.CancelRestart():
                if self.sup.restart_at is None:
                    return False, "no restart is pending"
                self.sup.request_stop()
                return True, "the pending restart is cancelled; the run stays stopped"
        return False, f"unknown command {request.kind!r}"

    def _worker_alive(self) -> bool:
        return self.sup.ident is not None and self.sup.ident.is_alive()

    def _autotune(self, request: commands.Autotune) -> tuple[bool, str]:
        if self.sup.restart_at is not None or not self._worker_alive():
            return False, "the run is not running (a restart is pending, or it is starting): try again shortly"
        from trm_core.control.tune import KeeperSearch  # the search's machinery loads only when asked for

        self.search = KeeperSearch(self.rundir.control, list(request.sets), resume=request.resume, emit=self.sup.emit)
        return True, "auto-tune: stopping the run with a checkpoint, then trials; the keeper resumes it after"

    def _stop(self, why: str = "") -> tuple[bool, str]:
        sup = self.sup
        if sup.restart_at is not None:
            sup.request_stop()
            return True, "the pending restart is cancelled; the run stays stopped"
        if sup.stopping:
            sup.request_stop()  # a second stop: the worker exits at once, without a checkpoint
            return True, "stopping now, without a checkpoint (second stop)"
        if not self._worker_alive() and sup.proc is None:
            return False, "no worker is running"
        sup.request_stop(why)
        return True, "stopping: the worker finishes its step and saves a checkpoint"

    def _kill(self) -> tuple[bool, str]:
        if not self._worker_alive():
            if self.sup.restart_at is not None:
                self.sup.request_stop()
                return True, "no worker to kill; the pending restart is cancelled"
            return False, "no worker is running"
        result = self.sup.stop(force=True)
        return True, f"killed (SIGKILL) after {result.seconds:.1f}s; the newest good checkpoint is kept"

    def act_searching(self, request: commands.Request) -> tuple[bool, str]:
        """While a search holds the run: a stop or a kill cancels it and leaves the run stopped; a
        cancel_autotune cancels it and resumes the run with its settings."""
        search = self.search
        assert search is not None
        match request:
            case commands.Stop() | commands.Kill():
                search.resume = False
                search.cancel.set()
                return True, "the search is cancelled; the run stays stopped"
            case commands.CancelAutotune():
                search.cancel.set()
                return True, "the search is cancelled; the run resumes with its settings"
            case commands.Autotune():
                return False, "a search is already running"
        return False, "an auto-tune search holds the run; nothing to restart"

    def after_search(self) -> None:
        """The search is over: resume the run it stopped (a fresh supervisor: new tail, the same budget from
        the log), or end supervision with the run stopped."""
        search, self.search = self.search, None
        assert search is not None
        if self.sup.proc is not None:
            self.sup.proc.poll()  # reap the worker the search stopped
        if live_worker(self.rundir.control) is not None or (search.was_running and search.resume):
            # resume the run the search stopped; or, when it never stopped it (a refused search), go on
            self.sup = Supervisor(Start.resuming(self.rundir), self.settings)
            self.alerts.emit = self.sup.emit
            self.sup.start()
            return
        self.sup.verdict = "stopped for auto-tune; resume it with: trm-tui --resume"
        self.sup.exit_code = EXIT_OK


def main(argv: list[str] | None = None) -> int:
    start = Start.from_args(build_parser().parse_args(argv))  # --run-dir: a node's control folder on node N
    run = start.rundir
    run.control.mkdir(parents=True, exist_ok=True)
    try:
        lock_fd = claim_keeper(run.control)  # held until this process exits  # noqa: F841
    except KeeperClaimed as exc:
        print(f"trm keeper: {exc}", file=sys.stderr)
        return EXIT_OK
    private_dir(run.control / COMMANDS)  # the owner's inbox, made before anyone else could make it
    return Keeper(start, *start.keeper_settings()).run()


if __name__ == "__main__":
    sys.exit(main())

