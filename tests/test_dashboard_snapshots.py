"""SVG snapshots of the dashboard's main screen: running, stopped, stalled, and with no GPU.

The app, its panels, CSS, keys and redraw are the real ones; only what would make a picture differ from
run to run is fixed: the run is a fixed list of events instead of a live worker, the clock is frozen, the
host sample is fixed, and NVML is the fake at the pynvml boundary (this machine has no GPU). To accept a
deliberate change of the screen: ``python -m pytest tests/test_dashboard_snapshots.py --snapshot-update``,
then look at the SVGs (``tests/__snapshots__``) before committing them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from trm_core.config import SupervisorConfig
from trm_core.rundir.records import RunEnd, as_line
from trm_core.telemetry import GpuProbe, HostSample
from trm_tui.dashboard.dashboard_app import Dashboard
from trm_tui.dashboard.feeds import FixedFeeds

from fake_nvml import FakeNvml, NVMLError_NotSupported, h100
from helpers import record

T0 = 1_764_000_000.0  # a fixed wall-clock start
WORKER_PID = 4242
HOST = HostSample(cpu_pct=93.0, cpu_count=16, ram_used_mb=41_000, ram_total_mb=128_000, worker_cpu_pct=101.0,
                  worker_rss_mb=3_100, worker_pids={WORKER_PID}, disk_free_mb=512_000)


def run_events(steps: int, total: int = 2000) -> list[dict[str, Any]]:
    """A plausible run: falling loss, an eval every 100 steps, a checkpoint every 200. Built from the typed
    records, so the lines have the fields the worker writes."""
    out: list[dict[str, Any]] = [as_line(record("run_start", pid=WORKER_PID, total_steps=total, resumed_from=None,
                                                parameters=180_000, config={"train": {"checkpoint_every": 200}}),
                                         T0)]
    for step in range(1, steps + 1):
        t = T0 + 0.5 * step
        loss = 0.4 + 5.2 / (1 + step / 60) + 0.05 * ((step * 7919) % 13) / 13
        out.append(as_line(record("step", step=step, total_steps=total, epoch=1 + step // 700, loss=loss,
                                  halt_loss=0.12, accuracy=min(0.93, step / 1000), lr=2e-4, grad_norm=0.8,
                                  samples_per_s=120.0 + (step % 9), tokens_per_s=30_720.0 + 256 * (step % 9),
                                  step_s=0.45, data_s=0.01, sup_steps=2.5), t))
        if step % 100 == 0:
            out.append(as_line(record("eval", step=step, epoch=1 + step // 700, loss=loss * 1.08, accuracy=0.5,
                                      exact=0.0, sup_steps=2.4, samples=64, seconds=0.4), t))
        if step % 200 == 0:
            out.append(as_line(record("checkpoint", step=step, epoch=1 + step // 700, path=f"ckpt-{step:08d}.pt",
                                      bytes=2_200_000, seconds=0.05), t))
    return out


def still_dashboard(run_dir: Path, events: list[dict[str, Any]], now: float, gpu_probe: GpuProbe,
                    exit_code: int | None = None) -> tuple[Dashboard, FixedFeeds]:
    """The real dashboard fed a fixed run (no worker, no keeper, no threads) with a frozen clock; the feed
    says when the whole run went in and was drawn."""
    feeds = FixedFeeds(events, HOST, gpu_probe.sample({WORKER_PID}), exit_code)
    app = Dashboard(run_dir, None, SupervisorConfig(), gpu_probe=gpu_probe, feeds=feeds)
    app.clock = lambda: now
    return app, feeds


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch):
    """Event times print in local time: pin the zone so the pictures match everywhere."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def two_gpus() -> GpuProbe:
    fake = FakeNvml([h100(procs=[(WORKER_PID, 58_000)]), h100(util=96, power_mw=NVMLError_NotSupported,
                                                              procs=[(WORKER_PID, 57_500)])])
    return GpuProbe(loader=lambda: fake)


def no_gpu() -> GpuProbe:
    def missing():
        raise ImportError("No module named 'pynvml'")
    return GpuProbe(loader=missing)


def test_running(snap_compare, tmp_path: Path) -> None:
    events = run_events(900)
    app, feeds = still_dashboard(tmp_path / "run", events, now=events[-1]["time"] + 1, gpu_probe=two_gpus())
    assert snap_compare(app, terminal_size=(110, 32)) and feeds.fed


def test_stopped(snap_compare, tmp_path: Path) -> None:
    events = run_events(600)
    last = events[-1]["time"]
    events += [as_line(RunEnd(status="stopped", step=600, exit_code=0, reason="SIGTERM", seconds=300.3), last + 0.3)]
    app, feeds = still_dashboard(tmp_path / "run", events, now=last + 5, gpu_probe=two_gpus(), exit_code=0)
    assert snap_compare(app, terminal_size=(80, 24)) and feeds.fed


def test_stalled(snap_compare, tmp_path: Path) -> None:
    """The worker is alive but silent for ten minutes: the header says STALLED and the alert stands out."""
    events = run_events(450)
    app, feeds = still_dashboard(tmp_path / "run", events, now=events[-1]["time"] + 600, gpu_probe=two_gpus())
    assert snap_compare(app, terminal_size=(110, 32)) and feeds.fed


def test_no_gpu(snap_compare, tmp_path: Path) -> None:
    events = run_events(300)
    app, feeds = still_dashboard(tmp_path / "run", events, now=events[-1]["time"] + 1, gpu_probe=no_gpu())
    assert snap_compare(app, terminal_size=(80, 24)) and feeds.fed
