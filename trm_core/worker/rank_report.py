"""This rank's heartbeat file (``distributed.rank_files``), kept by the worker and its watchdog thread."""

from __future__ import annotations

import os
import time
from pathlib import Path

from trm_core.distributed.group import Group
from trm_core.distributed.rank_files import RankStatus, ranks_dir, write_status


class RankReport:
    """What this rank is doing, rewritten about once a second; how it ended, once, as it exits. A file that
    cannot be written (a full disk) is skipped: the heartbeat is advice, training goes on."""

    def __init__(self, run_dir: Path, group: Group, device: str) -> None:
        self.run_dir, self.group = run_dir, group
        self.status = RankStatus(rank=group.rank, world_size=group.world_size, local_rank=group.local_rank,
                                 node_rank=group.node_rank, host=group.host, pid=os.getpid(), device=device,
                                 started=time.time())
        ranks_dir(run_dir).mkdir(parents=True, exist_ok=True)
        self._write()

    def _write(self) -> None:
        try:
            write_status(self.run_dir, self.status)
        except OSError:
            pass

    def beat(self, phase: str, step: int, phase_s: float) -> None:
        s = self.status
        if s.ended:
            return
        s.phase, s.step, s.phase_s = phase, step, round(phase_s, 3)
        since = self.group.waiting_since
        s.waiting_s = round(time.monotonic() - since, 3) if since is not None else None
        if s.state == "starting" and step > 0:
            s.state = "running"
        self._write()

    def step_done(self, step: int, step_s: float, wait_s: float) -> None:
        s = self.status
        s.step, s.step_s, s.wait_s, s.state = step, round(step_s, 6), round(wait_s, 6), "running"

    def end(self, state: str, exit_code: int, reason: str, threads: list | None = None,
            timeout_s: float | None = None) -> None:
        s = self.status
        if s.ended:
            return
        s.state, s.exit_code, s.reason, s.threads, s.timeout_s = state, exit_code, reason, threads or [], timeout_s
        since = self.group.waiting_since
        s.waiting_s = round(time.monotonic() - since, 3) if since is not None else None
        self._write()
