"""Auto-tune as the run sees it: stop it with a checkpoint, search, and put it back to training.

One home for the orchestration every front end shares. ``autotune/`` measures and writes the choice into
the run's config; this module decides what happens to the run around that:

- ``tune``: a search in this process (``trm-tui autotune`` on a run with no keeper, the dashboard's ``a``
  on a stopped run): stop the worker if it runs, then search;
- ``KeeperSearch``: the same on a thread of the run's keeper, which resumes the run after (it outlives
  every front end, like the run);
- ``finish``: after a search in a front end, hand the result to whoever waits for it, and when nobody
  takes it any more (the dashboard quit meanwhile) resume a run the search stopped: training goes on, as
  ``q`` promises.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from trm_core.autotune.engine import AutotuneError, Outcome, autotune, search_config
from trm_core.config import ConfigError
from trm_core.config.start import Start
from trm_core.control.launch import ensure_keeper, stop_worker
from trm_core.rundir.identity import ProcessIdentity, live_worker
from trm_core.rundir.layout import RunDir
from trm_core.rundir.records import WarningEvent

__all__ = ["AutotuneError", "KeeperSearch", "Outcome", "SearchOver", "finish", "resume", "search_config", "tune"]


def tune(run_dir: Path, on_event: Callable[[dict], None] | None = None, sets: list[str] | tuple[str, ...] = (),
         cancel: threading.Event | None = None, on_stopping: Callable[[], None] | None = None,
         env: dict[str, str] | None = None) -> Outcome:
    """Search the run in ``run_dir``, stopping its worker first (with a checkpoint; killed past its grace
    period) when it runs; ``Outcome.was_running`` says so. Raises AutotuneError or ConfigError; a search that
    failed after stopping the run says ``was_running`` too, so the caller puts the run back."""
    _, cfg = search_config(run_dir, sets)  # a bad request is refused before the run is touched
    was_running = live_worker(run_dir) is not None
    if was_running:
        if on_stopping:
            on_stopping()
        stop_worker(RunDir.at(run_dir), cfg.supervisor.stop_grace_s, why="auto-tune (trials next)")
        if live_worker(run_dir) is not None:
            raise AutotuneError(f"the worker of {run_dir} did not stop; nothing was tuned")
    return autotune(run_dir, on_event=on_event, sets=sets, cancel=cancel, env=env, was_running=was_running)


def resume(run: RunDir) -> ProcessIdentity | None:
    """Put the run back to training under its keeper (a new one, or the live one); the keeper's identity."""
    keeper, _ = ensure_keeper(Start.resuming(run))
    return keeper


@dataclass(frozen=True)
class SearchOver:
    """How a search ended: its outcome, or the error that stopped it, and whether it had stopped the run."""

    outcome: Outcome | None
    error: str
    was_running: bool

    @classmethod
    def of(cls, search: Callable[[], Outcome], was_running: bool) -> "SearchOver":
        """Run ``search``; whatever fails, say what, and whether the run was stopped for it."""
        try:
            outcome = search()
        except Exception as exc:  # noqa: BLE001 - whatever failed, the run must not be left stopped
            known = isinstance(exc, (AutotuneError, ConfigError))
            return cls(None, str(exc) if known else f"{type(exc).__name__}: {exc}",
                       getattr(exc, "was_running", was_running))
        return cls(outcome, "", outcome.was_running)


def finish(over: SearchOver, run: RunDir, deliver: Callable[[SearchOver], bool]) -> bool:
    """Hand a front end's finished search to ``deliver`` (True: someone took it, and will resume the run as
    it shows the result). When nobody does (the front end has gone), a run the search stopped is resumed
    here. Returns whether it was delivered."""
    if deliver(over):
        return True
    if over.was_running:
        resume(run)
    return False


class KeeperSearch:
    """A search on a thread of the keeper: it outlives every front end, like the run. ``resume``: the keeper
    puts the run back after it (a stop or a kill during the search clears it)."""

    def __init__(self, run_dir: Path, sets: list[str], resume: bool, emit: Callable[[WarningEvent], None]) -> None:
        self.run_dir, self.sets, self.resume, self.emit = run_dir, sets, resume, emit
        self.cancel = threading.Event()
        self.was_running = True  # it stops a running run first; a failure says whether it had
        self.thread = threading.Thread(target=self._run, name="autotune", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            outcome = tune(self.run_dir, sets=self.sets, cancel=self.cancel)
            self.was_running = outcome.was_running
        except (AutotuneError, ConfigError) as exc:
            self.was_running = getattr(exc, "was_running", False)
            self.emit(WarningEvent(message=f"auto-tune: {exc}"))
        except Exception as exc:  # noqa: BLE001 - whatever failed, the keeper must put the run back
            self.emit(WarningEvent(message=f"auto-tune failed: {type(exc).__name__}: {exc}"))
