"""The package boundaries that keep the data flow honest: trm_core never reaches for a UI, the run dir and
control layers read a run without torch, and the front ends never import the trainer or the worker."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO, worker_env


def imported_modules(package: str) -> dict[str, set[str]]:
    """Every module each file of ``package`` imports, at the top or inside a function."""
    found: dict[str, set[str]] = {}
    for path in sorted((REPO / package.replace(".", "/")).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
        found[str(path.relative_to(REPO))] = names
    return found


def offenders(package: str, forbidden: tuple[str, ...]) -> list[str]:
    return [f"{path} imports {name}" for path, names in imported_modules(package).items() for name in sorted(names)
            if any(name == f or name.startswith(f + ".") for f in forbidden)]


def test_trm_core_never_imports_a_front_end() -> None:
    assert offenders("trm_core", ("textual", "rich", "plotext", "trm_tui")) == []


def test_front_ends_never_import_the_trainer_or_the_worker() -> None:
    """trm_tui reads runs and drives processes; training happens in the worker's process, never in a front end."""
    assert offenders("trm_tui", ("torch", "trm_core.train", "trm_core.worker", "trm_core.data")) == []


def test_data_never_imports_the_eval() -> None:
    """Data gives batches; what an eval makes of them (ARC's votes, the per-batch pass) is evaluate's, built
    from the data's folder there (``evaluate.arc.vote.voting_for``): the layers run one way."""
    assert offenders("trm_core.data", ("trm_core.evaluate",)) == []
    assert offenders("trm_core.train", ("trm_core.evaluate",)) == []


def test_the_predictions_browser_loads_no_dashboard() -> None:
    """``trm-tui eval --show`` is a browser of its own: it shares the key footer (``trm_tui.keys_footer``), never
    the dashboard's panels or plotext."""
    assert offenders("trm_tui.predictions", ("trm_tui.dashboard", "plotext")) == []


def test_autotune_measures_and_never_drives_the_run() -> None:
    """Stopping and resuming the run around a search is control's (control/tune.py); the engine below it never
    reaches back up, and the dashboard asks control, never the engine."""
    assert offenders("trm_core.autotune", ("trm_core.control",)) == []
    assert offenders("trm_tui.dashboard", ("trm_core.autotune",)) == []


@pytest.mark.process
@pytest.mark.parametrize("packages", [("trm_core.rundir", "trm_core.control"), ("trm_tui.cli", "trm_tui.headless")])
def test_readers_import_without_torch(packages: tuple[str, ...]) -> None:
    """Every module of the run dir and control layers, and the CLI, imports in a fresh interpreter without
    loading torch (``trm-tui status`` must stay instant)."""
    code = (
        "import importlib, pkgutil, sys\n"
        f"for name in {list(packages)!r}:\n"
        "    mod = importlib.import_module(name)\n"
        "    for info in pkgutil.walk_packages(getattr(mod, '__path__', []), name + '.'):\n"
        "        importlib.import_module(info.name)\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=worker_env(),
                            cwd=Path(REPO), timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_no_import_circle() -> None:
    """No module reaches itself through its imports, lazy ones inside functions included: each layer can be read,
    tested and replaced from the bottom up (rundir.layout <-> rundir.identity was one)."""
    graph: dict[str, set[str]] = {}
    for package in ("trm_core", "trm_tui"):
        for path, names in imported_modules(package).items():
            module = path[:-3].replace("/", ".").removesuffix(".__init__")
            graph[module] = names
    graph = {m: {n for n in names if n in graph and n != m} for m, names in graph.items()}
    circles: list[str] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for dep in sorted(graph[module]):
            if state.get(dep) == 1:
                circles.append(" -> ".join(path[path.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep, path + [dep])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert circles == []


def package_of(module: str) -> str:
    """``trm_core.evaluate.arc.vote`` -> ``trm_core.evaluate``: the room a module lives in."""
    return ".".join(module.split(".")[:2])


def test_no_circle_between_packages() -> None:
    """Packages point one way too, not only files: a package never imports one that imports it back, however
    many steps away (evaluate -> weights -> export -> evaluate was one; trm_tui.cli <-> trm_tui.dashboard another)."""
    graph: dict[str, set[str]] = {}
    for package in ("trm_core", "trm_tui"):
        for path, names in imported_modules(package).items():
            module = path[:-3].replace("/", ".").removesuffix(".__init__")
            graph[module] = names
    arrows: dict[str, dict[str, str]] = {}  # package -> the packages it imports -> one import that shows it
    for module, names in graph.items():
        for name in names:
            if name in graph and package_of(name) != package_of(module):
                arrows.setdefault(package_of(module), {}).setdefault(package_of(name), f"{module} -> {name}")

    def reaches(start: str, goal: str) -> list[str] | None:
        seen, todo = {start}, [(start, [])]
        while todo:
            here, path = todo.pop()
            for there, why in arrows.get(here, {}).items():
                if there == goal:
                    return path + [why]
                if there not in seen:
                    seen.add(there)
                    todo.append((there, path + [why]))
        return None

    circles = [f"{a} -> {b} ({arrows[a][b]}), and back: {'; '.join(back)}" for a in sorted(arrows)
               for b in sorted(arrows[a]) for back in [reaches(b, a)] if back]
    assert circles == []
