"""CPU, RAM and disk of the machine, and the CPU and memory of the worker's process tree (psutil).

``psutil.Process`` objects are kept between samples: their CPU percentages are deltas since the last
call, and building them anew each tick would both cost more and always read 0%.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import psutil


def cores() -> int:
    """The cores this process may run on (its affinity; a container's limit where it sets one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def others_busy(sample_s: float = 0.3) -> float:
    """Cores in use by other processes, measured over ``sample_s`` while this process waits."""
    return cores() * psutil.cpu_percent(interval=sample_s) / 100.0


def free_memory(device: object) -> float:
    """Bytes free now where ``device`` (a torch.device) computes: its GPU's free memory, or the machine's
    available RAM. Imports torch only for a GPU."""
    if getattr(device, "type", "cpu") == "cuda":
        import torch

        return float(torch.cuda.mem_get_info(device)[0])
    return float(psutil.virtual_memory().available)


def gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB"


@dataclass
class HostSample:
    cpu_pct: float
    cpu_count: int
    ram_used_mb: float
    ram_total_mb: float
    worker_cpu_pct: float | None    # summed over the worker and its children; 100 = one core
    worker_rss_mb: float | None
    worker_pids: set[int]
    disk_free_mb: float | None      # in the run dir's file system


class HostProbe:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._procs: dict[int, psutil.Process] = {}
        psutil.cpu_percent(None)  # prime the system-wide delta

    def _tree(self, pid: int) -> list[psutil.Process]:
        try:
            root = self._procs.get(pid) or psutil.Process(pid)
            members = [root, *root.children(recursive=True)]
        except psutil.Error:
            return []
        known = {}
        for p in members:
            known[p.pid] = self._procs.get(p.pid, p)
            if p.pid not in self._procs:
                try:
                    known[p.pid].cpu_percent(None)  # first call starts its delta
                except psutil.Error:
                    pass
        self._procs = known
        return list(known.values())

    def sample(self, worker_pid: int | None) -> HostSample:
        vm = psutil.virtual_memory()
        cpu_pct = psutil.cpu_percent(None)
        cpu = rss = None
        pids: set[int] = set()
        if worker_pid is not None:
            cpu, rss = 0.0, 0.0
            for p in self._tree(worker_pid):
                try:
                    cpu += p.cpu_percent(None)
                    rss += p.memory_info().rss / 2**20
                    pids.add(p.pid)
                except psutil.Error:
                    continue
        else:
            self._procs = {}
        try:
            free = shutil.disk_usage(self.run_dir if self.run_dir.exists() else self.run_dir.parent).free / 2**20
        except OSError:
            free = None
        return HostSample(cpu_pct, psutil.cpu_count() or 1, (vm.total - vm.available) / 2**20, vm.total / 2**20,
                          cpu, rss, pids, free)
