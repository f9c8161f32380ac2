"""Which of the dashboard's acting keys can act now, and why not, as a pure function of what it knows.

The footer greys a key that cannot act, and pressing it anyway says why (in words a user can act on).
Keeping the rules out of the App lets a test ask every state without starting one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Callable

from trm_core.rundir.ownership import run_owner, user_name, who
from trm_core.rundir.states import SUPERVISED, RunState

# a run to tune: one that runs, or one stopped with a checkpoint
TUNABLE = frozenset({RunState.RUNNING, RunState.STOPPED, RunState.FAILED, RunState.STALLED})
ACTING = ("stop", "kill", "resume", "autotune")


class Search(str, Enum):
    """This dashboard's auto-tune search: none, one in its own process, or one it asked the keeper for."""

    NONE = "none"
    HERE = "here"
    KEEPER = "keeper"


READ_ONLY = "read-only view: stop, resume, auto-tune and kill are not available here"


def acting_refused(root: Path, read_only: bool) -> str | None:
    """Why no acting key may act in this view at all: it was opened read-only, or the run is another user's
    (whose keeper answers only them, and whose worker no one else may signal). None: the owner's own view."""
    if read_only:
        return READ_ONLY
    owner = run_owner(root)
    if owner is not None and owner != os.geteuid():
        return f"the run belongs to {who(owner)}: only its owner may stop, resume, auto-tune or kill it"
    return None


def view_label(root: Path, read_only: bool) -> str:
    """What the header adds to the run's name: whose run it is when not yours, and read-only."""
    owner = run_owner(root)
    whose = f" ({user_name(owner)}'s)" if owner is not None and owner != os.geteuid() else ""
    return whose + (" [read-only]" if read_only else "")


@dataclass(frozen=True)
class KeyFacts:
    """What the rules read: the run's state, this dashboard's search, whether another window's search holds the
    run, whether a keeper this dashboard follows is still on, the run's folder (for the hints), and why this
    view may not act at all (read-only, or not the owner's)."""

    state: RunState
    search: Search = Search.NONE
    searched_elsewhere: bool = False
    supervising: bool = False
    run_dir: Path = Path("runs/default")
    refused: str | None = None  # every acting key refused, and why: a read-only view, another user's run
    config_error: str | None = None  # the run's config.toml does not read: nothing can restart it


def why_not(action: str, facts: KeyFacts) -> str | None:
    """Why the key for ``action`` cannot act now, in words for the user; None when it can. What refuses every
    acting key comes first (a view that may not act, a search that owns the run); then the action's own rule."""
    if action in ACTING and facts.refused is not None:
        return facts.refused
    if action in ACTING and facts.search != Search.NONE:
        return "the auto-tune search owns the run until it has written its choice (q cancels it)"
    if facts.searched_elsewhere and action in ("resume", "autotune"):
        return None  # the action itself says a search from another window holds the run
    if facts.config_error and action in ("resume", "autotune") and facts.state not in SUPERVISED:
        return f"cannot {'resume' if action == 'resume' else 'auto-tune'}: the run's {facts.config_error}"
    rule = ACTION_RULES.get(action)
    return rule(facts) if rule is not None else None


def _why_not_stop(facts: KeyFacts) -> str | None:
    if facts.state == RunState.STOPPING:
        return "already stopping: the worker finishes its step and saves a checkpoint (K kills it now)"
    return None if facts.state in SUPERVISED else f"nothing to stop: the run is {facts.state}"


def _why_not_kill(facts: KeyFacts) -> str | None:
    return None if facts.state in SUPERVISED else f"nothing to kill: the run is {facts.state}"


def _why_not_autotune(facts: KeyFacts) -> str | None:
    return None if facts.state in TUNABLE else f"auto-tune needs a running or stopped run; this one is {facts.state}"


def _why_not_resume(facts: KeyFacts) -> str | None:
    state = facts.state
    if state == RunState.COMPLETED:
        return (f"the run is complete; train it further with: trm-tui --resume --run-dir {facts.run_dir} "
                f"--set train.max_steps=N")
    if state == RunState.STOPPING:
        return "resume waits for the worker to exit: it resumes then"
    return f"the run is {state} already" if state in SUPERVISED or facts.supervising else None


# each acting key's own rule, once nothing refuses every key
ACTION_RULES: dict[str, Callable[[KeyFacts], str | None]] = {
    "stop": _why_not_stop, "kill": _why_not_kill, "autotune": _why_not_autotune, "resume": _why_not_resume}
