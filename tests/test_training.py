"""Training works: the tiny preset learns on real code, a pairs task learns, long steps send heartbeats."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import events, run_worker, worker_env


@pytest.mark.process
def test_loss_falls_on_tiny_preset(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    # the tiny preset as shipped, on its default corpus (the standard library), cut to 80 steps; one torch thread
    # (11 s alone; with every core's threads it took 148 s beside the suite's other workers, fighting for them)
    result = run_worker(run_dir, ["--preset", "tiny", "--set", "train.max_steps=80", "--set", "train.threads=1",
                                  "--set", f"data.cache_dir='{tmp_path / 'cache'}'"], timeout=300)
    assert result.returncode == 0, result.stderr
    losses = [e["loss"] for e in events(run_dir, "step")]
    assert len(losses) == 80
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.6 * first, (first, last)
    assert events(run_dir, "run_start")[0]["data"].startswith("code:")


@pytest.mark.process
def test_pairs_task_learns(tmp_path: Path) -> None:
    """A copy-with-offset task: output token = input token + 1 (mod 10)."""
    import random

    rng = random.Random(0)
    data = tmp_path / "pairs.jsonl"
    rows = []
    for _ in range(256):
        seq = [rng.randrange(10) for _ in range(16)]
        rows.append(json.dumps({"input": seq, "output": [(t + 1) % 10 for t in seq]}))
    data.write_text("\n".join(rows) + "\n")
    run_dir = tmp_path / "run"
    sets = ["data.kind='pairs'", f"data.pairs_file='{data}'", "model.dim=32", "model.depth=1", "model.seq_len=16",
            "model.latent_steps=1", "model.refinement_blocks=2", "model.max_supervision_steps=2",
            "train.batch_size=16", "train.max_steps=60", "train.learning_rate=0.01", "train.warmup_steps=5",
            "train.eval_every=30", "train.threads=1"]
    result = run_worker(run_dir, [a for s in sets for a in ("--set", s)], timeout=300)
    assert result.returncode == 0, result.stderr
    steps = events(run_dir, "step")
    assert steps[-1]["accuracy"] > 0.9 > steps[0]["accuracy"]
    assert events(run_dir, "eval")[-1]["accuracy"] > 0.9


@pytest.mark.process
def test_long_steps_send_heartbeats(tmp_path: Path, micro_args: list[str]) -> None:
    run_dir = tmp_path / "run"
    result = run_worker(run_dir, micro_args + ["--set", "train.max_steps=2", "--set", "train.heartbeat_s=0.3"],
                        TRM_TEST_STEP_SLEEP_S=1.5)
    assert result.returncode == 0, result.stderr
    beats = [e for e in events(run_dir, "heartbeat") if e["phase"] == "step"]
    assert len(beats) >= 4 and {b["step"] for b in beats} == {1, 2}


@pytest.mark.process
def test_headless_cli_prints_plain_progress(tmp_path: Path, micro_args: list[str]) -> None:
    run_dir = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "trm_tui.cli", "--no-ui", "--run-dir", str(run_dir), *micro_args,
                             "--set", "train.max_steps=6"], capture_output=True, text=True, env=worker_env(),
                            timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "run started, 6 steps: pid" in out and "step 6/6 (100.0%)" in out
    assert "checkpoint: step 4" in out and "run ended: completed at step 6" in out
    assert "\x1b[" not in out  # stdout is not a TTY: no ANSI codes
    assert (run_dir / "worker.log").exists()


@pytest.mark.process
def test_headless_cli_shows_why_the_worker_failed(tmp_path: Path, micro_args: list[str]) -> None:
    run_dir = tmp_path / "run"
    missing = tmp_path / "no-such-corpus"
    result = subprocess.run([sys.executable, "-m", "trm_tui.cli", "--no-ui", "--run-dir", str(run_dir), *micro_args,
                             "--set", f"data.paths=['{missing}']"], capture_output=True, text=True,
                            env=worker_env(), timeout=120)
    assert result.returncode == 2
    assert f"data.paths: {missing} does not exist" in result.stderr
    assert "Traceback" not in result.stderr
    assert not run_dir.exists()  # nothing left behind


@pytest.mark.process
def test_headless_json_prints_the_events(tmp_path: Path, micro_args: list[str]) -> None:
    run_dir = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "trm_tui.cli", "--no-ui", "--json", "--run-dir", str(run_dir),
                             *micro_args, "--set", "train.max_steps=3"], capture_output=True, text=True,
                            env=worker_env(), timeout=120)
    assert result.returncode == 0, result.stderr
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["event"] for e in printed] == [e["event"] for e in events(run_dir)]
    assert [e["step"] for e in printed if e["event"] == "step"] == [1, 2, 3]


@pytest.mark.process
def test_a_long_step_shows_how_far_into_it_the_worker_is(tmp_path: Path, micro_args: list[str]) -> None:
    """The seed's own size takes minutes a step on a CPU: heartbeats carry the supervision step reached and
    the headless front end shows it, with an estimate of the step's length, instead of nothing."""
    run_dir = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "trm_tui.cli", "--no-ui", "--run-dir", str(run_dir), *micro_args,
                             "--set", "train.max_steps=1", "--set", "train.heartbeat_s=0.5"], capture_output=True,
                            text=True, env=worker_env(TRM_TEST_SUP_STEP_SLEEP_S=6), timeout=120)
    assert result.returncode == 0, result.stderr
    inside = [e for e in events(run_dir, "heartbeat") if e["phase"] == "step" and "sup_step" in e]
    assert inside and {e["sup_step"] for e in inside} <= {1, 2} and {e["sup_steps"] for e in inside} == {2}
    assert "step 1 in progress, supervision step 1 of at most 2 done: 0:00:0" in result.stdout
    assert "for the step at this pace" in result.stdout


@pytest.mark.process
def test_a_finished_run_can_be_extended_and_a_file_is_not_a_run_dir(tmp_path: Path, micro_args: list[str]) -> None:
    """--resume with a larger max_steps continues a completed run from the front end (the guide lists
    max_steps as changeable on resume); the command that started a run, re-run with --resume, is accepted,
    and only a real change is refused, named. A run dir that is a file is a clear exit 2."""
    run_dir = tmp_path / "run"
    base = [sys.executable, "-m", "trm_tui.cli", "--no-ui", "--run-dir", str(run_dir), *micro_args]
    first = subprocess.run(base + ["--set", "train.max_steps=4"], capture_output=True, text=True, env=worker_env(),
                           timeout=120)
    assert first.returncode == 0, first.stderr
    shown = subprocess.run([sys.executable, "-m", "trm_tui.cli", "status", "--run-dir", str(run_dir), "--json"],
                           capture_output=True, text=True, env=worker_env(), timeout=60)
    assert json.loads(shown.stdout)["eta_s"] is None  # a run that is not running has no ETA
    again = subprocess.run(base + ["--set", "train.max_steps=4", "--resume"], capture_output=True, text=True,
                           env=worker_env(), timeout=120)  # the same command, --resume added
    assert again.returncode == 0 and "is complete at step 4; nothing to resume" in again.stdout, again.stderr
    longer = subprocess.run(base + ["--set", "train.max_steps=8", "--resume"], capture_output=True, text=True,
                            env=worker_env(), timeout=120)
    assert longer.returncode == 0, longer.stderr
    assert [e["step"] for e in events(run_dir, "step")] == list(range(1, 9))
    changed = subprocess.run(base + ["--set", "model.dim=64", "--resume"], capture_output=True, text=True,
                             env=worker_env(), timeout=120)
    assert changed.returncode == 2 and "model.dim cannot change on resume (the run has 32" in changed.stderr
    assert "train.threads" not in changed.stderr and len(changed.stderr) < 400  # the change named, not every key
    a_file = tmp_path / "passwd"
    a_file.write_text("root:x:0:0\n")
    bad = subprocess.run([sys.executable, "-m", "trm_tui.cli", "--no-ui", "--run-dir", str(a_file), "--preset", "tiny"],
                         capture_output=True, text=True, env=worker_env(), timeout=60)
    assert bad.returncode == 2 and "is a file, not a folder" in bad.stderr and "Traceback" not in bad.stderr
    assert a_file.read_text() == "root:x:0:0\n"
    # every command that acts on a run: a file, or a folder not there, is exit 2 saying which (stop said
    # "no worker is running" and exit 0)
    for command in (["stop"], ["stop", "--force"], ["autotune"], ["serve"], ["status"]):
        told = subprocess.run([sys.executable, "-m", "trm_tui.cli", *command, "--run-dir", str(a_file)],
                              capture_output=True, text=True, env=worker_env(), timeout=60)
        assert told.returncode == 2 and f"{a_file} is a file" in told.stderr, (command, told.stderr)
    gone = subprocess.run([sys.executable, "-m", "trm_tui.cli", "stop", "--run-dir", str(tmp_path / "nothere")],
                          capture_output=True, text=True, env=worker_env(), timeout=60)
    assert gone.returncode == 2 and "nothere does not exist" in gone.stderr
    assert a_file.read_text() == "root:x:0:0\n"
    numpy_warning = subprocess.run([sys.executable, "-m", "trm_core.worker", "--run-dir", str(a_file)],
                                   capture_output=True, text=True, env=worker_env(), timeout=60)
    assert numpy_warning.returncode == 2 and "Failed to initialize NumPy" not in numpy_warning.stderr


@pytest.mark.process
def test_the_worker_alone_prints_its_progress(tmp_path: Path, micro_args: list[str]) -> None:
    result = run_worker(tmp_path / "run", micro_args + ["--set", "train.max_steps=6"])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"trm worker: started in {tmp_path / 'run'}: 6 steps on cpu")
    assert any(line.startswith("step 1/6 (16.7%)  loss ") for line in lines)  # the first step, at once
    assert any(line.startswith("step 6/6 (100.0%)") for line in lines)      # and the last, always
    assert lines[-1].startswith("trm worker: completed at step 6 of 6; held-out masked-byte accuracy ")
    assert "(always guessing the most common byte: 0." in lines[-1]  # what learning nothing would score


@pytest.mark.process
def test_a_second_ctrl_c_says_what_it_loses(tmp_path: Path, micro_args: list[str]) -> None:
    import signal

    from helpers import cli, kill_worker, wait_for

    run_dir = tmp_path / "run"
    front = cli("--no-ui", "--run-dir", str(run_dir), *micro_args, "--set", "train.checkpoint_every=2",
                "--set", "train.max_steps=1000", TRM_TEST_STEP_SLEEP_S=0.3)
    try:
        wait_for(lambda: len(events(run_dir, "checkpoint")) >= 1 and len(events(run_dir, "step")) >= 3,
                 timeout=120, what="a checkpoint and a step after it")
        front.send_signal(signal.SIGINT)
        wait_for(lambda: (run_dir / "commands").exists() and any((run_dir / "commands").iterdir()) or
                 events(run_dir, "command"), what="the first stop asked for")  # two signals at once are one
        front.send_signal(signal.SIGINT)
        _, err = front.communicate(timeout=60)
        newest = events(run_dir, "checkpoint")[-1]["step"]
        assert "stopping after this step (checkpoint); Ctrl-C again to exit now" in err
        assert "exiting now, without finishing the step; a resume starts from the checkpoint of step " in err
        said = int(err.split("checkpoint of step ")[1].split()[0])
        assert 2 <= said <= newest, (said, newest, err)
    finally:
        kill_worker(run_dir)
