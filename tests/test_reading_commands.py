"""A reading command (status, runs, eval, export, doctor, a read-only view) never starts, signals or writes
anything in a run dir: each is run on a run in every state a run can be in, and the run dir stays the same byte
for byte and no process of the run is born or dies.

A live run is frozen (SIGSTOP) while it is read, so that its own worker and keeper write nothing meanwhile:
to every command it is as alive as a running run (its processes exist), and anything that changed was
changed by the command."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from trm_core.control.launch import mark_stop_requested
from trm_core.rundir import layout
from trm_core.rundir.identity import live_keeper, live_worker
from trm_core.rundir.layout import RunDir

from helpers import MICRO, Terminal, cli_run, events, kill_worker, run_worker, wait_for, worker_env

# both tests read the one set of runs the module fixture builds: one xdist worker builds it for both
pytestmark = [pytest.mark.process, pytest.mark.xdist_group("reading_commands")]

# a frozen worker is alive and silent: the stall rule would call it stalled, which is a reading too
LIVE_STATES = ("running", "stopping", "orphaned")
ENDED_STATES = ("completed", "stopped", "failed", "stalled", "corrupt", "no run")


def _args(corpus: Path, cache: Path, steps: int) -> list[str]:
    sets = MICRO + [f"data.paths=['{corpus}']", f"data.cache_dir='{cache}'", f"train.max_steps={steps}",
                    "train.step_timeout_s=1.5"]
    return [a for s in sets for a in ("--set", s)]


def _ended(root: Path, corpus: Path, state: str, **faults: object) -> Path:
    run_dir = root / state / "run"
    run_dir.parent.mkdir(parents=True)
    result = run_worker(run_dir, _args(corpus, root / "cache", 8), **faults)
    assert result.returncode in (0, 1, 3), result.stderr
    return run_dir


def _live(root: Path, corpus: Path, state: str) -> Path:
    """A run started the way a user starts one (keeper and worker, detached), frozen after its first step."""
    run_dir = root / state / "run"
    run_dir.parent.mkdir(parents=True)
    result = cli_run("--detach", "--run-dir", str(run_dir), *_args(corpus, root / "cache", 10_000),
                     TRM_TEST_STEP_SLEEP_S=0.3)
    assert result.returncode == 0, result.stderr
    wait_for(lambda: events(run_dir, "step"), timeout=90, what=f"the {state} run's first step")
    keeper, worker = live_keeper(run_dir), live_worker(run_dir)
    assert keeper is not None and worker is not None
    os.kill(worker.pid, signal.SIGSTOP)
    if state == "orphaned":  # its keeper killed (out of memory, say): the worker trains on, unsupervised
        os.kill(keeper.pid, signal.SIGKILL)
        wait_for(lambda: live_keeper(run_dir) is None, what="the keeper gone")
    else:
        os.kill(keeper.pid, signal.SIGSTOP)
    if state == "stopping":  # a stop asked for, as `trm-tui stop` marks it, that the frozen worker has not met
        mark_stop_requested(RunDir.at(run_dir), "a reading test")
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, corpus: Path):
    """One run in each state, each alone under its own parent (for ``trm-tui runs --root``)."""
    root = tmp_path_factory.mktemp("states")
    made: dict[str, Path] = {}
    try:
        made["completed"] = _ended(root, corpus, "completed")
        made["stopped"] = _ended(root, corpus, "stopped", TRM_TEST_STOP_AT_STEP=4)
        made["failed"] = _ended(root, corpus, "failed", TRM_TEST_CRASH_AT_STEP=3)
        made["stalled"] = _ended(root, corpus, "stalled", TRM_TEST_STALL_AT_STEP=3)
        corrupt = root / "corrupt" / "run"
        shutil.copytree(made["completed"], corrupt)
        (corrupt / layout.RUN_CONFIG).write_text("[model\ndim = 32\n")  # a config that does not read
        newest = max(corrupt.rglob("*.pt"), key=lambda p: p.stat().st_mtime)
        newest.write_bytes(newest.read_bytes()[:100])  # and a checkpoint cut short
        made["corrupt"] = corrupt
        (root / "no run" / "run").mkdir(parents=True)
        made["no run"] = root / "no run" / "run"
        for state in LIVE_STATES:
            made[state] = _live(root, corpus, state)
        yield made
    finally:
        for run_dir in made.values():
            for ident in (live_worker(run_dir), live_keeper(run_dir)):
                if ident is not None:
                    os.kill(ident.pid, signal.SIGCONT)
            kill_worker(run_dir)


def _contents(run_dir: Path) -> dict[str, tuple[int, str]]:
    """Every file and folder of the run dir: its mode and its bytes' hash (a folder's: empty)."""
    seen = {}
    for path in sorted(run_dir.rglob("*")):
        digest = "" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
        seen[str(path.relative_to(run_dir))] = (path.stat().st_mode, digest)
    return seen


def _processes_of(run_dir: Path) -> set[int]:
    """The processes whose command line names the run dir (its worker, its keeper, anything started for it)."""
    found = set()
    for proc in psutil.process_iter(["cmdline"]):
        if any(str(run_dir) in part for part in proc.info["cmdline"] or []):
            found.add(proc.pid)
    return found


def _reading_commands(run_dir: Path, elsewhere: Path) -> list[list[str]]:
    """Every reading command, with whatever it writes sent outside the run dir."""
    r = str(run_dir)
    return [
        ["status", "--run-dir", r],
        ["status", "--run-dir", r, "--json"],
        ["runs", "--root", str(run_dir.parent)],
        ["runs", "--root", str(run_dir.parent), "--csv"],
        ["export", "csv", "--run-dir", r, "--out", str(elsewhere / "events.csv")],
        ["export", "tensorboard", "--run-dir", r, "--out", str(elsewhere / "tb")],
        ["export", "config", "--run-dir", r],
        ["eval", "--run-dir", r, "--out", str(elsewhere / "eval"), "--limit", "2", "--no-predictions"],
        ["doctor", "--run-dir", r, "--resume", "--no-memory"],
        ["--run-dir", r, "--attach", "--no-ui", "--read-only"],
    ]


def _read(state: str, run_dir: Path, elsewhere: Path) -> list[str]:
    """Run every reading command on one run; what went wrong, one line each."""
    wrong = []
    before, alive = _contents(run_dir), _processes_of(run_dir)
    for argv in _reading_commands(run_dir, elsewhere):
        proc = subprocess.Popen([sys.executable, "-m", "trm_tui.cli", *argv], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, env=worker_env(), start_new_session=True)
        try:
            _, err = proc.communicate(timeout=6 if state in LIVE_STATES and "--attach" in argv else 120)
        except subprocess.TimeoutExpired:  # following a live run: it stops watching on Ctrl-C
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)
        if "Traceback" in err:
            wrong.append(f"{state}: trm-tui {' '.join(argv)}: a traceback: {err.strip().splitlines()[-1]}")
        after, now = _contents(run_dir), _processes_of(run_dir)
        changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        if changed:
            wrong.append(f"{state}: trm-tui {' '.join(argv)} changed {changed}")
            before = after
        if now != alive:
            wrong.append(f"{state}: trm-tui {' '.join(argv)}: processes {sorted(alive)} became {sorted(now)}")
            alive = now
    return wrong


def test_no_reading_command_changes_a_run_in_any_state(runs: dict[str, Path], tmp_path: Path) -> None:
    states = list(runs)
    with ThreadPoolExecutor(3) as pool:
        found = pool.map(lambda s: _read(s, runs[s], tmp_path / s), states)
        wrong = [line for lines in found for line in lines]
    assert not wrong, "\n".join(wrong)


@pytest.mark.tmux
def test_a_read_only_dashboard_on_an_orphaned_worker_says_so_and_adopts_nothing(runs: dict[str, Path]) -> None:
    run_dir = runs["orphaned"]
    before, alive = _contents(run_dir), _processes_of(run_dir)
    with Terminal(["--run-dir", str(run_dir), "--read-only"], size=(100, 30)) as term:
        wait_for(lambda: "keeper is gone" in term.screen(), timeout=60, what="the orphan named on screen")
        assert live_keeper(run_dir) is None
        term.keys("q")
        wait_for(lambda: "EXIT=0" in term.screen(), what="the dashboard to quit")
    # the terminal's own shell names the run dir too and goes with its tmux server a moment after close: wait
    # for it (a keeper the view had started would stay, and fail this)
    wait_for(lambda: _processes_of(run_dir) == alive, timeout=15, what="only the run's own processes left")
    assert _contents(run_dir) == before and _processes_of(run_dir) == alive
