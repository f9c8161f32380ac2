"""How a run that could not go on ends: the records a failure leaves (for the supervisor, which restarts or
waits on the exit code, and for the front ends, which show the reason) and that exit code."""

from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

from trm_core.distributed.group import PeerLost
from trm_core.rundir.events import EventWriter, SilentLog
from trm_core.config import ConfigError
from trm_core.rundir.layout import EXIT_CONFIG, EXIT_DISK_FULL, EXIT_FAILED, DiskFull, is_disk_full
from trm_core.rundir.records import ErrorEvent, RunEnd
from trm_core.rundir.states import RunState
from trm_core.train.trainer import NonFiniteLoss
from trm_core.worker.rank_report import RankReport


@dataclass
class Endings:
    """Where a failure is written: the run's log (rank 0's; silent on the others) and this rank's report."""

    events: EventWriter | SilentLog
    report: RankReport | None
    run_dir: Path

    def report_end(self, state: str, exit_code: int, reason: str) -> None:
        if self.report is not None:
            self.report.end(state, exit_code, reason)

    def failed(self, exc: Exception, step: int, done_steps: int) -> int:
        """Record how training failed at ``step`` (``done_steps`` completed) and return the exit code to act on."""
        if isinstance(exc, NonFiniteLoss):  # found when the figures were read: it names the step that went bad
            return self._ended(exc, "non_finite", "non-finite loss", exc.step, min(done_steps, exc.step - 1))
        if isinstance(exc, PeerLost):  # another rank went away: the keeper's post-mortem names it
            code = self._ended(exc, "peer_lost", "a rank of the group was lost", step, done_steps, state="lost_peer")
            print(f"trm worker: {exc}", file=sys.stderr, flush=True)
            return code
        if isinstance(exc, ConfigError):  # what the user asked for cannot be (train.init_from's weights): a
            # restart would fail the same way, so the keeper is told not to (exit 2), and the words are the user's
            self.report_end(RunState.FAILED.value, EXIT_CONFIG, str(exc))
            self.events.emit(ErrorEvent(message=str(exc), kind="config", step=step))
            self.events.emit(RunEnd(status=RunState.FAILED.value, step=done_steps, exit_code=EXIT_CONFIG,
                                    reason=str(exc)))
            print(f"trm worker: error: {exc}", file=sys.stderr, flush=True)
            return EXIT_CONFIG
        # a real bug or an environment failure
        self.report_end(RunState.FAILED.value, EXIT_FAILED, f"{type(exc).__name__}: {exc}")
        if is_disk_full(exc):
            return self.disk_full(exc, step, done_steps)
        self.events.emit(ErrorEvent(message=f"{type(exc).__name__}: {exc}", kind="exception", step=step,
                                    traceback=traceback.format_exc()))
        self.events.emit(RunEnd(status=RunState.FAILED.value, step=done_steps, exit_code=EXIT_FAILED,
                                reason=type(exc).__name__))
        traceback.print_exc()
        return EXIT_FAILED

    def _ended(self, exc: Exception, kind: str, reason: str, step: int, done_steps: int,
               state: str = RunState.FAILED.value) -> int:
        self.report_end(state, EXIT_FAILED, str(exc))
        self.events.emit(ErrorEvent(message=str(exc), kind=kind, step=step))
        self.events.emit(RunEnd(status=RunState.FAILED.value, step=done_steps, exit_code=EXIT_FAILED, reason=reason))
        return EXIT_FAILED

    def disk_full(self, exc: BaseException, step: int, done_steps: int) -> int:
        """Out of space: one line that says where and how much was free, then the exit code that tells the
        keeper to wait for space instead of restarting into the same wall. Recording it may fail too (the
        log is on the same disk): the line on stderr and the exit code still say it."""
        message = str(exc) if isinstance(exc, DiskFull) else str(DiskFull(self.run_dir))
        print(f"trm worker: {message}; free some space, then the keeper restarts the run (or: trm-tui --resume)",
              file=sys.stderr, flush=True)
        for record in (ErrorEvent(message=message, kind="disk_full", step=step),
                       RunEnd(status=RunState.FAILED.value, step=done_steps, exit_code=EXIT_DISK_FULL,
                              reason="disk full")):
            try:
                self.events.emit(record)
            except OSError:
                break
        return EXIT_DISK_FULL
