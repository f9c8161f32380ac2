"""The ARC Prize submission: ``{task id: [{"attempt_1": grid, "attempt_2": grid}, ...]}``, one entry per test
input in the task's order, written from an eval's voted answers (the two most voted), and scored as the ARC
Prize scores it: a test input counts when either attempt equals its solution exactly, a task scores the share
of its test inputs counted, and the score is the mean over the tasks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trm_core.config import ConfigError
from trm_core.rundir.layout import write_atomic

EMPTY = [[0]]  # the attempt for an input with no answer: a valid grid that scores nothing


def build(votes: dict[str, list[dict[str, Any]]], tasks: dict[str, list[dict[str, Any]]]) -> tuple[dict, int]:
    """The submission for every task of ``tasks`` (id -> test pairs), from ``votes`` (arc_votes.json); and
    how many test inputs had no answer (a task the eval did not reach: ``--limit``)."""
    out, missing = {}, 0
    for task, tests in sorted(tasks.items()):
        voted = votes.get(task, [])
        attempts = []
        for k in range(len(tests)):
            answers = [a["grid"] for a in voted[k]["answers"]] if k < len(voted) else []
            missing += not answers
            first = answers[0] if answers else EMPTY
            attempts.append({"attempt_1": first, "attempt_2": answers[1] if len(answers) > 1 else first})
        out[task] = attempts
    return out, missing


def write(path: Path, submission: dict) -> None:
    try:
        write_atomic(path, json.dumps(submission).encode())
    except OSError as exc:
        raise ConfigError(f"--arc-submission {path}: cannot write it: {exc.strerror}") from None


def _read(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{what} {path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{what} {path}: not readable JSON ({exc})") from None


def read_solutions(path: Path) -> dict[str, list[Any]]:
    """An ARC solutions file (``arc-agi_evaluation_solutions.json``): task id -> the output grid of each test."""
    data = _read(path, "--solutions")
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise ConfigError(f"--solutions {path}: expected an object of task id -> list of output grids")
    return data


def score(submission: dict[str, Any], solutions: dict[str, list[Any]]) -> dict[str, Any]:
    """The ARC Prize's score of ``submission`` against ``solutions``: over the tasks of the solutions file (a
    task the submission lacks scores 0)."""
    total, per_task = 0.0, {}
    for task, outputs in solutions.items():
        attempts = submission.get(task, [])
        right = 0
        for k, output in enumerate(outputs):
            tries = attempts[k] if k < len(attempts) and isinstance(attempts[k], dict) else {}
            right += any(tries.get(name) == output for name in ("attempt_1", "attempt_2"))
        per_task[task] = right / len(outputs) if outputs else 0.0
        total += per_task[task]
    tasks = len(solutions)
    return {"score": total / tasks if tasks else 0.0, "tasks": tasks,
            "solved_tasks": sum(1 for v in per_task.values() if v == 1.0), "per_task": per_task}
