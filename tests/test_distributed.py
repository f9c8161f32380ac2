"""Scale-out through torchrun on this machine's CPUs (gloo): two ranks on one node, and two "nodes" as two
torchrun agents on 127.0.0.1, each under its own keeper, launched the way a user launches them (trm-tui).

Every run is real: torchrun, DDP, the keeper, signals, the run dir. Losses are compared with a one-process
run of the same global batch, and with an uninterrupted run of the same world size after a stop and resume.
"""

from __future__ import annotations

import asyncio
import re
import os
import shutil
import signal
import socket
import subprocess
import time
import tomllib
from pathlib import Path

import pytest

from trm_core.distributed.rank_files import read_all
from trm_core.rundir import layout

from trm_core.config import SupervisorConfig
from trm_tui.dashboard.dashboard_app import Dashboard
from trm_tui.dashboard.widgets import HeaderBar, RanksPanel

from helpers import Terminal, cli, cli_run, events, kill_worker, run_worker, wait_for
from test_carry import tiny_puzzles
from test_dashboard import text_of

pytestmark = pytest.mark.process

RANKS2 = ["--set", "distributed.nproc_per_node=2"]
# the suite runs the ranks on the CPU (gloo); bench/gpu_check.sh runs the core tests on 2 GPUs (nccl) with
# TRM_TEST_DIST_DEVICE=cuda, in float32 so the comparisons keep their tolerance
ON = ["--set", f"train.device='{os.environ.get('TRM_TEST_DIST_DEVICE', 'cpu')}'", "--set", "train.precision='fp32'"]


def losses(run_dir: Path) -> dict[int, float]:
    return {e["step"]: e["loss"] for e in events(run_dir, "step")}


def start(run_dir: Path, args: list[str], **env: object) -> subprocess.CompletedProcess:
    """``trm-tui --no-ui`` to the end: keeper, launcher, torchrun, ranks."""
    return cli_run("--no-ui", "--run-dir", str(run_dir), *args, timeout=240, **env)


def rank_pid(run_dir: Path, rank: int, past_step: int = 0) -> int:
    def ready() -> int | None:
        for s in read_all(run_dir):
            if s.rank == rank and s.step > past_step and s.exit_code is None:
                return s.pid
        return None
    return wait_for(ready, timeout=120, what=f"rank {rank} past step {past_step}")


def test_two_ranks_match_one_process_and_only_rank_0_writes(tmp_path: Path, micro_args: list[str]) -> None:
    args = micro_args + ON + ["--set", "train.max_steps=10", "--set", "train.checkpoint_every=5"]
    one = run_worker(tmp_path / "one", args)
    assert one.returncode == 0, one.stderr
    two_dir = tmp_path / "two"
    two = start(two_dir, args + RANKS2)
    assert two.returncode == 0, two.stdout + two.stderr
    steps = [e["step"] for e in events(two_dir, "step")]
    assert steps == list(range(1, 11))  # each step once: rank 1 wrote no events
    for step, loss in losses(tmp_path / "one").items():
        assert losses(two_dir)[step] == pytest.approx(loss, rel=1e-5)
    start_event = events(two_dir, "run_start")[0]
    assert start_event["world_size"] == 2 and start_event["backend"] in ("gloo", "nccl") and len(start_event["hosts"]) == 2
    assert all(e["world_size"] == 2 and e["slowest_rank"] in (0, 1) for e in events(two_dir, "step"))
    assert sorted(p.name for p in (two_dir / "checkpoints").glob("*.pt")) == ["step-00000005.pt", "step-00000010.pt"]
    assert [e["step"] for e in events(two_dir, "eval")] == [4, 8, 10]  # and the last step, always
    ranks = read_all(two_dir)
    assert [(s.rank, s.state, s.exit_code, s.step) for s in ranks] == [(0, "completed", 0, 10), (1, "completed", 0, 10)]
    assert (two_dir / "ranks" / "rank-1.log").exists()
    assert not list(tmp_path.glob("two/ranks/*.tmp-*"))
    status = cli_run("status", "--run-dir", str(two_dir), timeout=60)
    assert status.returncode == 0 and re.search(r"^rank 1 +completed: \S+ pid \d+ \S+, at step 10, ended "
                                                r"[0-9:]+ ago", status.stdout, re.M), status.stdout
    assert "heartbeat" not in status.stdout  # an ended rank: when it ended, not a heartbeat age that keeps counting
    header, panel = asyncio.run(dashboard_text(two_dir))  # the finished run, opened as it is
    assert "2 ranks" in header and "COMPLETED" in header and "rank 0 pid" in header  # whose pid it is
    assert [line.split()[:2] + line.split()[-1:] for line in panel.strip().splitlines()[1:]] == \
        [["0", "10", "completed"], ["1", "10", "completed"]]


async def dashboard_text(run_dir: Path) -> tuple[str, str]:
    """The header and the ranks panel of the dashboard (Textual's Pilot) opened on a run."""
    app = Dashboard(run_dir, None, SupervisorConfig())
    async with app.run_test(size=(100, 34)) as pilot:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (app.query_one(RanksPanel).display and
                                                   "rank" in text_of(app.query_one(RanksPanel))):
            await pilot.pause(0.1)
        return text_of(app.query_one(HeaderBar)), text_of(app.query_one(RanksPanel))


def test_refill_carry_and_puzzle_embeddings_match_one_process(tmp_path: Path) -> None:
    """The reference's carry over two ranks: each holds half the slots; the embedding rows of both ranks'
    puzzles are updated on both; exploration draws for the global batch."""
    data = tiny_puzzles(tmp_path / "data")
    sets = ["data.kind='puzzles'", f"data.dataset_dir='{data}'", "model.net='attention'", "model.num_heads=2",
            "model.dim=16", "model.depth=1", "model.latent_steps=1", "model.refinement_blocks=2",
            "model.max_supervision_steps=4", "model.puzzle_emb_len=2", "model.halt_exploration=0.5",
            "train.carry='refill'", "train.loss='stablemax'", "train.batch_size=6", "train.max_steps=12",
            "train.eval_every=6", "train.eval_batches=0", "train.checkpoint_every=6", "train.threads=1",
            "train.warmup_steps=2", "train.ema_decay=0.9", "train.puzzle_emb_lr=0.05"]
    args = [a for s in sets for a in ("--set", s)]
    one = run_worker(tmp_path / "one", args)
    assert one.returncode == 0, one.stderr
    two = start(tmp_path / "two", args + RANKS2)
    assert two.returncode == 0, two.stdout + two.stderr
    lines = lambda d: {e["step"]: (e["loss"], e["completed"]) for e in events(d, "step")}  # noqa: E731
    a, b = lines(tmp_path / "one"), lines(tmp_path / "two")
    assert a.keys() == b.keys() and len(a) == 12
    for step in a:
        assert b[step][0] == pytest.approx(a[step][0], rel=1e-5) and b[step][1] == a[step][1]
    evals = lambda d: [(e["loss"], e["exact"], e["samples"]) for e in events(d, "eval")]  # noqa: E731
    for x, y in zip(evals(tmp_path / "one"), evals(tmp_path / "two"), strict=True):
        assert y[0] == pytest.approx(x[0], rel=1e-5) and y[1:] == x[1:]


@pytest.mark.parametrize("every", [1, 3])
def test_stop_then_resume_is_bit_identical_to_an_uninterrupted_two_rank_run(tmp_path: Path, micro_args: list[str],
                                                                              every: int) -> None:
    """With train.log_every = 3 the ranks agree (and read their figures) only on the steps they log, evaluate or
    checkpoint: the stop lands on such a step, on both ranks."""
    args = micro_args + ON + RANKS2 + ["--set", "train.max_steps=12", "--set", f"train.log_every={every}"]
    straight = start(tmp_path / "straight", args)
    assert straight.returncode == 0, straight.stdout + straight.stderr
    split = tmp_path / "split"
    detached = cli_run("--detach", "--run-dir", str(split), *args, TRM_TEST_STEP_SLEEP_S=0.25)
    assert detached.returncode == 0, detached.stderr
    wait_for(lambda: events(split, "step") and events(split, "step")[-1]["step"] >= 3, timeout=120, what="step 3")
    stopped = cli_run("stop", "--run-dir", str(split))
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    wait_for(lambda: events(split, "keeper_end"), timeout=60, what="the keeper's end")
    end = events(split, "run_end")[-1]
    assert end["status"] == "stopped" and 3 <= end["step"] < 12
    assert end["step"] % every == 0 or end["step"] % 4 == 0  # a logged step, or an eval and checkpoint one (MICRO)
    ranks = read_all(split)
    assert {s.state for s in ranks} == {"stopped"} and {s.step for s in ranks} == {end["step"]}  # the same step
    assert events(split, "checkpoint")[-1]["step"] == end["step"]
    resumed = start(split, ["--resume"])
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    straight_losses, split_losses = losses(tmp_path / "straight"), losses(split)
    assert len(straight_losses) == 12 // every
    assert split_losses.keys() == straight_losses.keys() | {end["step"]}  # the stop's step is logged too
    assert {k: split_losses[k] for k in straight_losses} == straight_losses


@pytest.mark.slow  # 27 s: with the benchmarks; the blame rules themselves are checked below, in the suite
def test_a_hang_then_a_kill_on_rank_1_each_restart_the_group_naming_rank_1(tmp_path: Path,
                                                                          micro_args: list[str]) -> None:
    """Rank 1 hangs in step 6 (once): its own watchdog writes its stacks in its log, rank 0 waits for it, and the
    keeper names rank 1 as stalled. After the restart rank 1 is SIGKILLed: named as killed, by signal 9. The
    group restarts from the newest checkpoint each time and completes with no step lost."""
    run_dir = tmp_path / "run"
    once = tmp_path / "once"
    once.mkdir()
    args = micro_args + RANKS2 + ["--set", "train.max_steps=16", "--set", "train.step_timeout_s=3",
                                  "--set", "supervisor.restart_backoff_s=0.2"]
    proc = cli("--no-ui", "--run-dir", str(run_dir), *args, TRM_TEST_STEP_SLEEP_S=0.15, TRM_TEST_STALL_AT_STEP=6,
               TRM_TEST_FAULT_RANK=1, TRM_TEST_ONCE_DIR=once)
    try:
        wait_for(lambda: events(run_dir, "restart"), timeout=120, what="the restart after the hang")
        wait_for(lambda: [e for e in events(run_dir, "checkpoint") if e["step"] == 8], timeout=120,
                 what="checkpoint 8, after the restart")
        os.kill(rank_pid(run_dir, 1, past_step=9), signal.SIGKILL)
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out + err
    stall = events(run_dir, "stall")
    assert [(e["rank"], e["step"], e["phase"]) for e in stall] == [(1, 6, "step")], stall
    assert any("faults.py" in t["stack"] for t in stall[0]["threads"])
    assert "watchdog: step of step 6" in (run_dir / "ranks" / "rank-1.log").read_text()  # its stacks, in its log
    down = events(run_dir, "rank_down")
    assert [(d["rank"], d["state"]) for d in down] == [(1, "stalled"), (1, "killed")], down
    assert down[1]["exit_code"] == -signal.SIGKILL
    restarts = events(run_dir, "restart")
    assert len(restarts) == 2 and all("rank 1" in r["reason"] for r in restarts)
    resumed = [e["resumed_from"] for e in events(run_dir, "run_start") if e["resumed_from"]]
    for restart, resumed_from in zip(restarts, resumed, strict=True):
        saved = [e["step"] for e in events(run_dir, "checkpoint") if e["time"] < restart["time"]]
        assert resumed_from == max(saved) <= restart["failed_step"]
    assert resumed[0] == 4 and resumed[1] >= 8
    assert set(e["step"] for e in events(run_dir, "step")) == set(range(1, 17))  # nothing lost
    assert events(run_dir, "run_end")[-1]["status"] == "completed"
    assert "rank 1 on" in out and "took the group down" in out


@pytest.mark.slow  # three launches and a straight run, 17 s: with the benchmarks (python -m pytest -m slow)
def test_resume_two_ranks_on_one_and_one_on_two(tmp_path: Path, micro_args: list[str]) -> None:
    run_dir = tmp_path / "run"
    args = micro_args + ["--set", "train.max_steps=9"]
    assert start(run_dir, args + RANKS2, TRM_TEST_STOP_AT_STEP=3).returncode == 0  # stopped after step 3
    down = start(run_dir, ["--resume", "--set", "distributed.nproc_per_node=1"], TRM_TEST_STOP_AT_STEP=6)
    assert down.returncode == 0, down.stdout + down.stderr
    up = start(run_dir, ["--resume", "--set", "distributed.nproc_per_node=2"])
    assert up.returncode == 0, up.stdout + up.stderr
    assert [e["world_size"] for e in events(run_dir, "run_start")] == [2, 1, 2]
    notes = [e["message"] for e in events(run_dir, "warning") if "rank(s), resumed by" in e["message"]]
    assert len(notes) == 2 and "saved by 2 rank(s), resumed by 1" in notes[0] and "by 1 rank(s), resumed by 2" in notes[1]
    assert [e["step"] for e in events(run_dir, "step")] == list(range(1, 10))
    straight = run_worker(tmp_path / "straight", args)
    assert straight.returncode == 0
    for step, loss in losses(tmp_path / "straight").items():
        assert losses(run_dir)[step] == pytest.approx(loss, rel=1e-4)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_on_localhost_and_a_stop_on_node_0_ends_both(tmp_path: Path, micro_args: list[str]) -> None:
    run_dir = tmp_path / "run"
    endpoint = f"127.0.0.1:{free_port()}"
    common = micro_args + ["--set", "distributed.nnodes=2", "--set", f"distributed.rdzv_endpoint='{endpoint}'",
                           "--set", "train.max_steps=400"]
    node0 = cli("--no-ui", "--run-dir", str(run_dir), *common, "--set", "distributed.node_rank=0",
                TRM_TEST_STEP_SLEEP_S=0.1)
    node1 = cli("--no-ui", "--run-dir", str(run_dir), *common, "--set", "distributed.node_rank=1",
                TRM_TEST_STEP_SLEEP_S=0.1)
    try:
        wait_for(lambda: len(events(run_dir, "step")) >= 3, timeout=180, what="the two nodes' steps")
        assert events(run_dir, "run_start")[0]["world_size"] == 2
        assert (run_dir / "nodes" / "node-1" / layout.KEEPER_IDENTITY).exists()  # node 1's keeper, its own files
        stopped = cli_run("stop", "--run-dir", str(run_dir))
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        out0, err0 = node0.communicate(timeout=120)
        out1, err1 = node1.communicate(timeout=120)
    finally:
        for p in (node0, node1):
            if p.poll() is None:
                p.kill()
    assert node0.returncode == 0 and node1.returncode == 0, (out0, err0, out1, err1)
    assert "run started, 400 steps: 2 ranks" in out1 and "run ended: stopped" in out1  # node 1 shows the run too
    assert out1.count("keeper started") == 1  # its own keeper's, not node 0's
    end = events(run_dir, "run_end")[-1]
    assert end["status"] == "stopped" and end["step"] < 400
    assert {s.state for s in read_all(run_dir)} == {"stopped"} and {s.node_rank for s in read_all(run_dir)} == {0, 1}
    assert not events(run_dir, "restart")


@pytest.mark.tmux
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_the_dashboard_shows_every_rank_and_marks_the_slow_then_the_stalled_one(tmp_path: Path,
                                                                             micro_args: list[str]) -> None:
    """Rank 1 sleeps before each of its steps (rank 0 waits for it: SLOW), then hangs in step 15 (STALLED)."""
    run_dir = tmp_path / "run"
    args = micro_args + RANKS2 + ["--set", "train.max_steps=400", "--set", "supervisor.stall_after_s=2",
                                  "--set", "train.step_timeout_s=120"]
    term = Terminal(["--run-dir", str(run_dir), *args], size=(80, 24), TRM_TEST_STEP_SLEEP_S=0.2,
                    TRM_TEST_STALL_AT_STEP=15, TRM_TEST_FAULT_RANK=1)

    def rank_rows() -> dict[str, list[str]]:
        rows = {}
        for line in term.screen().splitlines():
            cells = line.strip("│╭╮╰╯ ").split("│")[0].split()
            if len(cells) == 5 and cells[0] in ("0", "1") and cells[1].isdigit():
                rows[cells[0]] = cells
        return rows

    try:
        wait_for(lambda: "2 ranks" in term.screen() and len(rank_rows()) == 2, what="both ranks on screen")
        wait_for(lambda: rank_rows().get("1", [""])[-1] == "SLOW", timeout=60, what="rank 1 marked SLOW")
        assert rank_rows()["0"][-1] == "ok" and int(rank_rows()["0"][2].rstrip("%")) > 50  # rank 0 waits for it
        wait_for(lambda: rank_rows().get("1", [""])[-1] == "STALLED", timeout=60, what="rank 1 marked STALLED")
        screen = term.screen()
        assert rank_rows()["0"][-1] in ("waiting", "ok") and rank_rows()["1"][1] == "15"
        assert "RANK 1 STALLED" in screen
    finally:
        term.close()
        kill_worker(run_dir)


def test_a_forced_stop_kills_the_launcher_and_every_rank(tmp_path: Path, micro_args: list[str]) -> None:
    import psutil

    run_dir = tmp_path / "run"
    detached = cli_run("--detach", "--run-dir", str(run_dir), *micro_args, *RANKS2, "--set", "train.max_steps=400",
                       TRM_TEST_STEP_SLEEP_S=0.2)
    assert detached.returncode == 0, detached.stderr
    pids = [rank_pid(run_dir, 0, past_step=1), rank_pid(run_dir, 1, past_step=1)]
    forced = cli_run("stop", "--force", "--run-dir", str(run_dir))
    assert forced.returncode == 0, forced.stdout + forced.stderr
    wait_for(lambda: not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
                             for p in pids), timeout=30, what="both ranks gone")
    wait_for(lambda: events(run_dir, "keeper_end"), timeout=30, what="the keeper's end")
    end = events(run_dir, "run_end")[-1]
    assert end["status"] == "stopped" and end["forced"] is True
    assert not events(run_dir, "restart")


@pytest.mark.parametrize("sets, named", [
    (["distributed.node_rank=2", "distributed.nnodes=2", "distributed.rdzv_endpoint=h:1"], "distributed.node_rank = 2"),
    (["distributed.nnodes=2"], "distributed.rdzv_endpoint"),
    (["distributed.rdzv_endpoint=nohost"], "'nohost' is not host:port"),
    (["distributed.nproc_per_node=3", "train.batch_size=4"], "does not split evenly over 3 ranks"),
    (["distributed.nproc_per_node=2", "train.batch_size=4", "train.device='cuda:1'"], "rank N on a node uses cuda:N"),
    (["distributed.nproc_per_node=2", "train.batch_size=8", "train.micro_batch_size=3"], "each rank's 4 samples"),
    (["distributed.backend='mpi'"], "distributed.backend"),
])
def test_bad_distributed_settings_are_refused_naming_the_key(sets: list[str], named: str) -> None:
    from trm_core.config import ConfigError, resolve

    with pytest.raises(ConfigError, match=re.escape(named)):
        resolve(env={}, sets=sets)


def test_the_command_line_refuses_them_before_anything_starts(tmp_path: Path) -> None:
    done = cli_run("--no-ui", "--run-dir", str(tmp_path / "run"), "--set", "distributed.nnodes=2", timeout=60)
    assert done.returncode == 2 and "distributed.rdzv_endpoint" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists()
    env_set = cli_run("--no-ui", "--run-dir", str(tmp_path / "run"), timeout=60, TRM_DISTRIBUTED_NPROC_PER_NODE=3)
    assert env_set.returncode == 2 and "does not split evenly over 3 ranks" in env_set.stderr


@pytest.mark.slow  # trials: with the benchmarks (python -m pytest -m slow)
def test_autotune_of_a_two_rank_run_tunes_one_rank_and_keeps_the_global_batch(tmp_path: Path,
                                                                            micro_args: list[str]) -> None:
    run_dir = tmp_path / "run"
    trials = ["--set", "autotune.warmup_steps=1", "--set", "autotune.measure_steps=2", "--set", "autotune.max_seconds=120"]
    args = micro_args + RANKS2 + ["--set", "train.batch_size=8", "--set", "train.micro_batch_size=0",
                                  "--set", "train.threads=0", "--set", "train.max_steps=6"]
    assert start(run_dir, args, TRM_TEST_STOP_AT_STEP=3).returncode == 0
    tuned = cli_run("autotune", "--run-dir", str(run_dir), *trials, timeout=300)
    assert tuned.returncode == 0, tuned.stdout + tuned.stderr
    measured = events(run_dir, "autotune_trial")
    assert measured and all(t["batch_size"] == 4 for t in measured)  # one rank's share of the global 8
    assert max(t["threads"] for t in measured) <= max(1, len(os.sched_getaffinity(0)) // 2)  # its share of the cores
    cfg = tomllib.loads((run_dir / "config.toml").read_text())
    assert cfg["train"]["batch_size"] == 8 and cfg["distributed"]["nproc_per_node"] == 2
    assert 4 % (cfg["train"]["micro_batch_size"] or 4) == 0
    resumed = start(run_dir, ["--resume"])
    assert resumed.returncode == 0 and events(run_dir, "run_start")[-1]["world_size"] == 2
    assert [e["step"] for e in events(run_dir, "step")] == list(range(1, 7))


TORCHRUN_REPORT = """
============================================================
trm_core.worker FAILED
------------------------------------------------------------
Failures:
[1]:
  time      : 2026-11-27_07:41:42
  host      : vm
  rank      : 0 (local_rank: 0)
  exitcode  : 1 (pid: 17397)
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-11-27_07:41:42
  host      : vm
  rank      : 1 (local_rank: 1)
  exitcode  : -9 (pid: 17398)
  error_file: <N/A>
============================================================
"""


def test_the_post_mortem_blames_the_rank_the_others_waited_for(tmp_path: Path) -> None:
    """The rules on rank files as the ranks write them (rank_files.write_status), for each way a group falls."""
    from trm_core.distributed.postmortem import find_culprit, torchrun_exit_codes
    from trm_core.distributed.rank_files import RankStatus, ranks_dir, write_status

    log = tmp_path / "worker.log"
    log.write_text("older output\n" + TORCHRUN_REPORT)
    assert torchrun_exit_codes(log) == {0: 1, 1: -9}

    def group(*states: dict) -> Path:
        run = tmp_path / f"run{len(list(tmp_path.glob('run*')))}"
        ranks_dir(run).mkdir(parents=True)
        for rank, fields in enumerate(states):
            write_status(run, RankStatus(rank=rank, world_size=len(states), local_rank=rank, node_rank=0, host="vm",
                                         pid=100 + rank, device="cpu", started=time.time(), **fields))
        return run

    # a stall: the rank that was not waiting, although the waiting one also stalled (and wrote first)
    run = group({"state": "stalled", "exit_code": 3, "waiting_s": 9.0, "reason": "waited"},
                {"state": "stalled", "exit_code": 3, "reason": "step of step 6 ran 3.1s", "step": 6})
    found = find_culprit(run, time.time() - 5)
    assert (found.status.rank, found.state, found.exit_code) == (1, "stalled", 3)
    # an exception on one rank: it, not the rank that lost its peer
    run = group({"state": "lost_peer", "exit_code": 1}, {"state": "failed", "exit_code": 1, "reason": "ValueError"})
    assert (find_culprit(run, time.time() - 5).status.rank, find_culprit(run, time.time() - 5).state) == (1, "failed")
    # a kill: the silent rank, with its signal from torchrun's report
    run = group({"state": "lost_peer", "exit_code": 1}, {"state": "running", "step": 7, "phase": "step"})
    found = find_culprit(run, time.time() - 5, log)
    assert (found.status.rank, found.state, found.exit_code) == (1, "killed", -9)
    assert found.reason == "died without a word in step 7 (signal 9)"
    # files of an earlier group are not this group's
    assert find_culprit(run, time.time() + 60) is None


def _one_rank_step(rank: int, port: int, sets: list[str], batch_file: str, out_file: str) -> None:
    """One rank of a 2-rank group (spawned): one train step on its share of the global batch."""
    import torch

    from trm_core.config import resolve
    from trm_core.data.base import Batch
    from trm_core.distributed.group import Group
    from trm_core.train.trainer import Trainer

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE="2")
    group = Group.from_env("gloo", "cpu")
    trainer = Trainer(resolve(env={}, sets=sets), 258, total_steps=10, group=group)
    batch = Batch(*torch.load(batch_file))
    mine = group.share(len(batch.inputs))
    metrics = trainer.train_step(Batch(*(None if t is None else t[mine] for t in batch)))
    if rank == 0:
        torch.save({"loss": metrics.loss, "sup_steps": metrics.sup_steps, "updates": metrics.updates,
                    "model": trainer.model.state_dict()}, out_file)
    group.close()


def test_a_rank_whose_samples_all_halted_still_joins_the_update(tmp_path: Path) -> None:
    """Shrink mode: rank 1's samples all halt after the first supervision step while rank 0's go on; rank 1
    joins the second update with no rows (DDP syncs once per update), and the update is one process's."""
    import torch
    import torch.multiprocessing as mp

    from trm_core.config import resolve
    from trm_core.data.base import Batch
    from trm_core.train.trainer import Trainer

    sets = ["model.dim=32", "model.depth=1", "model.seq_len=16", "model.latent_steps=1", "model.refinement_blocks=2",
            "model.max_supervision_steps=3", "train.batch_size=4", "train.threads=1", "train.ema_decay=0",
            "train.device='cpu'"]
    inputs = torch.randint(0, 256, (8, 16), generator=torch.Generator().manual_seed(3))
    probe = Trainer(resolve(env={}, sets=sets), 258, total_steps=10)  # the same initial weights as every side
    with torch.no_grad():
        y, z = probe.model.initial_state(len(inputs), 16)
        logits = probe.model(inputs, y, z, None).halt_logit
    order = logits.argsort()  # two that will not halt for rank 0, the two most eager to halt for rank 1
    chosen = torch.cat([order[:2], order[-2:]])
    threshold = torch.sigmoid((logits[order[-2]] + logits[order[-3]]) / 2).item()
    batch = (inputs[chosen], inputs[chosen].clone())
    sets += [f"model.halt_threshold={threshold}", "distributed.nproc_per_node=2"]
    torch.save(batch, tmp_path / "batch.pt")
    one = Trainer(resolve(env={}, sets=sets[:-1]), 258, total_steps=10)
    alone = one.train_step(Batch(*batch))
    assert alone.updates == 3 and alone.sup_steps == (1 + 1 + 3 + 3) / 4  # rank 1's pair left after step 1
    ranks = mp.spawn(_one_rank_step, args=(free_port(), sets, str(tmp_path / "batch.pt"), str(tmp_path / "out.pt")),
                     nprocs=2, join=False)
    deadline = time.monotonic() + 120
    while not ranks.join(timeout=1):  # a rank left out of an update would hang the other in DDP's all-reduce
        if time.monotonic() > deadline:
            for proc in ranks.processes:
                proc.kill()
            pytest.fail("the two ranks did not finish their step within 120 s (a rank skipped an update?)")
    two = torch.load(tmp_path / "out.pt")
    assert two["updates"] == 3 and two["sup_steps"] == alone.sup_steps
    assert two["loss"] == pytest.approx(alone.loss, rel=1e-5)
    for name, value in one.model.state_dict().items():
        torch.testing.assert_close(two["model"][name], value, rtol=1e-5, atol=1e-6)
