"""The predictions browser: its list and pictures (``Examples``), the renderers with and without colour, an SVG
snapshot per task kind, and its keys in a real terminal on a real run's eval, alone and from the dashboard.

The snapshot folders are written by the real ``PredictionWriter`` from scripted records (a model's answers
are what a picture of the renderer needs, not a trained model); the terminal tests use a trained run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import Terminal, cli_run, run_worker, wait_for
from trm_core.evaluate.predictions import PredictionWriter, Predictions
from trm_core.evaluate.predictions import METRICS
from trm_core.evaluate.trace import BatchRecord
from trm_tui.predictions import render
from trm_tui.predictions.browser_app import PredictionsApp
from trm_tui.predictions.examples import Examples

STEPS = 3


def _folder(root: Path, task: str, truth: np.ndarray, inputs: np.ndarray, answers: list[np.ndarray], vocab: int,
            puzzle_ids: np.ndarray | None = None, hidden: np.ndarray | None = None, **context: object) -> Path:
    """An eval folder of ``len(truth)`` examples whose answers after each step are ``answers[step]``."""
    n, seq = truth.shape
    changes = [(r, s, p, int(answers[s][r, p])) for s in range(1, STEPS) for r in range(n) for p in range(seq)
               if answers[s][r, p] != answers[s - 1][r, p]]
    exact = np.stack([(a == truth).all(1) for a in answers], 1)
    record = BatchRecord(inputs=inputs, labels=truth, hidden=hidden,
                         puzzle_ids=puzzle_ids if puzzle_ids is not None else np.zeros(n, dtype=np.int64),
                         first=answers[0], final=answers[-1], changes=np.array(changes, dtype=np.int64).reshape(-1, 4),
                         halt_prob=np.linspace(0.1, 0.9, n * STEPS, dtype=np.float32).reshape(n, STEPS), exact=exact,
                         accuracy=np.ones(n, dtype=np.float32), exit_step=np.full(n, STEPS, dtype=np.int16),
                         halt_step=np.full(n, 2, dtype=np.int16))
    folder = root / f"step-100-ema-test-{task}"
    writer = PredictionWriter(folder / "predictions", n, seq, STEPS, vocab, hidden is not None,
                              {"task": task, "step": 100, "weights": "ema", "split": "test", **context})
    writer.add(record)
    writer.close()
    (folder / METRICS).write_text(json.dumps({"score": float(exact[:, -1].mean()), "score_name": "exact"}))
    return folder


def sudoku_folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    truth = np.stack([(np.arange(81) * 4 + k) % 9 + 2 for k in range(4)]).astype(np.int64)
    inputs = np.where(rng.random((4, 81)) < 0.5, truth, 1)
    first = np.where(inputs > 1, inputs, 2)
    second = np.where(rng.random((4, 81)) < 0.6, truth, first)
    final = second.copy()
    final[0] = truth[0]  # example 0 solved at the last step
    return _folder(root, "sudoku", truth, inputs, [first, second, final], 11)


def maze_folder(root: Path) -> Path:
    side = 6
    base = np.full((side, side), 2)
    base[0, :], base[:, 0], base[-1, :], base[:, -1] = 1, 1, 1, 1
    base[1, 1], base[4, 4] = 3, 4
    truth = base.copy()
    truth[1, 2:4], truth[2:4, 3], truth[4, 3] = 5, 5, 5
    inputs, t = base.reshape(1, -1), truth.reshape(1, -1)
    answer = t.copy()
    answer[0, 9] = 2  # one path cell missed
    return _folder(root, "maze", t, inputs, [inputs.copy(), answer, answer], 6)


def arc_folder(root: Path) -> Path:
    from trm_core.prep.arc import to_canvas

    dataset = root / "arc-ds"
    dataset.mkdir()
    (dataset / "identifiers.json").write_text(json.dumps(["<blank>", "p1", "p1|||t1|||0213456789"]))
    grid_in, grid_out = np.array([[1, 2, 0], [3, 0, 0]]), np.array([[2, 1, 0], [0, 0, 3]])
    inputs = np.stack([to_canvas(grid_in, 0, 0, 2, 3)] * 2).astype(np.int64)
    truth = np.stack([to_canvas(grid_out, 0, 0, 2, 3)] * 2).astype(np.int64)
    wrong = truth.copy()
    wrong[:, 0] = 5 + 2
    return _folder(root, "arc", truth, inputs, [wrong, wrong, truth], 12, puzzle_ids=np.array([1, 1]),
                   dataset_dir=str(dataset))


def code_folder(root: Path, stray_visible: bool = False) -> Path:
    """Nine hidden bytes, one answered wrong; with ``stray_visible``, the model's own bytes at visible
    positions too (not asked, so neither counted nor shown)."""
    text = b"def add(a, b):\n    return a + b\n"
    truth = np.frombuffer(text, dtype=np.uint8).astype(np.int64)[None]
    hidden = np.zeros_like(truth, dtype=bool)
    hidden[0, 4:7] = hidden[0, 20:26] = True
    inputs = np.where(hidden, 257, truth)
    answer = truth.copy()
    answer[0, 21] = ord("x")
    if stray_visible:
        answer[0, 8:13] = ord("?")
    return _folder(root, "code", truth, inputs, [answer, answer, answer], 258, hidden=hidden)


FOLDERS = {"sudoku": sudoku_folder, "maze": maze_folder, "arc": arc_folder, "code": code_folder}


def test_the_list_sorts_and_filters_and_the_pictures_follow_the_steps(tmp_path: Path) -> None:
    ex = Examples(sudoku_folder(tmp_path))
    assert [r.solved for r in ex.rows] == [True, False, False, False]
    failures_first = ex.view("failures first")
    assert [r.solved for r in failures_first] == [False, False, False, True]
    assert [r.wrong for r in failures_first[:3]] == sorted((r.wrong for r in failures_first[:3]), reverse=True)
    assert [r.index for r in ex.view(keep="solved")] == [0]
    assert {r.index for r in ex.view(keep="failures")} == {1, 2, 3}
    assert [r.confidence for r in ex.view("least confident")] == sorted(r.confidence for r in ex.rows)
    first, last = ex.picture(ex.rows[0], 1, 80), ex.picture(ex.rows[0], STEPS, 80)
    from rich.console import Console
    console = Console(width=80, record=True, no_color=True)
    console.print(first)
    step_one = console.export_text(clear=True)
    console.print(last)
    final = console.export_text()
    assert "step 1/3" in step_one and "WRONG" in step_one and "answer" in step_one and "truth" in step_one
    assert "step 3/3" in final and "RIGHT" in final and "changed at this step" in final


def test_the_code_task_counts_and_shows_only_the_hidden_bytes(tmp_path: Path) -> None:
    """The tiny preset's eval said "WRONG: 59 cells" where 15 bytes were hidden and 14 wrong: every position
    was counted, though only the hidden bytes are asked (the visible ones are the input, copied). A model's
    stray bytes at visible positions are neither counted nor shown: the visible text stays as it is."""
    from rich.console import Console

    ex = Examples(code_folder(tmp_path, stray_visible=True))
    assert ex.rows[0].wrong == 1
    console = Console(width=80, record=True, no_color=True)
    console.print(ex.picture(ex.rows[0], STEPS))
    shown = " ".join(console.export_text().split())
    assert "WRONG: 1 of 9 hidden bytes" in shown
    assert "def add(a, b):" in shown and "rexurn" in shown and "?" not in shown


def test_marks_hold_without_colour() -> None:
    truth = np.full(81, 3)
    answer = truth.copy()
    answer[5] = 4
    changed = np.zeros(81, dtype=bool)
    changed[7] = True
    board = render.sudoku(answer, render.Cells(answer, truth, np.ones(81, dtype=np.int64), changed))
    styles = {board.plain[span.start:span.end]: str(span.style) for span in board.spans}
    assert "reverse" in styles["3"] and "underline" in " ".join(str(s.style) for s in board.spans)
    plain = render.arc_grid(np.array([[1, 2]]), np.array([[False, True]]), plain=True)
    assert plain.plain == "1 2 \n" and any("reverse" in str(s.style) for s in plain.spans)
    coloured = render.arc_grid(np.array([[1, 2]]), np.array([[False, True]]), plain=False)
    assert "××" in coloured.plain and "#0074D9" in str(coloured.spans[0].style).upper()


@pytest.mark.parametrize("task", sorted(FOLDERS))
def test_snapshot_of_each_task_kind(task: str, tmp_path: Path, snap_compare) -> None:
    folder = FOLDERS[task](tmp_path)
    assert snap_compare(PredictionsApp(folder), terminal_size=(100, 30))


@pytest.mark.process
def test_the_browser_keys_in_a_real_terminal_alone_and_from_the_dashboard(tmp_path: Path) -> None:
    assert cli_run("data", "sudoku-generate", "--count", "40", "--blanks", "30", "--out", str(tmp_path / "p.csv"),
                   "--seed", "3").returncode == 0
    assert cli_run("data", "sudoku", "--csv", str(tmp_path / "p.csv"), "--out", str(tmp_path / "ds")).returncode == 0
    run = tmp_path / "run"
    sets = {"data.kind": "'puzzles'", "data.dataset_dir": f"'{tmp_path / 'ds'}'", "model.dim": 16, "model.depth": 1,
            "model.latent_steps": 1, "model.refinement_blocks": 1, "model.max_supervision_steps": 3,
            "train.batch_size": 4, "train.max_steps": 6, "train.eval_every": 0, "train.checkpoint_every": 6,
            "train.threads": 1}
    assert run_worker(run, [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]).returncode == 0
    with Terminal(["eval", "--run-dir", str(run), "--show"], size=(80, 24)) as none_yet:
        wait_for(lambda: "EXIT=2" in none_yet.screen(), 60, "the refusal")
        assert "no eval with predictions yet" in none_yet.screen()
    assert cli_run("eval", "--run-dir", str(run)).returncode == 0
    with Terminal(["eval", "--run-dir", str(run), "--show"], size=(80, 24)) as term:
        wait_for(lambda: "truth" in term.screen(), 60, "the browser")
        screen = term.screen()
        assert "step 3/3" in screen and "answer" in screen and "failures first" in screen and "│" in screen
        term.keys("Left")
        wait_for(lambda: "step 2/3" in term.screen(), 10, "a step back")
        term.keys("s")
        wait_for(lambda: "least confident" in term.screen(), 10, "another sort")
        term.keys("f")
        wait_for(lambda: " failures" in term.screen().splitlines()[0], 10, "the failures only")
        term.keys("q")
        wait_for(lambda: "EXIT=0" in term.screen(), 20, "the exit")
    with Terminal(["--run-dir", str(run)], size=(100, 30)) as dash:  # the completed run's dashboard
        wait_for(lambda: "COMPLETED" in dash.screen(), 60, "the dashboard")
        dash.keys("p")
        wait_for(lambda: "truth" in dash.screen(), 20, "the browser from the dashboard")
        dash.keys("Escape")
        wait_for(lambda: "COMPLETED" in dash.screen() and "truth" not in dash.screen(), 20, "back to the run")
        time.sleep(0.2)
        dash.keys("q")
        wait_for(lambda: "EXIT=0" in dash.screen(), 20, "the dashboard's exit")


def test_p_opens_the_newest_checkpoints_eval_not_the_last_written(tmp_path: Path) -> None:
    """A quick ``--limit 20`` eval of an older step, written last, was what p showed."""
    import os

    from trm_core.evaluate.predictions import newest_eval

    evals = tmp_path / "evals"
    for name in ("step-1400-raw-test", "step-700-raw-test-first20", "step-1400-raw-train-first16"):
        folder = evals / name
        (folder / "predictions").mkdir(parents=True)
        (folder / "predictions" / "index.json").write_text("{}")
        (folder / METRICS).write_text("{}")
    os.utime(evals / "step-1400-raw-test" / METRICS, (1, 1))  # the oldest of the three on disk
    assert newest_eval(evals) == evals / "step-1400-raw-test"


def test_answers_past_step_255_are_stored_as_they_were(tmp_path: Path) -> None:
    """A change made at supervision step 300 (of the 1,024 the flags allow) reads back at step 300, not wrapped
    to step 44 as a byte would hold it."""
    from trm_core.config.schema import MAX_SUPERVISION_STEPS

    steps, seq = MAX_SUPERVISION_STEPS, 4
    first, truth = np.zeros((1, seq), dtype=np.int64), np.array([[1, 2, 3, 1]])
    changes = np.array([[0, 299, 1, 2], [0, 1000, 2, 3]], dtype=np.int64)  # made by steps 300 and 1001
    record = BatchRecord(inputs=first, labels=truth, hidden=None, puzzle_ids=np.zeros(1, dtype=np.int64), first=first,
                         final=truth, changes=changes, halt_prob=np.zeros((1, steps), dtype=np.float32),
                         exact=np.zeros((1, steps), dtype=bool), accuracy=np.ones(1, dtype=np.float32),
                         exit_step=np.full(1, steps, dtype=np.int16), halt_step=np.full(1, steps, dtype=np.int16))
    writer = PredictionWriter(tmp_path / "p", 1, seq, steps, 4, False, {"task": "sudoku"})
    writer.add(record)
    writer.close()
    read = Predictions.open(tmp_path / "p")
    assert read.answer(0, 299).tolist() == [0, 0, 0, 0] and read.answer(0, 300).tolist() == [0, 2, 0, 0]
    assert read.changed(0, 1001).tolist() == [2] and read.answer(0, steps).tolist() == [0, 2, 3, 0]
