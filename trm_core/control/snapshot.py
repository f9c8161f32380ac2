"""One snapshot of a run for every front end: its status (state, progress, owner, config problem, compile
verdict: ``run_status``), its ranks with their health, and its GPUs. ``trm-tui status`` prints one; the
dashboard's machine feed takes the ranks and GPUs the same way each second, so ``draw`` only draws.

Reading only: nothing here starts, signals or writes anything (see docs/architecture.md, "Reading
commands").
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trm_core.config import SupervisorConfig
from trm_core.control.run_status import RunStatus, run_status
from trm_core.distributed import rank_files
from trm_core.telemetry import GpuProbe, GpuSample, HostProbe


@dataclass(frozen=True)
class RankHealth:
    """One rank as its heartbeat file says, and its health in one word (``rank_files.health``)."""

    status: rank_files.RankStatus
    health: str

    def to_dict(self, now: float) -> dict[str, Any]:
        return dataclasses.asdict(self.status) | {"health": self.health,
                                                  "heartbeat_age_s": round(self.status.age(now), 1)}


@dataclass(frozen=True)
class RunSnapshot:
    status: RunStatus
    ranks: list[RankHealth]
    gpus: list[GpuSample]
    taken_at: float  # wall time

    @property
    def launcher_pid(self) -> bool:
        """The run dir's worker pid is the node's launcher (torchrun), not a rank's: each rank has its own."""
        return len(self.ranks) > 1 and self.status.pid is not None

    def to_dict(self) -> dict[str, Any]:
        return self.status.to_dict() | {"gpus": [dataclasses.asdict(g) for g in self.gpus],
                                        "ranks": [r.to_dict(self.taken_at) for r in self.ranks]}


def health_of(found: list[rank_files.RankStatus], now: float, stall_after_s: float) -> list[RankHealth]:
    """Each rank read by ``rank_files.read_all`` with its health at ``now`` (pure: the dashboard's draw asks it,
    its machine feed reads the files)."""
    return [RankHealth(s, rank_files.health(s, now, stall_after_s, found)) for s in found]


def gpus_now(run_dir: Path, worker_pid: int | None) -> list[GpuSample]:
    """What NVML says of each GPU now, with the memory of the worker's process tree (the tree the dashboard's
    CPU panel sums); none where there is no NVIDIA GPU."""
    pids = HostProbe(run_dir).sample(worker_pid).worker_pids
    probe = GpuProbe()
    try:
        status = probe.sample(pids)
    finally:
        probe.close()
    return status.gpus if status.available else []


def take_snapshot(run_dir: Path, settings: SupervisorConfig | None = None, now: float | None = None) -> RunSnapshot:
    """The run as its files, its ranks' files and the GPUs say it is now."""
    status = run_status(run_dir, settings, now)
    wall = time.time() if now is None else now
    ranks = health_of(rank_files.read_all(run_dir), wall, status.stall_after_s or 60.0)
    return RunSnapshot(status, ranks, gpus_now(run_dir, status.pid), wall)
