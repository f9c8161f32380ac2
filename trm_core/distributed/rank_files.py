"""Each rank's own files under ``RUN_DIR/ranks/``: a small heartbeat file and its log.

Only rank 0 writes the run's events, so a slow, stuck or dead rank would be invisible; instead every rank
rewrites ``rank-N.json`` about once a second from its watchdog thread (host, pid, step, phase, step time,
whether it waits for its peers) and, as it exits, how it ended. ``trm-tui status``, the dashboard and the
keeper read them; the keeper's post-mortem (``postmortem``) names the rank that took the group down.
Rank N's stdout and stderr go to ``rank-N.log`` (the watchdog's stacks land there).

Torch-free: the front ends read these cheaply.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from trm_core.rundir import layout

RANKS = "ranks"


def ranks_dir(run_dir: Path) -> Path:
    return run_dir / RANKS


def status_path(run_dir: Path, rank: int) -> Path:
    return ranks_dir(run_dir) / f"rank-{rank}.json"


def log_path(run_dir: Path, rank: int) -> Path:
    return ranks_dir(run_dir) / f"rank-{rank}.log"


@dataclass
class RankStatus:
    rank: int
    world_size: int
    local_rank: int
    node_rank: int
    host: str
    pid: int
    device: str
    started: float                      # unix time the rank started
    updated: float = 0.0                # unix time of this write: the heartbeat
    state: str = "starting"             # starting, running, then stopped, completed, failed, stalled, lost_peer
    step: int = 0                       # the step in progress, or the last finished
    phase: str = "idle"                 # step, eval, checkpoint, restore, idle
    phase_s: float = 0.0                # how long the phase has run
    step_s: float | None = None         # the last finished step's wall time on this rank
    wait_s: float | None = None         # of it, the seconds spent in collectives (waiting for slower ranks)
    waiting_s: float | None = None      # how long it has waited for its peers in a collective; None = not waiting
    exit_code: int | None = None        # set as the rank exits on its own
    reason: str = ""                    # how it ended, in words
    threads: list = field(default_factory=list)  # a stall: the Python stack of every thread
    timeout_s: float | None = None      # a stall: train.step_timeout_s

    def age(self, now: float | None = None) -> float:
        """Seconds since the rank last wrote its file."""
        return (time.time() if now is None else now) - self.updated

    @property
    def ended(self) -> bool:
        return self.exit_code is not None


GONE_AFTER_S = 15.0  # a rank file this old belongs to a rank that is gone (killed, or its host is down)
WAITING_AFTER_S = 5.0  # a wait for peers this long is worth showing


SLOW_SHARE = 0.25  # every other rank waited longer than this rank by at least this share of the step


def health(s: RankStatus, now: float, stall_after_s: float, ranks: list[RankStatus] | None = None) -> str:
    """One word for a rank: how it ended; ``gone`` (no heartbeat); ``stalled`` (its phase has run past
    ``stall_after_s`` on its own work); ``waiting`` (for its peers: the stalled one is elsewhere); with the
    group's ``ranks``, ``slow`` (every other rank spent at least a quarter of the last step more than it in
    collectives: waiting for it, the straggler); ``ok``."""
    if s.ended:
        return s.state
    if s.age(now) > GONE_AFTER_S:
        return "gone"
    if s.phase != "idle" and s.waiting_s is None and s.phase_s + s.age(now) > stall_after_s:
        return "stalled"
    if s.waiting_s is not None and s.waiting_s > WAITING_AFTER_S:
        return "waiting"
    if ranks and _straggler(s, ranks):
        return "slow"
    return "ok"


def wait_share(s: RankStatus) -> float | None:
    """The share of its last step a rank spent waiting for the others."""
    return s.wait_s / s.step_s if s.wait_s is not None and s.step_s else None


def _straggler(s: RankStatus, ranks: list[RankStatus]) -> bool:
    """Time in collectives is transfer plus waiting for the slowest; the transfer is about the same on every
    rank, so a rank that spent much less than every other one is the one they waited for."""
    others = [r for r in ranks if r.rank != s.rank and r.wait_s is not None and r.step_s]
    if s.wait_s is None or not s.step_s or not others:
        return False
    step = max(r.step_s for r in others + [s])
    return min(r.wait_s for r in others) - s.wait_s >= SLOW_SHARE * step


def write_status(run_dir: Path, status: RankStatus) -> None:
    """Replace the rank's file whole (a rename; no fsync: a heartbeat lost in a power cut costs nothing)."""
    status.updated = time.time()
    path = status_path(run_dir, status.rank)
    temp = layout.temp_name(path)
    temp.write_text(json.dumps(asdict(status)))
    temp.replace(path)


def read_status(path: Path) -> RankStatus | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        known = {f.name for f in fields(RankStatus)}
        return RankStatus(**{k: v for k, v in data.items() if k in known})
    except (OSError, ValueError, TypeError):
        return None


def _status_files(run_dir: Path) -> list[Path]:
    return sorted(ranks_dir(run_dir).glob("rank-*.json"))


def forget(run_dir: Path) -> None:
    """Remove a former group's heartbeat files (their logs stay): a new group starts without them."""
    for old in _status_files(run_dir):
        old.unlink(missing_ok=True)


def read_all(run_dir: Path, world_size: int | None = None) -> list[RankStatus]:
    """The ranks' files, in rank order; with ``world_size``, only ranks below it (an older, larger world's
    files are left over after a resume with fewer ranks)."""
    found = [s for s in map(read_status, _status_files(run_dir)) if s is not None]
    if world_size is not None:
        found = [s for s in found if s.rank < world_size]
    return sorted(found, key=lambda s: s.rank)
