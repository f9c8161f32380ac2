"""A run's log elsewhere: TensorBoard event files read back by TensorBoard's own reader (every scalar with its
step and value, the config as hparams, the story as text), ``--follow`` across a crash, a restart of the
worker from its checkpoint and a restart of the mirror itself, and CSV tables for pandas."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import cli, cli_run, events, kill_worker, terminate, wait_for, worker_env

pytest.importorskip("tensorboardX")
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def read_back(folder: Path):
    acc = event_accumulator.EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def scalar_series(acc, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in acc.Scalars(tag)]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> Path:
    from helpers import MICRO

    tmp = tmp_path_factory.mktemp("export")
    sets = MICRO + [f"data.paths=['{corpus}']", f"data.cache_dir='{tmp / 'cache'}'", "train.max_steps=12"]
    done = cli_run("--no-ui", "--run-dir", str(tmp / "run"), *[a for s in sets for a in ("--set", s)])
    assert done.returncode == 0, done.stderr
    return tmp / "run"


@pytest.mark.process
def test_every_scalar_comes_back_from_tensorboards_reader(finished_run: Path, tmp_path: Path) -> None:
    done = cli_run("export", "tensorboard", "--run-dir", str(finished_run), "--out", str(tmp_path / "tb"))
    assert done.returncode == 0, done.stderr
    assert f"view with: tensorboard --logdir {tmp_path / 'tb'}" in done.stdout and "events of" in done.stdout
    again = cli_run("export", "tensorboard", "--run-dir", str(finished_run), "--out", str(tmp_path / "tb"))
    assert again.returncode == 0 and "is already up to date with" in again.stdout  # not "0 events ... mirrored"
    acc = read_back(tmp_path / "tb" / "run")
    steps, evals = events(finished_run, "step"), events(finished_run, "eval")
    assert len(steps) == 12 and len(evals) == 3
    for tag, field, records in (("train/loss", "loss", steps), ("train/lr", "lr", steps),
                                ("train/grad_norm", "grad_norm", steps), ("perf/samples_per_s", "samples_per_s", steps),
                                ("perf/step_s", "step_s", steps), ("eval/loss", "loss", evals),
                                ("eval/accuracy", "accuracy", evals), ("eval/exact", "exact", evals),
                                ("eval/best_score", "best_score", evals), ("perf/eval_s", "seconds", evals)):
        got = scalar_series(acc, tag)
        assert [s for s, _ in got] == [r["step"] for r in records], tag
        assert [v for _, v in got] == pytest.approx([r[field] for r in records], rel=1e-6), tag  # float32
    walls = [e.wall_time for e in acc.Scalars("train/loss")]
    assert walls == pytest.approx([r["time"] for r in steps])  # the log's own times, not the export's
    # every numeric field of a step has its tag
    numeric = {k for k, v in steps[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    tags = set(acc.Tags()["scalars"])
    assert {t.split("/", 1)[1] for t in tags if t.startswith(("train/", "perf/"))} >= numeric - {
        "step", "total_steps", "time", "v"}
    # the story as text, at its step
    end = [(t.step, t.tensor_proto.string_val[0].decode()) for t in acc.Tensors("events/run_end")]
    assert end[0][0] == 12 and "status: `completed`" in end[0][1]
    assert "events/run_start" in acc.Tags()["tensors"]
    # the config as hparams (TensorBoard's HParams tab), with the final scores as their metrics
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    assert start.session_start_info.hparams["model.dim"].number_value == 32
    assert start.session_start_info.hparams["train.max_steps"].number_value == 12
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])
    assert "eval/exact" in {m.name.tag for m in experiment.experiment.metric_infos}


@pytest.mark.process
def test_an_export_run_again_adds_nothing_and_a_replaced_log_starts_over(finished_run: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    for _ in range(2):
        assert cli_run("export", "tensorboard", "--run-dir", str(run)).returncode == 0
    assert [s for s, _ in scalar_series(read_back(run / "tensorboard"), "train/loss")] == list(range(1, 13))
    # the log replaced by another (a restored backup): the old mirror is cleared, not mixed in
    lines = (run / "events.jsonl").read_text().splitlines(keepends=True)
    (run / "events.jsonl").unlink()
    (run / "events.jsonl").write_text("".join(line for line in lines if '"step":7,' not in line))
    assert cli_run("export", "tensorboard", "--run-dir", str(run)).returncode == 0
    assert [s for s, _ in scalar_series(read_back(run / "tensorboard"), "train/loss")] == [
        s for s in range(1, 13) if s != 7]


@pytest.mark.process
def test_follow_mirrors_a_live_run_across_a_crash_a_resume_and_its_own_restart(tmp_path: Path,
                                                                               micro_args: list[str]) -> None:
    """The worker is killed (the keeper restarts it from its checkpoint: steps re-lived), the mirror is
    killed and started again, the run is stopped and resumed: each step is written once, in order, with the
    value the log first gave it."""
    run_dir = tmp_path / "run"
    started = cli_run("--detach", "--run-dir", str(run_dir), *micro_args, "--set", "train.max_steps=100000",
                      "--set", "supervisor.restart_backoff_s=0.1", "--set", "train.checkpoint_every=10",
                      TRM_TEST_STEP_SLEEP_S=0.05)
    assert started.returncode == 0, started.stderr
    out = tmp_path / "tb"
    mirror = cli("export", "tensorboard", "--run-dir", str(run_dir), "--out", str(out), "--follow", "--every", "0.2")
    try:
        wait_for(lambda: events(run_dir, "checkpoint") and events(run_dir, "step")[-1]["step"] >=
                 events(run_dir, "checkpoint")[-1]["step"] + 3, timeout=90, what="steps past a checkpoint")
        worker = json.loads((run_dir / "worker.json").read_text())["pid"]
        os.kill(worker, signal.SIGKILL)  # a crash: the keeper restarts the worker from its newest checkpoint
        wait_for(lambda: any(e.get("resumed_from") for e in events(run_dir, "run_start")), timeout=60,
                 what="the keeper's restart from the checkpoint")
        terminate(mirror)  # the mirror itself is killed (SIGKILL) and started again
        mirror = cli("export", "tensorboard", "--run-dir", str(run_dir), "--out", str(out), "--follow",
                     "--every", "0.2")
        n = len(events(run_dir, "step"))
        wait_for(lambda: len(events(run_dir, "step")) > n + 10, timeout=60, what="more steps")
        assert cli_run("stop", "--run-dir", str(run_dir)).returncode == 0
        resumed = cli_run("--detach", "--resume", "--run-dir", str(run_dir), TRM_TEST_STEP_SLEEP_S=0.05)
        assert resumed.returncode == 0, resumed.stderr
        n = len(events(run_dir, "step"))
        wait_for(lambda: len(events(run_dir, "step")) > n + 10, timeout=60, what="steps after the resume")
        assert cli_run("stop", "--run-dir", str(run_dir)).returncode == 0
        assert events(run_dir, "run_end")[-1]["reason"] == "trm-tui stop"  # what asked, not the signal
        last = events(run_dir, "step")[-1]["step"]
        wait_for(lambda: (out / "run").is_dir() and last in [s for s, _ in scalar_series(read_back(out / "run"),
                                                                                          "train/loss")],
                 timeout=30, what="the mirror to catch up")
        mirror.send_signal(signal.SIGINT)  # Ctrl-C: a last read, then exit 0
        assert mirror.wait(timeout=30) == 0, mirror.stderr.read()
    finally:
        terminate(mirror)
        kill_worker(run_dir)
    steps = events(run_dir, "step")
    assert len({e["step"] for e in steps}) < len(steps)  # the crash made the run re-live steps
    first = {}
    for e in steps:
        first.setdefault(e["step"], e["loss"])
    got = scalar_series(read_back(out / "run"), "train/loss")
    assert [s for s, _ in got] == sorted(first)  # each step once, increasing
    assert [v for _, v in got] == pytest.approx([first[s] for s in sorted(first)], rel=1e-6)
    assert len(list((out / "run").glob("events.out.tfevents.*"))) >= 2  # the restarted mirror appended


@pytest.mark.process
def test_csv_one_row_per_event_one_column_per_field(finished_run: Path, tmp_path: Path) -> None:
    done = cli_run("export", "csv", "--run-dir", str(finished_run))
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [r["event"] for r in rows].count("step") == 12 and [r["event"] for r in rows].count("eval") == 3
    header = done.stdout.splitlines()[0].split(",")
    assert header[:3] == ["event", "time", "step"] and "loss" in header and "best_score" in header
    steps = events(finished_run, "step")
    assert [float(r["loss"]) for r in rows if r["event"] == "step"] == [s["loss"] for s in steps]
    assert all(r["best_score"] == "" for r in rows if r["event"] == "step")  # a field the event lacks: empty

    out = tmp_path / "starts.csv"
    assert cli_run("export", "csv", "--run-dir", str(finished_run), "--events", "run_start,run_end",
                   "--out", str(out)).returncode == 0
    rows = list(csv.DictReader(out.open()))
    assert [r["event"] for r in rows] == ["run_start", "run_end"]
    assert json.loads(rows[0]["config"])["model"]["dim"] == 32  # nested values as JSON

    bad = cli_run("export", "csv", "--run-dir", str(finished_run), "--events", "stpe")
    assert bad.returncode == 2 and "'stpe' is not an event kind; choose from run_start, step" in bad.stderr
    missing = cli_run("export", "tensorboard", "--run-dir", str(tmp_path / "nothing"))
    assert missing.returncode == 2 and "has no run (no events.jsonl)" in missing.stderr
    unwritable = cli_run("export", "csv", "--run-dir", str(finished_run), "--out", str(tmp_path / "no" / "x.csv"))
    assert unwritable.returncode == 2 and "cannot write" in unwritable.stderr and "Traceback" not in unwritable.stderr


@pytest.mark.process
def test_runs_csv_is_a_sweep_in_one_table(finished_run: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "runs"
    shutil.copytree(finished_run, root / "a")
    shutil.copytree(finished_run, root / "b")
    (root / "b" / "config.toml").write_text("model = [\n")  # a corrupt config: its row says so
    done = cli_run("runs", "--root", str(root), "--csv")
    assert done.returncode == 0, done.stderr
    rows = {Path(r["run_dir"]).name: r for r in csv.DictReader(io.StringIO(done.stdout))}
    assert rows["a"]["model.dim"] == "32" and rows["a"]["train.learning_rate"] == "0.003"
    assert rows["a"]["state"] == "completed" and float(rows["a"]["loss"]) == events(finished_run, "step")[-1]["loss"]
    assert rows["b"]["model.dim"] == "" and "config.toml" in rows["b"]["config_error"]


@pytest.mark.process
def test_without_tensorboardx_the_export_says_how_to_get_it(finished_run: Path) -> None:
    code = ("import sys; sys.modules['tensorboardX'] = None\n"  # as if it were not installed
            "from trm_tui.cli import main\n"
            f"sys.exit(main(['export', 'tensorboard', '--run-dir', {str(finished_run)!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=worker_env())
    assert done.returncode == 2
    assert "needs tensorboardX: pip install 'trm-tui[tensorboard]'" in done.stderr and "Traceback" not in done.stderr
    assert not (finished_run / "tensorboard").exists()


@pytest.mark.process
def test_the_keeper_mirrors_the_run_for_its_whole_life(tmp_path: Path, micro_args: list[str]) -> None:
    """``[export] tensorboard_dir``: the run's keeper keeps TensorBoard files of the run up to its last event;
    a folder it cannot write is a warning in the log and the run goes on."""
    run_dir, folder = tmp_path / "run", tmp_path / "tb"
    done = cli_run("--no-ui", "--run-dir", str(run_dir), *micro_args, "--set", "train.max_steps=10",
                   "--set", f"export.tensorboard_dir='{folder}'")
    assert done.returncode == 0, done.stderr
    wait_for(lambda: (folder / "run" / ".trm-tui-export.json").exists(), timeout=30, what="the mirror's state")
    acc = read_back(folder / "run")
    assert [s for s, _ in scalar_series(acc, "train/loss")] == list(range(1, 11))
    assert "events/run_end" in acc.Tags()["tensors"]

    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the folder should be")
    run2 = tmp_path / "run2"
    done = cli_run("--no-ui", "--run-dir", str(run2), *micro_args, "--set", "train.max_steps=6",
                   "--set", f"export.tensorboard_dir='{blocked}'")
    assert done.returncode == 0, done.stderr
    assert events(run2, "run_end")[-1]["status"] == "completed"
    warned = [e["message"] for e in events(run2, "warning") if "TensorBoard mirror" in e["message"]]
    assert warned and f"cannot write the TensorBoard files in {blocked / 'run2'}" in warned[0]
