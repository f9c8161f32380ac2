"""Telemetry: the NVML probe against scenarios faked at the pynvml boundary, and psutil on real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from trm_core.telemetry import GpuProbe, HostProbe

from fake_nvml import FakeNvml, NVMLError_DriverNotLoaded, NVMLError_NotSupported, h100
from helpers import wait_for


def test_two_gpus_with_the_workers_memory() -> None:
    me = os.getpid()
    fake = FakeNvml([h100(procs=[(me, 30_000), (99999, 5_000)]), h100(util=3, mem=(500, 81_559), procs=[])])
    status = GpuProbe(loader=lambda: fake).sample(worker_pids={me})
    assert status.available and len(status.gpus) == 2
    first, second = status.gpus
    assert (first.name, first.util_pct, first.temp_c) == ("NVIDIA H100 80GB HBM3", 97.0, 64.0)
    assert round(first.mem_used_mb) == 60_000 and round(first.mem_total_mb) == 81_559
    assert (first.power_w, first.power_limit_w) == (512.0, 700.0)
    assert first.worker_mem_mb == 30_000  # only the worker's processes count
    assert second.util_pct == 3.0 and second.worker_mem_mb == 0


def test_unsupported_fields_are_none_and_slow_fields_are_cached() -> None:
    fake = FakeNvml([h100(power_mw=NVMLError_NotSupported, limit_mw=NVMLError_NotSupported,
                          procs=NVMLError_NotSupported)])
    probe = GpuProbe(loader=lambda: fake)
    for _ in range(3):
        gpu = probe.sample().gpus[0]
    assert gpu.power_w is None and gpu.power_limit_w is None and gpu.worker_mem_mb is None
    assert gpu.util_pct == 97.0
    assert fake.calls["name"] == 1 and fake.calls["limit_mw"] == 1  # read once, not every tick
    assert fake.calls["util"] == 3


def test_no_driver_or_no_library_is_a_status_not_a_crash() -> None:
    no_driver = GpuProbe(loader=lambda: FakeNvml([h100()], init_error=NVMLError_DriverNotLoaded)).sample()
    assert not no_driver.available and no_driver.reason == "no NVIDIA GPU (Driver Not Loaded)"

    def missing():
        raise ImportError("No module named 'pynvml'")
    assert GpuProbe(loader=missing).sample().reason.startswith("no NVIDIA GPU (nvidia-ml-py not importable")
    # the real library on this machine: no GPU here, so it must say so the same way
    real = GpuProbe().sample()
    assert real.available or real.reason.startswith("no NVIDIA GPU")


@pytest.mark.process
def test_host_probe_sums_the_worker_process_tree(tmp_path: Path) -> None:
    # a parent that keeps one core busy in a child: the tree's CPU must show it
    code = "import subprocess,sys; c=subprocess.Popen([sys.executable,'-c','while True: pass']); c.wait()"
    parent = subprocess.Popen([sys.executable, "-c", code])
    try:
        probe = HostProbe(tmp_path)
        wait_for(lambda: len(psutil.Process(parent.pid).children()) == 1, what="the busy child")
        child = psutil.Process(parent.pid).children()[0]
        probe.sample(parent.pid)
        given, t0 = sum(child.cpu_times()[:2]), time.monotonic()
        time.sleep(1.0)
        sample = probe.sample(parent.pid)
        given_pct = 100 * (sum(child.cpu_times()[:2]) - given) / (time.monotonic() - t0)
        assert len(sample.worker_pids) == 2 and parent.pid in sample.worker_pids
        # one busy core in the child, summed over the tree (the parent only waits: alone it would read ~0): judged
        # against the share the machine gave the child over the same second (under load 10 it gets far less
        # than a core), not against a fixed figure
        assert given_pct > 0 and sample.worker_cpu_pct >= 0.6 * given_pct, (sample.worker_cpu_pct, given_pct)
        assert sample.worker_rss_mb > 5
        assert sample.ram_total_mb > sample.ram_used_mb > 0 and sample.disk_free_mb > 0
    finally:
        for p in psutil.Process(parent.pid).children(recursive=True):
            p.kill()
        parent.kill()
    assert HostProbe(tmp_path).sample(None).worker_cpu_pct is None


def test_status_gpu_line_says_na_for_what_the_driver_does_not_report() -> None:
    from trm_tui.event_text import gpu_line

    fake = FakeNvml([h100(procs=[(os.getpid(), 2048)]), h100(temp=NVMLError_NotSupported, power_mw=NVMLError_NotSupported)])
    first, second = GpuProbe(loader=lambda: fake).sample(worker_pids={os.getpid()}).gpus
    assert gpu_line(first) == ("0 NVIDIA H100 80GB HBM3: util 97%, memory 58.6/80 GiB, temp 64 C, power 512/700 W, "
                               "worker 2.00 GiB")
    assert "temp N/A" in gpu_line(second) and "power N/A" in gpu_line(second) and "worker 0.00 GiB" in gpu_line(second)
    unknown = GpuProbe(loader=lambda: fake).sample(worker_pids=set()).gpus[0]
    assert unknown.worker_mem_mb is None and gpu_line(unknown).endswith("worker N/A")  # not 0 before the pids are known
