"""After a group went down: which rank took it down, and why.

When one rank dies or hangs, the others fail too (a collective loses its peer, torchrun tears the group
down), so "rank 0 failed" is usually the wrong answer. Every rank's heartbeat file says how it ended, and
whether it was waiting for its peers at the time; the culprit is, in this order:

1. a rank that stalled on its own work (not waiting for its peers: the one the others were waiting for);
2. a rank that failed on its own (an exception, a non-finite loss), not because it lost a peer;
3. a rank that died without a word (SIGKILL, the OOM killer): of those, the one whose heartbeat stopped
   first, since the others kept beating until torchrun tore them down;
4. a rank that stalled while waiting, then one that lost its peers.

torchrun's failure report in the launcher's log adds the exit code (a negative one is the signal).
Torch-free: the keeper runs this.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from trm_core.distributed.rank_files import RankStatus, log_path, read_all


@dataclass(frozen=True)
class Culprit:
    status: RankStatus
    state: str              # stalled, failed, killed, lost_peer
    exit_code: int | None
    reason: str
    log: Path


_REPORT_RANK = re.compile(r"rank\s*:\s*(\d+)\s*\(local_rank")
_REPORT_CODE = re.compile(r"exitcode\s*:\s*(-?\d+)")


def torchrun_exit_codes(launcher_log: Path) -> dict[int, int]:
    """Exit codes by global rank from the newest torchrun failure report in ``launcher_log``."""
    try:
        text = launcher_log.read_text(errors="replace")[-200_000:]
    except OSError:
        return {}
    start = text.rfind("Failures:")
    if start < 0:
        return {}
    codes: dict[int, int] = {}
    rank: int | None = None
    for line in text[start:].splitlines():
        if (m := _REPORT_RANK.search(line)) is not None:
            rank = int(m.group(1))
        elif (m := _REPORT_CODE.search(line)) is not None and rank is not None:
            codes.setdefault(rank, int(m.group(1)))
            rank = None
    return codes


def find_culprit(run_dir: Path, since: float, launcher_log: Path | None = None) -> Culprit | None:
    """The rank that took the group down, among the ranks started at ``since`` (unix time) or later."""
    ranks = [s for s in read_all(run_dir) if s.started >= since - 1.0]
    if not ranks:
        return None
    codes = torchrun_exit_codes(launcher_log) if launcher_log is not None else {}

    def culprit(s: RankStatus, state: str, reason: str) -> Culprit:
        code = s.exit_code if s.exit_code is not None else codes.get(s.rank)
        return Culprit(s, state, code, reason, log_path(run_dir, s.rank))

    for s in ranks:
        if s.state == "stalled" and s.waiting_s is None:
            return culprit(s, "stalled", s.reason)
    for s in ranks:
        if s.ended and s.state == "failed":
            return culprit(s, "failed", s.reason)
    silent = sorted((s for s in ranks if not s.ended), key=lambda s: s.updated)
    if silent:
        s = silent[0]
        code = codes.get(s.rank)
        how = f"signal {-code}" if code is not None and code < 0 else "a signal, or the OOM killer"
        where = f"in step {s.step}" if s.phase == "step" else f"in {s.phase} after step {s.step}"
        return culprit(s, "killed", f"died without a word {where} ({how})")
    for state in ("stalled", "lost_peer"):
        for s in ranks:
            if s.state == state:
                return culprit(s, state, s.reason)
    return None
