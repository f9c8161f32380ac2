"""What the dashboard costs the training: the worker's samples/s with the dashboard attached against headless.

Each round trains the same tiny-preset run twice from scratch, for the same time after its first step:

(a) headless: ``trm-tui --no-ui --preset tiny --run-dir X``, its output to a file;
(b) dashboard: the real ``trm-tui --preset tiny --run-dir Y`` in tmux (120x40), as a user would run it.

The modes alternate, and swap order every round, so the machine's noise falls on both. The worker's own
``step`` events give ``samples_per_s`` (batch size / time in the training step). On CPU a run is
deterministic, so step N does the same work in (a) and (b): each round compares the same step range (after
``--warmup-steps``, up to the last step both runs reached). Printed per round and overall: the median
samples/s of each mode and their ratio b/a (goal: >= 0.99), the median of the per-step ratios b/a over
the steps both runs made, the CPU (% of one core) of the dashboard process and of the tmux server drawing it
in (b), the dashboard's wakeups (voluntary context switches, all threads), and the load average (anything else running
on this 2-core machine swamps the effect measured: run it on an otherwise idle machine).

Run from the repository root:  python -m bench.dashboard_throughput [--rounds 4] [--seconds 40]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil


from trm_core.rundir.events import read_events
from trm_core.rundir.layout import EVENTS

from bench.common import REPO, set_flags


@dataclass
class RunResult:
    speeds: dict[int, float]         # step -> samples/s
    dashboard_cpu_pct: float | None  # the dashboard process, % of one core; None headless
    tmux_cpu_pct: float | None = None  # the tmux server drawing it
    wakeups_per_s: float | None = None  # the dashboard's voluntary context switches, all its threads


def run_args(run_dir: Path, sets: list[str]) -> list[str]:
    return ["-m", "trm_tui.cli", "--run-dir", str(run_dir), "--preset", "tiny", *set_flags(sets)]


def wait_first_step(run_dir: Path, timeout_s: float = 300.0) -> None:
    """Until the worker has written its first step event (start-up, corpus and model build excluded)."""
    deadline = time.monotonic() + timeout_s
    path = run_dir / EVENTS
    while time.monotonic() < deadline:
        if path.exists() and any(ev["event"] == "step" for ev in read_events(path).events):
            return
        time.sleep(0.5)
    raise RuntimeError(f"no step event in {path} after {timeout_s:.0f}s")


def stop_run(run_dir: Path) -> None:
    subprocess.run([sys.executable, "-m", "trm_tui.cli", "stop", "--force", "--run-dir", str(run_dir)],
                   capture_output=True, cwd=REPO)


def step_speeds(run_dir: Path) -> dict[int, float]:
    return {ev["step"]: ev["samples_per_s"] for ev in read_events(run_dir / EVENTS).events
            if ev["event"] == "step" and ev.get("samples_per_s")}


def headless(run_dir: Path, seconds: float, sets: list[str]) -> RunResult:
    with open(run_dir.parent / "headless.out", "w") as out:
        proc = subprocess.Popen([sys.executable, *run_args(run_dir, sets), "--no-ui"], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO)
        try:
            wait_first_step(run_dir)
            time.sleep(seconds)
        finally:
            stop_run(run_dir)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return RunResult(step_speeds(run_dir), None)


def dashboard_process(tmux: list[str], session: str) -> psutil.Process | None:
    out = subprocess.run(tmux + ["display", "-p", "-t", session, "#{pane_pid}"], capture_output=True, text=True)
    try:
        pane = psutil.Process(int(out.stdout))
        return next((p for p in [pane, *pane.children(recursive=True)] if "trm_tui.cli" in " ".join(p.cmdline())),
                    None)
    except (ValueError, psutil.Error):
        return None


def wakeups(proc: psutil.Process) -> int:
    """Voluntary context switches summed over the process's threads (psutil reports the main one only)."""
    total = 0
    for task in Path(f"/proc/{proc.pid}/task").iterdir():
        try:
            for line in (task / "status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def with_dashboard(run_dir: Path, seconds: float, sets: list[str]) -> RunResult:
    session = f"thr-{os.getpid()}"
    tmux = ["tmux", "-L", session]
    cmd = f"cd {shlex.quote(str(REPO))} && {shlex.quote(sys.executable)} " + " ".join(map(shlex.quote, run_args(run_dir, sets)))
    subprocess.run(tmux + ["new-session", "-d", "-s", session, "-x", "120", "-y", "40", cmd], check=True)
    cpu = tmux_cpu = woken = None
    try:
        wait_first_step(run_dir)
        app = dashboard_process(tmux, session)
        server = psutil.Process(int(subprocess.run(tmux + ["display", "-p", "#{pid}"], capture_output=True,
                                                   text=True).stdout))
        c0, s0, w0 = (sum(app.cpu_times()[:2]) if app else 0.0), sum(server.cpu_times()[:2]), \
            (wakeups(app) if app else 0)
        t0 = time.monotonic()
        time.sleep(seconds)
        dt = time.monotonic() - t0
        tmux_cpu = 100 * (sum(server.cpu_times()[:2]) - s0) / dt
        if app is not None and app.is_running():
            cpu, woken = 100 * (sum(app.cpu_times()[:2]) - c0) / dt, (wakeups(app) - w0) / dt
    finally:
        subprocess.run(tmux + ["kill-server"], capture_output=True)
        stop_run(run_dir)
    return RunResult(step_speeds(run_dir), cpu, tmux_cpu, woken)


def with_dashboard_in_pty(run_dir: Path, seconds: float, sets: list[str]) -> RunResult:
    """(b) where tmux is missing (a bare GPU image): the real trm-tui on a pseudo-terminal of 120x40 whose
    output a thread reads and drops, as a terminal emulator would draw it."""
    import fcntl
    import pty
    import struct
    import termios
    import threading

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen([sys.executable, *run_args(run_dir, sets)], stdin=slave, stdout=slave, stderr=slave,
                            cwd=REPO, env=os.environ | {"TERM": "xterm-256color"}, start_new_session=True)
    os.close(slave)

    def drain() -> None:
        while True:
            try:
                if not os.read(master, 65536):
                    return
            except OSError:
                return
    threading.Thread(target=drain, daemon=True).start()
    cpu = woken = None
    try:
        wait_first_step(run_dir)
        app = psutil.Process(proc.pid)
        c0, w0 = sum(app.cpu_times()[:2]), wakeups(app)
        t0 = time.monotonic()
        time.sleep(seconds)
        dt = time.monotonic() - t0
        if proc.poll() is None:
            cpu, woken = 100 * (sum(app.cpu_times()[:2]) - c0) / dt, (wakeups(app) - w0) / dt
    finally:
        proc.kill()
        proc.wait()
        stop_run(run_dir)
        os.close(master)
    return RunResult(step_speeds(run_dir), cpu, None, woken)


def compare(a: dict[int, float], b: dict[int, float], warmup: int) -> tuple[float, float, float, int]:
    """Median samples/s of a and b over the steps both made after the warm-up, their ratio b/a, the
    median per-step ratio, and how many steps that is."""
    last = min(max(a, default=0), max(b, default=0))
    steps = [s for s in range(warmup + 1, last + 1) if s in a and s in b]
    if not steps:
        raise RuntimeError(f"no common steps after the warm-up ({warmup}): runs reached {max(a, default=0)} "
                           f"and {max(b, default=0)}; raise --seconds or lower --warmup-steps")
    med_a = statistics.median(a[s] for s in steps)
    med_b = statistics.median(b[s] for s in steps)
    return med_a, med_b, statistics.median(b[s] / a[s] for s in steps), len(steps)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}%"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--seconds", type=float, default=40, help="training time of each run after its first step")
    p.add_argument("--warmup-steps", type=int, default=20, help="first steps left out of the comparison")
    p.add_argument("--set", dest="sets", action="append", default=["train.max_steps=100000"],
                   help="config override for both modes (repeatable)")
    p.add_argument("--terminal", choices=("tmux", "pty"), default="tmux" if shutil.which("tmux") else "pty",
                   help="what the dashboard draws into (default: tmux where installed, else a bare pseudo-terminal)")
    p.add_argument("--json-out", type=Path, help="also write the overall figures here")
    args = p.parse_args()
    dashboard_mode = with_dashboard if args.terminal == "tmux" else with_dashboard_in_pty
    pooled_a: list[float] = []
    pooled_b: list[float] = []
    step_ratios: list[float] = []
    cpus: list[float] = []
    print(f"{args.rounds} rounds of {args.seconds:.0f}s a mode (tiny preset, warm-up {args.warmup_steps} steps "
          f"left out); samples/s medians over the steps both runs made")
    for r in range(1, args.rounds + 1):
        order = ("a", "b") if r % 2 else ("b", "a")
        results: dict[str, RunResult] = {}
        for mode in order:
            with tempfile.TemporaryDirectory() as tmp:
                run_dir = Path(tmp) / "run"
                results[mode] = (headless if mode == "a" else dashboard_mode)(run_dir, args.seconds, args.sets)
        a, b = results["a"].speeds, results["b"].speeds
        med_a, med_b, step_ratio, n = compare(a, b, args.warmup_steps)
        common = [s for s in range(args.warmup_steps + 1, min(max(a), max(b)) + 1) if s in a and s in b]
        pooled_a += [a[s] for s in common]
        pooled_b += [b[s] for s in common]
        step_ratios += [b[s] / a[s] for s in common]
        cpu, tmux_cpu, woken = results["b"].dashboard_cpu_pct, results["b"].tmux_cpu_pct, results["b"].wakeups_per_s
        if cpu is not None:
            cpus.append(cpu)
        print(f"round {r} ({'->'.join(order)}): steps {args.warmup_steps + 1}-{max(common)} ({n}); "
              f"headless {med_a:.1f}, dashboard {med_b:.1f} samples/s: b/a {med_b / med_a:.4f} "
              f"(per-step median {step_ratio:.4f}); dashboard CPU {cpu if cpu is None else f'{cpu:.2f}%'} "
              f"({woken if woken is None else f'{woken:.0f}'} wakeups/s), tmux {_pct(tmux_cpu)}; "
              f"load average {os.getloadavg()[0]:.2f}", flush=True)
    overall = statistics.median(pooled_b) / statistics.median(pooled_a)
    summary = (f"headless {statistics.median(pooled_a):.1f}, dashboard {statistics.median(pooled_b):.1f} samples/s "
               f"(medians over {len(step_ratios)} steps in {args.rounds} rounds of {args.seconds:.0f} s): b/a "
               f"{overall:.4f}, per-step median {statistics.median(step_ratios):.4f}; dashboard CPU "
               f"{statistics.mean(cpus) if cpus else float('nan'):.2f}% of one core")
    if args.json_out:
        args.json_out.write_text(json.dumps({"ratio": overall, "summary": summary, "terminal": args.terminal}))
    print(f"overall: headless {statistics.median(pooled_a):.1f}, dashboard {statistics.median(pooled_b):.1f} "
          f"samples/s: b/a {overall:.4f} (per-step median {statistics.median(step_ratios):.4f}; "
          f"{len(step_ratios)} steps); dashboard CPU {statistics.mean(cpus) if cpus else float('nan'):.2f}% of "
          f"one core; goal b/a >= 0.99: {'met' if overall >= 0.99 else 'NOT met'}")


if __name__ == "__main__":
    main()
