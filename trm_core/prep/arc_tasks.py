"""``trm-tui data arc --tasks FILE.json ...``: a set of just these ARC tasks, to fine-tune a trained model on tasks
it never saw (test-time training, as the ARC Prize 2025 paper-award entries did) and then vote with ``solve``.

Each file holds one task (``{"train": [...], "test": [...]}``, named by the file) or an object of tasks by id (a
``*_challenges.json``). Every demonstration pair goes to training, with ``--aug`` disguises as ``data arc`` makes
them. When every test input comes with its output, the test pairs are the test split (and ``test_puzzles.json``,
so eval votes and scores pass@k as for any ARC set). When any is missing (a real unseen task), the test split is
the demonstrations themselves, undisguised: an eval there says how well the model fits them, and ``solve
TASK.json`` answers the test inputs with each task's own trained embeddings voting."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from trm_core.config import ConfigError
from trm_core.prep.arc import Groups, _add_puzzle, _grid, _write, check_task_id, read_json
from trm_core.prep.output import BuildSummary, building, check_out

Task = dict[str, list[tuple[np.ndarray, np.ndarray | None]]]


def _pairs(items: Any, where: str, need_output: bool) -> list[tuple[np.ndarray, np.ndarray | None]]:
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{where}: expected a non-empty list of {{\"input\": grid, \"output\": grid}}")
    out = []
    for i, item in enumerate(items):
        at = f"{where}[{i}]"
        if not isinstance(item, dict) or "input" not in item:
            raise ConfigError(f"{at}: expected an object with \"input\"")
        if need_output and item.get("output") is None:
            raise ConfigError(f"{at}: a demonstration pair needs an \"output\"")
        output = item.get("output")
        out.append((_grid(item["input"], f"{at} input"), None if output is None else _grid(output, f"{at} output")))
    return out


def read_tasks(paths: list[Path]) -> dict[str, Task]:
    """{task id: {"train": demonstrations, "test": test pairs (output None where not given)}}."""
    tasks: dict[str, Task] = {}
    for path in paths:
        data = read_json(path, "an ARC task file")
        named = {path.stem: data} if isinstance(data, dict) and "train" in data else data
        if not isinstance(named, dict) or not named:
            raise ConfigError(f"{path}: expected an ARC task ({{\"train\": [...], \"test\": [...]}}) or an object "
                              f"of tasks by id")
        for pid, task in named.items():
            check_task_id(str(pid), path)
            where = f"{path}: task {pid}"
            if not isinstance(task, dict):
                raise ConfigError(f"{where}: expected {{\"train\": [...], \"test\": [...]}}")
            if pid in tasks:
                raise ConfigError(f"{where}: a second task of that id (task ids must be unique)")
            tasks[str(pid)] = {"train": _pairs(task.get("train"), f"{where}, train", True),
                               "test": _pairs(task.get("test"), f"{where}, test", False)}
    return tasks


def build_tasks(paths: list[Path], out: Path, aug: int = 0, seed: int = 42,
                progress: Callable[[str, int, int], None] = lambda what, done, total: None) -> tuple[BuildSummary, bool]:
    """The set; True as the second value when its test split is the tasks' test pairs (every output given)."""
    check_out(out)
    tasks = read_tasks(paths)
    scored = all(b is not None for task in tasks.values() for _, b in task["test"])
    rng = np.random.default_rng(seed)
    groups: Groups = {"train": [], "test": []}
    test_puzzles: dict[str, Any] = {}
    for n, (pid, task) in enumerate(sorted(tasks.items())):
        if scored:
            test_puzzles[pid] = {kind: [{"input": a.tolist(), "output": b.tolist()} for a, b in task[kind]]
                                 for kind in ("train", "test")}
            _add_puzzle(groups, pid, task, True, aug, rng)
        else:
            _add_puzzle(groups, pid, {"train": task["train"], "test": []}, True, aug, rng)
            groups["test"].append([(pid, task["train"])])
        progress("tasks", n + 1, len(tasks))
    with building(out) as tmp:
        summary = _write(tmp, out, groups, test_puzzles, rng)
        if not scored:
            (tmp / "test_puzzles.json").unlink()
    return summary, scored
