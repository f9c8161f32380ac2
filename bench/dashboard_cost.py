"""What the dashboard costs: start-up on a huge log, and its own CPU and memory at steady state.

1. Start-up: a run dir whose events.jsonl holds ``--lines`` step events (1,000,000 by default) and a live
   "worker" (a sleeping process recorded with its true identity, so the dashboard attaches). Measures the
   time from creating the app to the whole dashboard on screen, curves included (Textual's headless
   test driver, a real app).
2. Steady state: the real ``trm-tui`` in tmux attached to a real tiny-preset worker; samples the
   dashboard process's CPU time and RSS over ``--seconds``.

Run from the repository root:  python -m bench.dashboard_cost [--lines 1000000] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil


from trm_core.config import SupervisorConfig
from trm_core.rundir import layout
from trm_core.rundir.layout import WORKER_IDENTITY
from bench.common import REPO


def write_log(path: Path, lines: int) -> None:
    rng = random.Random(0)
    t0 = time.time() - lines * 0.1
    with open(path, "w") as fh:
        fh.write(json.dumps({"event": "run_start", "time": t0, "v": 1, "pid": 1, "total_steps": lines,
                             "config": {"train": {"checkpoint_every": 1000}}}) + "\n")
        for i in range(1, lines + 1):
            loss = 5 * (0.999995 ** i) + rng.random() * 0.05
            fh.write(json.dumps({"event": "step", "time": t0 + i * 0.1, "v": 1, "step": i, "total_steps": lines,
                                 "epoch": 1 + i // 100000, "loss": loss, "halt_loss": 0.1, "accuracy": 0.9,
                                 "exact": 0.0, "lr": 2e-4, "grad_norm": 1.0, "samples_per_s": 100 + rng.random(),
                                 "tokens_per_s": 6400.0, "step_s": 0.1, "data_s": 0.001, "sup_steps": 2.0,
                                 "updates": 2, "peak_mem_mb": 300.0}) + "\n")


def startup(lines: int) -> None:
    from trm_tui.dashboard.dashboard_app import Dashboard
    from trm_tui.dashboard.widgets import Curve

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        run_dir.mkdir()
        t = time.perf_counter()
        write_log(run_dir / layout.EVENTS, lines)
        size = (run_dir / layout.EVENTS).stat().st_size
        print(f"wrote {lines:,} step events ({size / 2**20:.0f} MiB) in {time.perf_counter() - t:.1f}s")
        sleeper = subprocess.Popen(["sleep", "600"])
        try:
            ident = {"pid": sleeper.pid, "create_time": psutil.Process(sleeper.pid).create_time(),
                     "host": socket.gethostname(), "started": time.time()}
            (run_dir / WORKER_IDENTITY).write_text(json.dumps(ident))

            async def scenario() -> float:
                t0 = time.perf_counter()
                app = Dashboard(run_dir, [], SupervisorConfig())
                async with app.run_test(size=(120, 40)) as pilot:
                    curve = app.query_one("#loss-curve", Curve)
                    while not (app.view.step == lines and curve._key and curve._key[0] == app.view.version):
                        await pilot.pause(0.01)
                    elapsed = time.perf_counter() - t0
                    print(f"dashboard on screen with curves after {elapsed:.3f}s "
                          f"(step {app.view.step:,}, loss curve {len(app.view.loss)} buckets "
                          f"over {app.view.loss.count:,} points)")
                    app.exit()
                return elapsed
            asyncio.run(scenario())
        finally:
            sleeper.kill()


def steady_state(seconds: float) -> None:
    if shutil.which("tmux") is None:
        print("tmux missing: steady-state measurement skipped")
        return
    repo = REPO
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        session = f"bench-{os.getpid()}"
        tmux = ["tmux", "-L", session]
        cmd = (f"cd {shlex.quote(str(repo))} && {shlex.quote(sys.executable)} -m trm_tui.cli --run-dir "
               f"{shlex.quote(str(run_dir))} --preset tiny --set train.max_steps=100000")
        subprocess.run(tmux + ["new-session", "-d", "-s", session, "-x", "120", "-y", "40", cmd], check=True)
        try:
            time.sleep(15)  # start-up, first steps, first telemetry
            pane_pid = int(subprocess.run(tmux + ["display", "-p", "-t", session, "#{pane_pid}"],
                                          capture_output=True, text=True).stdout)
            app = psutil.Process(pane_pid)
            app = next((p for p in [app, *app.children(recursive=True)] if "trm_tui.cli" in " ".join(p.cmdline())), app)
            cpu0, rss0, t0 = sum(app.cpu_times()[:2]), app.memory_info().rss, time.monotonic()
            time.sleep(seconds)
            cpu1, rss1, t1 = sum(app.cpu_times()[:2]), app.memory_info().rss, time.monotonic()
            print(f"steady state over {t1 - t0:.0f}s: dashboard CPU {100 * (cpu1 - cpu0) / (t1 - t0):.2f}% of one core, "
                  f"RSS {rss0 / 2**20:.1f} -> {rss1 / 2**20:.1f} MiB")
        finally:
            subprocess.run(tmux + ["kill-server"], capture_output=True)
            subprocess.run([sys.executable, "-m", "trm_tui.cli", "stop", "--force", "--run-dir", str(run_dir)],
                           capture_output=True, cwd=repo)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lines", type=int, default=1_000_000)
    p.add_argument("--seconds", type=float, default=60)
    args = p.parse_args()
    startup(args.lines)
    steady_state(args.seconds)


if __name__ == "__main__":
    main()
