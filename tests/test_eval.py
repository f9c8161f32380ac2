"""``trm-tui eval`` on real runs: it reproduces the in-training eval of a checkpoint exactly, writes the
predictions format the browser reads, picks checkpoints and weights as asked, stops cleanly on Ctrl-C, and
writes and scores an ARC Prize submission."""

from __future__ import annotations

import json
import re
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import torch

from helpers import cli, cli_run, events, run_worker, small_arc_set
from trm_core.data.base import Batch
from trm_core.evaluate.predictions import PredictionWriter, Predictions
from trm_core.evaluate.trace import StepTrace

FIGURES = ("loss", "accuracy", "exact", "sup_steps", "samples", "masked_accuracy")
pytestmark = pytest.mark.xdist_group("eval")  # one worker trains the module's run once, not each worker its own


def _sets(**extra: object) -> list[str]:
    sets = {"model.dim": 32, "model.depth": 1, "model.latent_steps": 1, "model.refinement_blocks": 2,
            "model.max_supervision_steps": 4, "train.batch_size": 8, "train.max_steps": 20, "train.eval_every": 10,
            "train.eval_batches": 0, "train.checkpoint_every": 10, "train.threads": 1, "train.warmup_steps": 2,
            "train.learning_rate": 0.003, "train.ema_decay": 0.9} | extra
    return [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]


@pytest.fixture(scope="module")
def sudoku_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained run on a small Sudoku set whose evals saved their predictions."""
    root = tmp_path_factory.mktemp("eval")
    assert cli_run("data", "sudoku-generate", "--count", "120", "--blanks", "40", "--out", str(root / "p.csv"),
                   "--seed", "7").returncode == 0
    assert cli_run("data", "sudoku", "--csv", str(root / "p.csv"), "--out", str(root / "ds"), "--aug", "3").returncode == 0
    run = root / "run"
    done = run_worker(run, ["--set", "data.kind='puzzles'", "--set", f"data.dataset_dir='{root / 'ds'}'",
                            *_sets(**{"train.eval_save_predictions": "true"})], timeout=300)
    assert done.returncode == 0, done.stderr
    return run


def _eval(run: Path, *args: str) -> dict:
    done = cli_run("eval", "--run-dir", str(run), "--json", *args, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.process
def test_eval_of_a_checkpoint_reproduces_its_in_training_eval_exactly(sudoku_run: Path) -> None:
    in_training = {e["step"]: e for e in events(sudoku_run, "eval")}
    assert sorted(in_training) == [10, 20]
    saved = sudoku_run / "evals" / "step-10-ema-test"
    kept = sudoku_run.parent / "in-training-10"
    shutil.copytree(saved, kept)
    assert json.loads((kept / "metrics.json").read_text())["in_training"] is True
    metrics = _eval(sudoku_run, "--checkpoint", "10", "--batch-size", "8")  # the run's batches
    for name in FIGURES:
        assert metrics[name] == in_training[10][name], name
    assert metrics["examples"] == 12 and metrics["weights"] == "ema" and metrics["step"] == 10
    assert len(metrics["exact_by_step"]) == 4 and metrics["exact_by_step"][-1] == metrics["exact"]
    for array in sorted((kept / "predictions").glob("*.npy")):  # the same predictions, byte for byte
        assert np.array_equal(np.load(array), np.load(saved / "predictions" / array.name)), array.name
    other = _eval(sudoku_run, "--checkpoint", "10", "--batch-size", "5")
    assert other["accuracy"] == pytest.approx(metrics["accuracy"], abs=1e-6)  # another batch: rounding at most


@pytest.mark.process
def test_checkpoints_and_weights_are_picked_as_asked(sudoku_run: Path) -> None:
    scores = {e["step"]: (e["exact"], e["accuracy"], e["step"]) for e in events(sudoku_run, "eval")}
    best = _eval(sudoku_run, "--checkpoint", "best", "--no-predictions")
    assert best["step"] == max(scores, key=lambda s: scores[s])  # ties on exact: accuracy, then the later step
    assert not (sudoku_run / "evals" / f"step-{best['step']}-ema-test" / "predictions").exists()
    said = cli_run("eval", "--run-dir", str(sudoku_run), "--checkpoint", "best", "--no-predictions").stderr
    assert f"--checkpoint best: step {best['step']}, exact" in said
    latest = _eval(sudoku_run, "--weights", "raw", "--limit", "5")
    assert latest["step"] == 20 and latest["weights"] == "raw" and latest["examples"] == 5
    assert latest["folder"].endswith("step-20-raw-test-first5")
    train = _eval(sudoku_run, "--split", "train", "--limit", "16", "--batch-size", "16")
    assert train["split"] == "train" and train["samples"] == 16
    for args, says in ((["--checkpoint", "7"], "checkpoints at steps: 10, 20"),
                       (["--checkpoint", "soon"], "expected latest, best or a step"),
                       (["--limit", "0"], "--limit 0"), (["--device", "cuda:9"], "cuda:9")):
        done = cli_run("eval", "--run-dir", str(sudoku_run), *args)
        assert done.returncode == 2 and says in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)
    missing = cli_run("eval", "--run-dir", str(sudoku_run.parent / "nothing"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr


@pytest.mark.process
def test_ctrl_c_stops_the_eval_and_leaves_nothing(sudoku_run: Path) -> None:
    before = sorted(p.name for p in (sudoku_run / "evals").iterdir())
    proc = cli("eval", "--run-dir", str(sudoku_run), "--split", "train", "--batch-size", "1")
    assert proc.stderr is not None
    for line in proc.stderr:  # the progress lines: stop it 10% in
        if line.startswith("eval: ") and not line.startswith("eval: 0/"):
            proc.send_signal(signal.SIGINT)
            break
    _, err = proc.communicate(timeout=600)  # a deadline no load reaches: an idle machine answers in a second
    assert proc.returncode == 130 and "interrupted; nothing written" in err and "Traceback" not in err
    assert sorted(p.name for p in (sudoku_run / "evals").iterdir()) == before  # no folder, no temp folder


def test_predictions_keep_every_step_as_changes_and_give_it_back(tmp_path: Path) -> None:
    """A scripted eval of 3 rows over 3 steps, one row exiting after step 2: every answer comes back."""
    answers = torch.tensor([[[1, 2, 3, 4], [5, 6, 7, 8], [1, 1, 1, 1]],
                            [[1, 2, 9, 4], [5, 6, 7, 8], [2, 2, 1, 1]],
                            [[1, 2, 9, 9], [5, 6, 7, 8], [2, 2, 1, 1]]])  # (step, row, seq)
    targets = torch.tensor([[1, 2, 9, 9], [5, 6, 7, 0], [2, 2, 1, 1]])
    records = []
    trace = StepTrace(0.0, records.append)
    trace.start(Batch(torch.zeros(3, 4, dtype=torch.long), targets), 3)
    rows = torch.arange(3)
    for sup in range(3):
        a = answers[sup][rows]
        exact = (a == targets[rows]).all(1)
        exiting = torch.tensor([False, True, False])[rows] if sup == 1 else torch.full((len(rows),), sup == 2)
        halt = torch.tensor([-1.0, 2.0, 0.5])[rows] if sup else torch.full((len(rows),), -3.0)
        trace.step(rows, sup, a, halt, exact, exact.float(), exiting)
        rows = rows[~exiting]
    trace.finish()
    writer = PredictionWriter(tmp_path / "p", 3, 4, 3, 12, False, {"task": "tokens"})
    writer.add(records[0])
    writer.close()
    p = Predictions.open(tmp_path / "p")
    for row, exit_step in ((0, 3), (1, 2), (2, 3)):
        for step in range(1, exit_step + 1):
            assert p.answer(row, step).tolist() == answers[step - 1][row].tolist(), (row, step)
        assert p.answer(row).tolist() == answers[exit_step - 1][row].tolist()
    assert p.changed(0, 2).tolist() == [2] and p.changed(0, 3).tolist() == [3] and p.changed(2, 2).tolist() == [0, 1]
    assert p["exit_step"].tolist() == [3, 2, 3] and p["halt_step"].tolist() == [3, 2, 2]
    assert p["exact"][0].tolist() == [False, False, True] and bool(np.isnan(p["halt_prob"][1, 2]))
    with pytest.raises(Exception, match="holds no predictions"):
        Predictions.open(tmp_path)


@pytest.mark.process
def test_an_arc_eval_writes_a_submission_the_arc_prize_way(tmp_path: Path) -> None:
    puzzles, solutions, _ = small_arc_set(tmp_path)
    src = tmp_path / "arc"
    run = tmp_path / "run"
    trained = run_worker(run, ["--set", "data.kind='puzzles'", "--set", f"data.dataset_dir='{tmp_path / 'ds'}'",
                               *_sets(**{"model.dim": 16, "model.refinement_blocks": 1, "model.max_supervision_steps": 2,
                                         "train.batch_size": 6, "train.max_steps": 4, "train.eval_every": 4,
                                         "train.checkpoint_every": 4})], timeout=300)
    assert trained.returncode == 0, trained.stderr
    in_training = events(run, "eval")[-1]
    sub = tmp_path / "submission.json"
    metrics = _eval(run, "--batch-size", "6", "--arc-submission", str(sub), "--solutions",
                    str(src / "arc-agi_evaluation_solutions.json"))
    assert metrics["pass@2"] == in_training["pass@2"] and metrics["pass@1"] == in_training["pass@1"]
    written = json.loads(sub.read_text())
    assert sorted(written) == sorted(puzzles)
    for task, attempts in written.items():
        assert len(attempts) == 2 and all(set(a) == {"attempt_1", "attempt_2"} for a in attempts)
    # the ARC Prize's score of the file equals the eval's pass@2 (every puzzle voted on)
    assert metrics["arc_prize_score"] == pytest.approx(metrics["pass@2"])
    votes = json.loads((Path(metrics["folder"]) / "arc_votes.json").read_text())
    assert sorted(votes) == sorted(puzzles) and len(votes["p0000000"]) == 2
    assert sum(a["votes"] for a in votes["p0000000"][0]["answers"]) == 3  # the original and its 2 disguises
    several = _eval(run, "--batch-size", "6", "--trajectories", "2", "--noise", "0.5", "--no-predictions")
    votes = json.loads((Path(several["folder"]) / "arc_votes.json").read_text())
    assert sum(a["votes"] for a in votes["p0000000"][0]["answers"]) == 6  # each disguise x trajectory votes
    assert several["pass@2"] is not None and several["forward_steps"] == 2 * several["sup_steps"]
    # a submission scored against solutions it answers right scores 1
    from trm_core.evaluate.arc.submission import score
    right = {t: [{"attempt_1": [[0]], "attempt_2": g} for g in grids] for t, grids in solutions.items()}
    assert score(right, solutions)["score"] == 1.0 and score({}, solutions)["score"] == 0.0
    sudoku_like = cli_run("eval", "--run-dir", str(run), "--arc-submission", str(sub), "--split", "train")
    assert sudoku_like.returncode == 2 and "test split" in sudoku_like.stderr
    # solve: a task of the dataset votes with its own embeddings; a new one with the blank identifier
    known = len([n for n in json.loads((tmp_path / "ds" / "identifiers.json").read_text()) if n.startswith("p0000001")])
    for task_id, says in (("p0000001", f"its own {known} puzzle embeddings vote"), ("mine", "blank identifier")):
        task = tmp_path / f"{task_id}.json"
        task.write_text(json.dumps({"train": puzzles["p0000001"]["train"], "test": [{"input": [[2, 0], [0, 2]]}]}))
        done = cli_run("solve", "--run-dir", str(run), str(task), "--json", timeout=120)
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout)
        assert says in out["note"] and len(out["answers"]) == 1
        answer = out["answers"][0]
        assert isinstance(answer["attempt_1"], list) and sum(v["votes"] for v in answer["votes"]) == \
            (known if task_id == "p0000001" else 8)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"test": [{"input": [[1, 12]]}]}))
    refused = cli_run("solve", "--run-dir", str(run), str(bad))
    assert refused.returncode == 2 and "colours 0..9" in refused.stderr


@pytest.mark.process
def test_solve_draws_a_sudoku_of_ones_own_and_refuses_a_bad_one(sudoku_run: Path) -> None:
    puzzle = "2....7.9.376..9.25...54.6.34.2.3..8161....34.5...147.976.9.....9416...3.825...916"
    drawn = cli_run("solve", "--run-dir", str(sudoku_run), puzzle, "--steps", timeout=120)
    assert drawn.returncode == 0, drawn.stderr
    assert [f"after supervision step {s} of 4" in drawn.stdout for s in (1, 2, 3, 4)] == [True] * 4
    assert "│" in drawn.stdout and "solution" in drawn.stdout
    as_json = cli_run("solve", "--run-dir", str(sudoku_run), "-", "--json", stdin_text=puzzle)
    assert as_json.returncode == 0, as_json.stderr
    out = json.loads(as_json.stdout)["answers"][0]
    assert len(out["answer"]) == 81 and len(out["steps"]) == 4 and out["steps"][-1] == out["answer"]
    # the givens stay in place whatever the model wrote there; its disagreements are counted and named
    assert all(a == p for a, p in zip(out["answer"], puzzle) if p != ".")
    changed = [i for i, p in enumerate(puzzle) if p != "." and out["model_answer"][i] != p]
    assert out["givens_disagreed"] == len(changed) == len(out["disagreed"])
    assert [d["cell"] for d in out["disagreed"]] == [f"r{i // 9 + 1}c{i % 9 + 1}" for i in changed]
    from trm_core.prep.sudoku_rules import is_valid_solution
    assert out["valid"] == is_valid_solution([int(c) if c.isdigit() else 0 for c in out["answer"]])
    said = f"the model disagreed with {len(changed)} of the 41 givens" if changed else "the model kept all 41 givens"
    assert said in " ".join(drawn.stdout.split())
    assert out["problems"] == [] if out["valid"] else out["problems"]
    several = cli_run("solve", "--run-dir", str(sudoku_run), puzzle, "--json", "--trajectories", "3", "--noise", "0.5",
                      "--supervision-steps", "6")
    assert several.returncode == 0, several.stderr
    kept = json.loads(several.stdout)["answers"][0]
    assert len(kept["trajectories"]) == 3 and len(kept["steps"]) == 6
    assert kept["trajectories"][kept["chosen"]]["confidence"] == max(t["confidence"] for t in kept["trajectories"])
    assert kept["trajectories"][kept["chosen"]]["answer"] == kept["model_answer"]
    listed = cli_run("solve", "--run-dir", str(sudoku_run), puzzle, "--trajectories", "3", "--noise", "0.5")
    assert "3 trajectories (* the kept one" in listed.stdout and listed.stdout.count("stopped after step 4") == 3
    twice = "3" + puzzle[1:8] + "3" + puzzle[9:]  # two 3s in row 1
    for text, says in ((puzzle[:80], "has 80"), (puzzle[:80] + "x", "found 'x'"),
                       (twice, "row 1 has 2 3s (r1c1, r1c9)"), ("nothere/puzzle.txt", "no such file"),
                       ("missing.json", "no such file")):
        bad = cli_run("solve", "--run-dir", str(sudoku_run), text)
        assert bad.returncode == 2 and says in bad.stderr and "Traceback" not in bad.stderr


def test_a_sudoku_answer_keeps_the_givens_and_names_the_ones_the_model_changed() -> None:
    """``trm-tui solve`` printed a small model's rewritten givens as its answer (29 of 31 changed)."""
    import numpy as np

    from trm_core.evaluate.solve_puzzle import sudoku_verdict

    solution = "534678912672195348198342567859761423426853791713924856961537284287419635345286179"
    puzzle = "." * 3 + solution[3:]
    tokens = lambda text: np.array([1 if c == "." else int(c) + 1 for c in text])  # noqa: E731
    model = list(solution)
    model[0] = "1"  # a blank filled wrong
    model[10] = "9"  # a given (r2c2 = 7) rewritten
    verdict = sudoku_verdict(tokens(puzzle), tokens("".join(model)))
    assert verdict.filled[10] == tokens(puzzle)[10] and verdict.filled[0] == 2  # given kept; the blank as answered
    assert verdict.disagreed == [{"cell": "r2c2", "given": 7, "model": 9}] and not verdict.valid
    assert verdict.problems == ["row 1 has 2 1s (r1c1, r1c8)", "column 1 has 2 1s (r1c1, r3c1)",
                                "box 1 has 2 1s (r1c1, r3c1)"]
    assert verdict.describe() == ["r2c2: given 7, model 9"]
    model[0] = "5"
    assert sudoku_verdict(tokens(puzzle), tokens("".join(model))).valid  # the givens in place make it a solution


def test_best_breaks_ties_by_accuracy_then_the_later_step_and_says_so(tmp_path: Path) -> None:
    """Every eval at exact 0.000 picked step 100 (accuracy 0.476) over step 150 (0.531) without a word."""
    from trm_core.evaluate.loaded import pick_checkpoint
    from trm_core.rundir.checkpoints import save_checkpoint
    from trm_core.rundir.layout import RunDir
    from trm_core.rundir.records import as_line

    from helpers import record

    run = RunDir.at(tmp_path / "run")
    run.checkpoints.mkdir(parents=True)
    for step in (50, 100, 150, 200):
        save_checkpoint(run.checkpoints, {"step": step, "model": {}}, step=step, epoch=1, loss=1.0, config_hash="x")
    figures = {50: 0.40, 100: 0.476, 150: 0.531, 200: 0.531}
    with open(run.events, "w") as fh:
        for step, acc in figures.items():
            fh.write(json.dumps(as_line(record("eval", step=step, loss=1.0, accuracy=acc, exact=0.0), 1.0)) + "\n")
    chosen = pick_checkpoint(run, "best")
    assert chosen.info.step == 200
    assert chosen.why == ("--checkpoint best: step 200, exact 0.0000, tied on exact with steps 50, 100, 150; "
                          "chosen by accuracy 0.5310, then the later step")


@pytest.mark.process
def test_a_truncated_newest_checkpoint_is_named_wherever_a_checkpoint_is_chosen(sudoku_run: Path,
                                                                                tmp_path: Path) -> None:
    """eval and solve silently used an older checkpoint, and status still said "checkpoint step 20"."""
    run = tmp_path / "run"
    shutil.copytree(sudoku_run, run)
    newest = sorted((run / "checkpoints").glob("step-*.pt"))[-1]
    with open(newest, "r+b") as fh:
        fh.truncate(newest.stat().st_size // 2)
    says = f"skipped {newest.name} (step 20): {newest.name} has"
    done = cli_run("eval", "--run-dir", str(run), "--no-predictions", "--json", timeout=300)
    assert done.returncode == 0 and json.loads(done.stdout)["step"] == 10
    assert says in done.stderr and "using step-00000010.pt (step 10)" in done.stderr
    solved = cli_run("solve", "--run-dir", str(run), "." * 81, "--json", timeout=120)
    assert solved.returncode == 0 and says in solved.stderr
    status = cli_run("status", "--run-dir", str(run))
    assert "checkpoint  step 10," in status.stdout
    assert f"SKIPPED     checkpoint {newest.name} (step 20): {newest.name} has" in status.stdout
    as_json = json.loads(cli_run("status", "--json", "--run-dir", str(run)).stdout)
    assert as_json["checkpoint_step"] == 10 and as_json["checkpoint_skipped"][0].startswith(newest.name)


@pytest.mark.process
def test_more_supervision_steps_and_halting_at_test_time(sudoku_run: Path) -> None:
    """The same weights run for 8 supervision steps where training used 4, and stopped by their halting head:
    at the trained settings the eval is today's, figure for figure and in the same folder; beyond them the
    first 4 steps are the trained eval's own, and each setting gets a folder of its own."""
    trained = _eval(sudoku_run, "--checkpoint", "20", "--batch-size", "8")
    same = _eval(sudoku_run, "--checkpoint", "20", "--batch-size", "8", "--supervision-steps", "4")
    for name in FIGURES + ("exact_by_step",):
        assert same[name] == trained[name], name
    assert same["folder"] == trained["folder"] and same["supervision_steps"] == 4 == same["trained_supervision_steps"]

    deeper = _eval(sudoku_run, "--checkpoint", "20", "--batch-size", "8", "--supervision-steps", "8")
    assert Path(deeper["folder"]).name == "step-20-ema-test-sup8" and Path(trained["folder"]).is_dir()
    assert deeper["supervision_steps"] == 8 and deeper["trained_supervision_steps"] == 4
    assert len(deeper["exact_by_step"]) == 8 and deeper["exact_by_step"][:4] == trained["exact_by_step"]
    assert deeper["exact_by_step"][-1] == deeper["exact"] and deeper["sup_steps"] == 8.0
    assert deeper["steps_used"] == [0] * 7 + [deeper["examples"]] and deeper["compute_saved"] == 0.0
    browsed = Predictions.open(Path(deeper["folder"]) / "predictions")
    assert browsed.max_steps == 8 and browsed.index["trained_supervision_steps"] == 4
    from rich.console import Console
    from trm_tui.predictions.examples import Examples

    examples, console = Examples(Path(deeper["folder"])), Console(width=100, record=True, no_color=True)
    for step in (4, 5):  # the browser marks the steps training never ran
        console.print(examples.picture(examples.rows[0], step, 100))
    at_4, at_5 = console.export_text().split("step 5/8")
    assert "step 4/8" in at_4 and "past the trained" not in at_4 and "(past the trained 4)" in at_5

    halted = _eval(sudoku_run, "--checkpoint", "20", "--batch-size", "8", "--supervision-steps", "8", "--halt", "0.3")
    assert Path(halted["folder"]).name == "step-20-ema-test-sup8-halt0.3" and halted["halt_probability"] == 0.3
    assert len(halted["steps_used"]) == 8 and sum(halted["steps_used"]) == halted["examples"]
    mean = sum(k * n for k, n in enumerate(halted["steps_used"], 1)) / halted["examples"]
    assert halted["steps_used_mean"] == pytest.approx(mean, abs=1e-4) == pytest.approx(halted["sup_steps"], abs=1e-4)
    assert halted["compute_saved"] == pytest.approx(1 - mean / 8, abs=1e-4)


@pytest.mark.process
def test_trajectories_and_a_sweep_over_them(sudoku_run: Path) -> None:
    """One trajectory without noise is today's eval, in today's folder; a sweep's rows are the single evals
    with the same settings, figure for figure; a seeded noisy eval reruns to the same figures."""
    trained = _eval(sudoku_run, "--checkpoint", "20", "--batch-size", "8")
    one = _eval(sudoku_run, "--checkpoint", "20", "--batch-size", "8", "--trajectories", "1", "--noise", "0")
    assert {k: one[k] for k in FIGURES} == {k: trained[k] for k in FIGURES} and one["folder"] == trained["folder"]
    noisy = _eval(sudoku_run, "--checkpoint", "20", "--batch-size", "8", "--trajectories", "3", "--noise", "0.5",
                  "--select", "vote", "--seed", "2")
    assert Path(noisy["folder"]).name == "step-20-ema-test-k3-noise0.5-vote-seed2"
    assert noisy["forward_steps"] == 3 * noisy["sup_steps"] == 12 and noisy["trajectories"] == 3
    browsed = Predictions.open(Path(noisy["folder"]) / "predictions")
    assert browsed.trajectories == 3 and browsed["chosen"].max() < 3
    from rich.console import Console
    from trm_tui.predictions.examples import Examples

    examples, console = Examples(Path(noisy["folder"])), Console(width=100, record=True, no_color=True)
    console.print(examples.picture(examples.rows[0], 4, 100))
    shown = console.export_text()
    kept = int(browsed["chosen"][0])
    assert "3 trajectories (noise 0.5); kept: the most common answer" in shown
    assert [line.startswith("*") for line in shown.splitlines() if "stopped at step" in line] == \
        [k == kept for k in range(3)]
    again = _eval(sudoku_run, "--checkpoint", "20", "--batch-size", "8", "--trajectories", "3", "--noise", "0.5",
                  "--select", "vote", "--seed", "2", "--no-predictions")
    assert {k: again[k] for k in FIGURES} == {k: noisy[k] for k in FIGURES}

    done = cli_run("eval", "--run-dir", str(sudoku_run), "--checkpoint", "20", "--batch-size", "8", "--json",
                   "--seed", "2", "--sweep", "steps=4,6 trajectories=1,3 noise=0.5 select=vote", timeout=300)
    assert done.returncode == 0, done.stderr
    swept = json.loads(done.stdout)
    assert [(r["steps"], r["trajectories"]) for r in swept["rows"]] == [(4, 1), (4, 3), (6, 1), (6, 3)]
    same = swept["rows"][1]
    for name in ("exact", "accuracy", "sup_steps", "forward_steps"):
        assert same[name] == noisy[name], name
    deeper = _eval(sudoku_run, "--checkpoint", "20", "--batch-size", "8", "--supervision-steps", "6",
                   "--noise", "0.5", "--select", "vote", "--seed", "2", "--no-predictions")
    assert swept["rows"][2]["exact"] == deeper["exact"] and swept["rows"][2]["accuracy"] == deeper["accuracy"]
    on_disk = json.loads(Path(swept["file"]).read_text())
    assert on_disk["rows"] == swept["rows"] and on_disk["complete"] is True


@pytest.mark.parametrize("flag, value, said", [("--supervision-steps", "0", "must be at least 1"),
                                               ("--supervision-steps", "two", "not a whole number"),
                                               ("--halt", "1.5", "between 0 and 1"), ("--halt", "-0.1", "between 0 and 1"),
                                               ("--trajectories", "0", "must be at least 1"),
                                               ("--noise", "-0.1", "must be 0 or more"),
                                               ("--noise", "nan", "must be 0 or more"),
                                               ("--select", "best", "invalid choice")])
def test_a_bad_test_time_setting_names_its_flag(tmp_path: Path, flag: str, value: str, said: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from trm_tui.cli.main import main

    with pytest.raises(SystemExit) as exit_:
        main(["eval", "--run-dir", str(tmp_path), flag, value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}" in err and said in err


@pytest.mark.parametrize("args, said", [(["--sweep", "steps=4,x"], "--sweep 'steps=4,x': 'steps=4,x' holds a value"),
                                        (["--sweep", "depth=4"], "is not NAME=V1,V2"),
                                        (["--sweep", "trajectories=0"], "trajectories must be between 1 and 1024"),
                                        # one validator for a flag and its sweep axis: the bounds hold on both
                                        (["--sweep", "noise=inf"], "noise must be between 0 and 100"),
                                        (["--noise", "1e308"], "--noise must be between 0 and 100"),
                                        (["--sweep", "steps=40000"], "steps must be between 1 and 1024"),
                                        (["--supervision-steps", "32768"], "--supervision-steps must be between 1 and 1024"),
                                        (["--trajectories", "100000"], "--trajectories must be between 1 and 1024"),
                                        # rows are examples x trajectories: a batch that cannot fit is refused
                                        (["--out", "/etc/passwd"], "/etc/passwd is a file, not a folder"),
                                        (["--trajectories", "1024", "--batch-size", "100000"],
                                         "--batch-size 100000: 100000 examples x 1024 trajectories need about"),
                                        (["--settle", "5", "--trajectories", "4"], "--settle must be 0 (off) or between 2")])
def test_a_bad_sweep_or_settle_names_itself(sudoku_run: Path, args: list[str], said: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from trm_tui.cli.main import main

    assert main(["eval", "--run-dir", str(sudoku_run), "--checkpoint", "20", *args]) == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err, err


@pytest.mark.process
def test_the_in_training_eval_runs_with_the_runs_eval_section(sudoku_run: Path, tmp_path: Path) -> None:
    """[eval] settings reach the in-training eval (its event, its saved folder), and trm-tui eval runs a run's
    checkpoints with them by default, to the same figures; --as-trained runs it as trained."""
    run = tmp_path / "run"
    sets = _sets(**{"train.max_steps": 10, "train.eval_save_predictions": "true", "eval.supervision_steps": 6,
                    "eval.trajectories": 2, "eval.noise": 0.2, "eval.seed": 1})
    done = run_worker(run, ["--set", "data.kind='puzzles'", "--set", f"data.dataset_dir='{sudoku_run.parent / 'ds'}'",
                            *sets], timeout=300)
    assert done.returncode == 0, done.stderr
    in_training = events(run, "eval")[-1]
    assert in_training["forward_steps"] == 12 and in_training["sup_steps"] == 6
    saved = run / "evals" / "step-10-ema-test-sup6-k2-noise0.2-q-seed1"
    assert json.loads((saved / "metrics.json").read_text())["trajectories"] == 2
    again = _eval(run, "--checkpoint", "10", "--batch-size", "8", "--no-predictions")
    assert Path(again["folder"]) == saved
    for name in FIGURES:
        assert again[name] == in_training[name], name
    plain = _eval(run, "--checkpoint", "10", "--batch-size", "8", "--as-trained", "--no-predictions")
    assert plain["supervision_steps"] == 4 and plain["trajectories"] == 1 and "forward_steps" not in plain


@pytest.mark.process
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_in_a_sweep_keeps_the_rows_done(sudoku_run: Path, sig: int) -> None:
    """Ctrl-C or SIGTERM: the rows done are kept, and no hidden temporary is left behind (nor a dead eval's)."""
    evals = sudoku_run.parent / f"sweep-evals-{sig}"
    (evals / ".step-20-ema-test.tmp-999999999").mkdir(parents=True)  # a killed eval's: its pid is long gone
    proc = cli("eval", "--run-dir", str(sudoku_run), "--checkpoint", "20", "--batch-size", "1", "--sweep",
               "steps=1,1000", "--out", str(evals))
    assert proc.stdout is not None
    for line in proc.stdout:  # the table: the first row is done, the second (1,000 steps) is running
        if line.split()[:2] == ["1", "1"]:
            proc.send_signal(sig)
            break
    out, err = proc.communicate(timeout=600)  # a deadline no load reaches: an idle machine answers in a second
    assert proc.returncode == 130 and "interrupted; 1 of 2 settings done, kept" in err and "Traceback" not in err
    kept = json.loads((evals / "sweep-step-20-ema-test-steps=1,1000" / "metrics.json").read_text())
    assert [r["steps"] for r in kept["rows"]] == [1] and kept["complete"] is False
    assert "1 of 2 settings written" in out and not list(evals.glob(".*")), list(evals.glob(".*"))


def test_a_runs_model_exported_as_a_folder_answers_as_the_run_does(sudoku_run: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """trm-tui export model: safetensors, config.json and a model card; loaded back, the network gives the
    checkpoint's logits and halting logits at every supervision step, and eval --model gives the run's own eval
    figure for figure; a used --out and a folder that is not a model are refused by name."""
    from trm_core.config import ConfigError
    from trm_core.evaluate import loaded as loading
    from trm_core.weights.model_folder import load_model_folder
    from trm_core.rundir.layout import RunDir
    from trm_tui.cli.main import main

    out = tmp_path / "model"
    assert main(["export", "model", "--run-dir", str(sudoku_run), "--checkpoint", "20", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    card = (out / "README.md").read_text()
    ema_eval = [e for e in events(sudoku_run, "eval") if e["step"] == 20][0]
    assert "library_name: trm-tui" in card and f"exact {ema_eval['exact']:.4f}" in card and "ema weights" in card
    model, config = load_model_folder(out)
    assert config["task"] == "sudoku" and config["trained"]["step"] == 20 and config["vocab_size"] == 11
    reference = loading.load(RunDir.at(sudoku_run), "20", device="cpu")
    batch = reference.dataset.examples("test", 0, 6)
    with torch.inference_mode():
        ours = model.initial_state(6, reference.cfg.model.seq_len)
        theirs = reference.ev.model.initial_state(6, reference.cfg.model.seq_len)
        for _ in range(reference.cfg.model.max_supervision_steps):
            a, b = model(batch.inputs, *ours), reference.ev.model(batch.inputs, *theirs)
            assert torch.equal(a.logits, b.logits) and torch.equal(a.halt_logit, b.halt_logit)
            ours, theirs = (a.y, a.z), (b.y, b.z)
    dataset = events(sudoku_run, "run_start")[0]["config"]["data"]["dataset_dir"]
    by_run = _eval(sudoku_run, "--checkpoint", "20", "--no-predictions", "--out", str(tmp_path / "evals"))
    by_model = cli_run("eval", "--model", str(out), "--dataset", dataset, "--json", "--no-predictions",
                       XDG_CACHE_HOME=str(tmp_path / "cache"), timeout=300)
    assert by_model.returncode == 0, by_model.stderr
    as_model = json.loads(by_model.stdout)
    assert {k: as_model[k] for k in FIGURES} == {k: by_run[k] for k in FIGURES}  # the round trip, figure for figure
    assert as_model["folder"].startswith(str(tmp_path / "cache" / "trm-tui" / "models"))
    capsys.readouterr()
    assert main(["export", "model", "--run-dir", str(sudoku_run), "--out", str(out)]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text('{"architectures": ["BertModel"]}')
    with pytest.raises(ConfigError, match="not a TRM model's config"):
        load_model_folder(tmp_path / "other")


def test_the_eval_batch_counts_trajectories_as_rows(sudoku_run: Path) -> None:
    """With K trajectories an example is K rows: the batch chosen holds 256 rows on a CPU, not 256 examples."""
    from trm_tui.cli.main import main

    evals = sudoku_run.parent / "rows-evals"
    assert main(["eval", "--run-dir", str(sudoku_run), "--checkpoint", "20", "--limit", "8", "--trajectories", "64",
                 "--noise", "0.1", "--no-predictions", "--out", str(evals)]) == 0
    metrics = json.loads(next(evals.glob("*/metrics.json")).read_text())
    assert metrics["batch_size"] == 256 // 64 and metrics["examples"] == 8


def test_a_model_folder_is_read_by_its_content_and_refused_where_it_lies(sudoku_run: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """--model's cached run is keyed on the weights' bytes (a file replaced with the same size and time is another
    model); a config.json that asks for what cannot be (a negative or non-numeric step, a model larger than its
    weights, ten million trajectories) and weights that are not finite are refused by name, before allocating."""
    import os

    from safetensors.torch import load_file, save_file

    from trm_core.config import ConfigError
    from trm_core.weights.model_folder import load_model_folder
    from trm_core.weights.model_run import model_run
    from trm_tui.cli.main import main

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "model"
    assert main(["export", "model", "--run-dir", str(sudoku_run), "--checkpoint", "20", "--out", str(out)]) == 0
    weights, config_file = out / "model.safetensors", out / "config.json"
    first = model_run(str(out), None)
    state, stat, data = load_file(weights), weights.stat(), bytearray(weights.read_bytes())
    data[-4:] = bytes(4)  # another value in the last tensor: the same size; then its time put back, as cp -p does
    weights.write_bytes(data)
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert weights.stat().st_size == stat.st_size and model_run(str(out), None).root != first.root
    save_file({**state, "to_logits.weight": torch.full_like(state["to_logits.weight"], float("inf"))}, weights)
    with pytest.raises(ConfigError, match=r"to_logits\.weight: \d+ of \d+ values are NaN or infinite"):
        load_model_folder(out)
    save_file(state, weights)
    config = json.loads(config_file.read_text())
    for change, said in (({"trained": {"step": -5}}, '"step": -5}; expected a whole number'),
                         ({"trained": {"step": "abc"}}, '"step": "abc"}; expected a whole number'),
                         ({"model": {**config["model"], "dim": 1_000_000}}, "the config's model wants"),
                         ({"eval": {"trajectories": 10_000_000}}, "eval.trajectories"),
                         ({"vocab_size": "11"}, '"vocab_size" is "11"')):
        config_file.write_text(json.dumps(config | change))
        with pytest.raises(ConfigError, match=re.escape(said)):
            model_run(str(out), None)


def test_an_eval_says_what_it_costs_shows_progress_inside_a_batch_and_why_escalating_saved_little(
        sudoku_run: Path) -> None:
    """The start line says what the test-time settings cost against the eval as trained; the progress moves
    inside a batch (one batch holds every example here); --escalate on a young model says why it escalated all."""
    trained = events(sudoku_run, "run_start")[0]["config"]["model"]["max_supervision_steps"]
    done = cli_run("eval", "--run-dir", str(sudoku_run), "--checkpoint", "20", "--limit", "4", "--batch-size", "4",
                   "--supervision-steps", str(2 * trained), "--trajectories", "4", "--noise", "0.1", "--halt", "0.999",
                   "--escalate", "--no-predictions", "--out", str(sudoku_run.parent / "cost-evals"), timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"up to 8x the compute of the eval as trained ({2 * trained} supervision steps x 4 trajectories per " \
           f"example, against {trained})" in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("eval: ")]
    assert len(lines) >= 3, done.stderr  # not one line at the end of the only batch
    assert "of the examples ran the 4 trajectories: the plain trajectory's halting head was sure of almost " \
           "nothing" in done.stderr


def _contents(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


HOSTILE = st.one_of(st.text(max_size=12), st.sampled_from(
    ["-1", "0", "1e308", "nan", "inf", "-inf", "99999999999", "", " ", "../..", "/etc/passwd", "hf:../../x", "hf:-/-",
     "1,[2]", "best", "latest", "9999", "\n", "--", "-5", "steps=1,40000", "noise=inf", "cuda:7", "0x10", "1_000"]))
FLAGGED = [["eval", "--checkpoint"], ["eval", "--limit"], ["eval", "--batch-size"], ["eval", "--supervision-steps"],
           ["eval", "--trajectories"], ["eval", "--noise"], ["eval", "--halt"], ["eval", "--settle"], ["eval", "--sweep"],
           ["eval", "--split"], ["eval", "--weights"], ["eval", "--device"], ["solve", "--checkpoint"],
           ["export", "model", "--checkpoint"]]


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(command=st.sampled_from(FLAGGED + [["solve"], ["status", "--run-dir"], ["runs", "--root"], ["solve", "--model"]]),
       value=HOSTILE)
def test_hostile_values_at_the_commands_flags_are_refused_in_one_line_and_change_no_run(
        sudoku_run: Path, command: list[str], value: str) -> None:
    """Whatever a flag is given, the command answers (exit 0) or refuses in words (exit 2), never with a traceback,
    and the run it reads is left exactly as it was."""
    import contextlib
    import io
    import tempfile

    from trm_tui.cli.main import main

    before = _contents(sudoku_run)
    with tempfile.TemporaryDirectory() as scratch:
        out = ["--out", str(Path(scratch) / "out")]
        if command[0] == "eval":
            argv = [*command, value, "--run-dir", str(sudoku_run), "--limit", "2", "--no-predictions", *out]
            if command[1] == "--limit":
                argv = [*command, value, "--run-dir", str(sudoku_run), "--no-predictions", *out]
        elif command[0] == "export":
            argv = [*command, value, "--run-dir", str(sudoku_run), *out]
        elif command in (["solve", "--checkpoint"], ["solve", "--model"]):
            argv = ["solve", "0" * 81, *command[1:], value] + (["--run-dir", str(sudoku_run)]
                                                                if command[1] == "--checkpoint" else [])
        elif command == ["solve"]:
            argv = ["solve", value, "--run-dir", str(sudoku_run)]
        else:
            argv = [*command, value]
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse's own refusal of a flag's value
                code = exc.code
    said = err.getvalue()
    assert code in (0, 2) and "Traceback" not in said, (argv, code, said)
    assert code == 0 or said.strip(), (argv, "refused without a word")
    assert _contents(sudoku_run) == before, argv
