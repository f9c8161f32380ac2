"""``trm-tui solve``: a puzzle of your own through a run's trained model (a Sudoku string, a maze file, an ARC
task file, or ``-`` for stdin), drawn with the browser's renderer; ``--steps`` draws every supervision step."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from trm_core.config import ConfigError
from trm_core.rundir import strict_json
from trm_tui.cli.common import model_args, run_dir_arg, run_or_model
from trm_tui.cli.compute_flags import add_test_time_flags, test_time_from, test_time_text


def solve_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trm-tui solve", description="Solve a puzzle with a run's trained model: a Sudoku "
                                "(81 characters, '.' or 0 a blank), a maze file (rows of '#', ' ', 'S', 'G'), or an ARC "
                                "task JSON file; '-' reads it from stdin.")
    p.add_argument("puzzle", help="the puzzle, a file holding it, or - for stdin")
    run_dir_arg(p)
    model_args(p, "with --model: the dataset it was trained on, for ARC its tasks' own identifiers (optional)")
    p.add_argument("--checkpoint", default="latest", metavar="latest|best|STEP", help="which checkpoint (default latest)")
    p.add_argument("--weights", choices=("ema", "raw"), help="the EMA weights (default when the run keeps them) or raw")
    p.add_argument("--device", help="where to run it (default: the run's train.device)")
    p.add_argument("--steps", action="store_true", help="draw the answer after every supervision step")
    p.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    add_test_time_flags(p)
    return p


def _read(puzzle: str) -> tuple[str, str]:
    """(the puzzle's text, its name): stdin, a file, or the argument itself."""
    if puzzle == "-":
        return sys.stdin.read(), "stdin"
    path = Path(puzzle)
    if len(puzzle) < 256 and path.is_file():
        try:
            return path.read_text(encoding="utf-8"), path.stem
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot be read as text ({exc})") from None
    if len(puzzle) < 256 and _looks_like_a_path(puzzle):
        raise ConfigError(f"{puzzle}: no such file (a puzzle given on the command line is a Sudoku's 81 "
                          f"characters; a maze or an ARC task comes in a file, or on stdin with -)")
    return puzzle, "argument"


def _looks_like_a_path(text: str) -> bool:
    """A name with a folder or a file ending, or a path that starts like one: never a Sudoku's cells."""
    starts_like_a_path = text.startswith(("~", ".")) and not set(text) <= set(".0123456789 |-+\n")
    return "/" in text or starts_like_a_path or Path(text).suffix.lower() in (".json", ".txt", ".csv")


def cmd_solve(argv: list[str]) -> int:
    args = solve_parser().parse_args(argv)
    run = run_or_model(args, argv)
    if not run.root.is_dir():
        raise ConfigError(f"--run-dir {run.root}: no such run folder")
    text, name = _read(args.puzzle)
    from trm_core.evaluate import loaded as loading
    from trm_core.evaluate import solve_puzzle as solve

    cfg, dataset, task = loading.run_data(run)
    if task == "sudoku":
        puzzle = solve.parse_sudoku(text)
    elif task == "maze":
        puzzle = solve.parse_maze(text, cfg.model.seq_len)
    elif task == "arc":
        tests = solve.parse_arc(text, name)
    else:
        raise ConfigError(f"trm-tui solve takes Sudoku, maze and ARC puzzles; this run trains on {task} data")
    checkpoint = loading.load(run, args.checkpoint, args.weights, args.device, cfg=cfg, dataset=dataset)
    if checkpoint.why:
        print(f"trm-tui solve: {checkpoint.why}", file=sys.stderr)
    test_time = test_time_from(args, cfg)
    settings = test_time_text(test_time, cfg.model.max_supervision_steps)
    if settings and not args.json:
        print(f"trm-tui solve: {settings[2:]}", file=sys.stderr)
    if task == "arc":
        answers = solve.solve_arc(checkpoint, name, tests, test_time=test_time)
    else:
        answers = [solve.solve_tokens(checkpoint, puzzle, test_time)]
    if args.json:
        print(strict_json.dumps(_as_json(task, answers, checkpoint.info.step)))
    else:
        _draw(task, answers, args.steps, checkpoint.info.step, checkpoint.weights)
    return 0


def _as_json(task: str, answers: list, step: int) -> dict:
    from trm_core.evaluate.solve_puzzle import arc_grid_of
    from trm_core.prep.maze import CHARSET
    from trm_tui.predictions.render import sudoku_char

    def text(tokens: np.ndarray) -> object:
        if task == "sudoku":
            return "".join(sudoku_char(int(t)) for t in tokens).replace("·", ".")
        if task == "maze":
            side = int(len(tokens) ** 0.5)
            flat = "".join(CHARSET[int(t) - 1] if 1 <= t <= 5 else "?" for t in tokens)
            return [flat[r * side:(r + 1) * side] for r in range(side)]
        return arc_grid_of(tokens).tolist()

    from trm_core.evaluate.solve_puzzle import sudoku_verdict

    out = []
    for a in answers:
        entry = {"answer": text(a.steps[-1]), "steps": [text(s) for s in a.steps], "halt_step": a.halt_step,
                 "confidence": round(a.confidence, 6)}
        if a.trajectories:
            entry |= {"trajectories": [{"answer": text(tokens), "confidence": round(conf, 6), "exit_step": step}
                                       for tokens, conf, step in a.trajectories], "chosen": a.chosen}
        if task == "sudoku":  # the givens in place; the model's own grid and its disagreements beside
            verdict = sudoku_verdict(a.inputs, a.steps[-1])
            entry |= {"answer": text(verdict.filled),
                      "steps": [text(sudoku_verdict(a.inputs, s).filled) for s in a.steps],
                      "model_answer": text(a.steps[-1]), "valid": verdict.valid, "problems": verdict.problems,
                      "givens_disagreed": len(verdict.disagreed), "disagreed": verdict.disagreed}
        if task == "arc":
            entry |= {"attempt_1": a.votes[0]["grid"] if a.votes else None,
                      "attempt_2": a.votes[1]["grid"] if len(a.votes) > 1 else (a.votes[0]["grid"] if a.votes else None),
                      "votes": [{"votes": v["votes"], "confidence": round(v["confidence"], 6)} for v in a.votes]}
        out.append(entry)
    return {"task": task, "checkpoint_step": step, "answers": out, "note": answers[0].note if answers else ""}


def _draw(task: str, answers: list, every_step: bool, step: int, weights: str) -> None:
    from rich.console import Console
    from rich.text import Text

    from trm_core.evaluate.solve_puzzle import arc_grid_of, sudoku_verdict
    from trm_tui.predictions import render

    console = Console(highlight=False)
    if answers and answers[0].note:
        console.print(Text(answers[0].note, style="dim"))
    for k, a in enumerate(answers):
        shown = list(enumerate(a.steps, 1)) if every_step else [(len(a.steps), a.steps[-1])]
        for s, tokens in shown:
            title = f"after supervision step {s} of {len(a.steps)}" + (f" (halting at {a.halt_step})" if s == len(a.steps) else "")
            if task == "arc":
                title = f"test input {k + 1}, " + title
            console.print(Text(title, style="bold"))
            before = a.steps[s - 2] if s > 1 else None
            changed = (tokens != before) if before is not None else None
            cells = render.Cells(tokens, None, a.inputs, changed)
            if task == "sudoku":  # the givens in place; a given the model disagreed with is marked wrong
                verdict = sudoku_verdict(a.inputs, tokens)
                shown_before = sudoku_verdict(a.inputs, before).filled if before is not None else None
                changed = (verdict.filled != shown_before) if shown_before is not None else None
                console.print(render.sudoku(verdict.filled,
                                            render.Cells(tokens, verdict.given_labels, a.inputs, changed)))
            elif task == "maze":
                console.print(render.maze(tokens, cells))
            else:
                console.print(render.arc_grid(arc_grid_of(tokens)))
        if task == "sudoku":
            verdict = sudoku_verdict(a.inputs, a.steps[-1])
            console.print(Text("the filled grid is a valid solution" if verdict.valid else
                               "the filled grid is not a valid solution: " + "; ".join(verdict.problems),
                               style="bold green" if verdict.valid else "bold red"))
            givens = int((a.inputs >= 2).sum())
            if verdict.disagreed:
                named = verdict.describe()
                more = f"; {len(named) - 8} more" if len(named) > 8 else ""
                console.print(Text(f"the model disagreed with {len(named)} of the {givens} givens (kept, marked "
                                   f"as wrong): {'; '.join(named[:8])}{more}", style="yellow"))
            else:
                console.print(Text(f"the model kept all {givens} givens", style="dim"))
        if task == "arc":
            for n, v in enumerate(a.votes[:2], 1):
                console.print(Text(f"attempt {n}: {v['votes']} votes, confidence {v['confidence']:.2f}", style="bold"))
                console.print(render.arc_grid(np.array(v["grid"])))
        if a.trajectories:
            _trajectory_lines(console, task, a)
        console.print(Text(f"halting confidence {a.confidence:.2f}; checkpoint step {step}, {weights} weights",
                           style="dim"))


def _trajectory_lines(console, task: str, a) -> None:
    """One line per trajectory: its confidence, the step it stopped at, whether its answer is the kept one's
    and, for a Sudoku, whether it is a valid solution."""
    from rich.text import Text

    from trm_core.evaluate.solve_puzzle import sudoku_verdict

    kept = a.trajectories[a.chosen][0]
    console.print(Text(f"{len(a.trajectories)} trajectories (* the kept one, whose answer is drawn):", style="bold"))
    for k, (tokens, confidence, exit_step) in enumerate(a.trajectories):
        same = "the kept answer" if (tokens == kept).all() else "another answer"
        line = f"{'*' if k == a.chosen else ' '} {k + 1:>3}: confidence {confidence:.3f}, stopped after step {exit_step}, {same}"
        if task == "sudoku":
            line += ", a valid solution" if sudoku_verdict(a.inputs, tokens).valid else ", not valid"
        console.print(Text(line, style="bold" if k == a.chosen else ""))
