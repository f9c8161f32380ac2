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

from trm_core import config as config_mod
from trm_core.config import AlertsConfig, ConfigError, SupervisorConfig
from trm_core.control import commands
from trm_core.control.alerts import Alerts
from trm_core.control.supervisor import Supervisor
from trm_core.rundir import layout
from trm_core.rundir.identity import KeeperClaimed, claim_keeper, live_worker, run_lock_held
from trm_core.rundir.layout import EXIT_CONFIG, EXIT_FAILED, EXIT_OK
from trm_core.rundir.records import CommandAck, KeeperEnd, KeeperStart

POLL_S = commands.POLL_S


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m trm_core.control.keeper",
                                description="Supervise one run: launch or adopt its worker, restart it, answer commands.")
    p.add_argument("--run-dir", required=True, type=Path)
    config_mod.add_start_arguments(p)
    return p


def keeper_settings(args: argparse.Namespace) -> tuple[SupervisorConfig, AlertsConfig]:
    """The run's own [supervisor] and [alerts] settings: from its config.toml (with --set on resume), or, for
    a new run, from the same layers the worker resolves. Defaults when they cannot be read (the worker says
    why)."""
    saved = args.run_dir / layout.RUN_CONFIG
    try:
        if saved.exists():
            sets = [s for s in args.sets if s.startswith(("supervisor.", "alerts."))] if args.resume else []
            cfg = config_mod.resolve(base=config_mod.read_run_config(saved), env={}, sets=sets)
        else:
            cfg = config_mod.resolve(config_file=args.config, preset=args.preset, sets=args.sets)
        return cfg.supervisor, cfg.alerts
    except ConfigError:
        return SupervisorConfig(), AlertsConfig()


class Keeper:
    def __init__(self, run_dir: Path, launch_args: list[str], settings: SupervisorConfig,
                 alerts: AlertsConfig | None = None) -> None:
        self.run_dir = run_dir
        self.sup = Supervisor(run_dir, launch_args, settings)
        self.launch_args = launch_args
        self.alerts = Alerts(run_dir, alerts or AlertsConfig(), settings, self.sup.emit)

    def run(self) -> int:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # no terminal to lose; a logout must not touch it
        for sig in (signal.SIGTERM, signal.SIGINT):  # kill, systemctl stop: stop the run with a checkpoint
            signal.signal(sig, lambda *_: self.sup.request_stop())
        adopted = live_worker(self.run_dir)
        self.sup.emit(KeeperStart(pid=os.getpid(), adopted=adopted.pid if adopted else None, launch=self.launch_args))
        if adopted is None and run_lock_held(self.run_dir):
            # an auto-tune search holds the run (it stopped the worker and resumes it when done)
            reason = "an auto-tune search holds the run; it resumes the run when it is done"
            self.sup.emit(KeeperEnd(exit_code=EXIT_CONFIG, reason=reason))
            return EXIT_CONFIG
        self.sup.start()
        while True:
            self.alerts.see(self.sup.poll())
            self.alerts.check()
            for cmd in commands.pending(self.run_dir):
                self.answer(cmd)
            if self.sup.exit_code is not None:
                break
            time.sleep(POLL_S)
        code = self.sup.exit_code
        self.sup.emit(KeeperEnd(exit_code=code, reason=self.verdict(code)))
        self.alerts.wait(self.alerts.settings.timeout_s + 1)  # the last alert (completed, gave up) goes out
        return code

    def verdict(self, code: int) -> str:
        if code == EXIT_CONFIG:
            return f"the worker refused its config or its run dir; see {self.run_dir / layout.WORKER_LOG}"
        if code == EXIT_FAILED:
            return self.sup.verdict or "the worker failed beyond its restarts"
        end = self.sup.last_end
        if end is not None:
            return f"the run {end.status} at step {end.step} ({end.reason})"
        return "stopped on request"

    def answer(self, cmd: commands.Command) -> None:
        accepted, reason = self.act(cmd.command)
        self.sup.emit(CommandAck(id=cmd.id, command=cmd.command, sender=cmd.sender, accepted=accepted, reason=reason))
        cmd.path.unlink(missing_ok=True)

    def act(self, command: str) -> tuple[bool, str]:
        sup = self.sup
        worker_alive = sup.ident is not None and sup.ident.is_alive()
        if command == "stop":
            if sup.restart_at is not None:
                sup.request_stop()
                return True, "the pending restart is cancelled; the run stays stopped"
            if sup.stopping:
                sup.request_stop()  # a second stop: the worker exits at once, without a checkpoint
                return True, "stopping now, without a checkpoint (second stop)"
            if not worker_alive and sup.proc is None:
                return False, "no worker is running"
            sup.request_stop()
            return True, "stopping: the worker finishes its step and saves a checkpoint"
        if command == "kill":
            if not worker_alive:
                if sup.restart_at is not None:
                    sup.request_stop()
                    return True, "no worker to kill; the pending restart is cancelled"
                return False, "no worker is running"
            result = sup.stop(force=True)
            return True, f"killed (SIGKILL) after {result.seconds:.1f}s; the newest good checkpoint is kept"
        if command == "cancel_restart":
            if sup.restart_at is None:
                return False, "no restart is pending"
            sup.request_stop()
            return True, "the pending restart is cancelled; the run stays stopped"
        return False, f"unknown command {command!r}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run_dir: Path = args.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        lock_fd = claim_keeper(run_dir)  # held until this process exits  # noqa: F841
    except KeeperClaimed as exc:
        print(f"trm keeper: {exc}", file=sys.stderr)
        return EXIT_OK
    return Keeper(run_dir, config_mod.start_argv(args), *keeper_settings(args)).run()


if __name__ == "__main__":
    sys.exit(main())

