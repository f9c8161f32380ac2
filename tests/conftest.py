"""Pytest fixtures (a small real corpus, the micro model's flags) and the suite's markers. Shared helpers
live in ``helpers``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import MICRO, STDLIB


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few real source files copied from the standard library."""
    root = tmp_path_factory.mktemp("corpus")
    for name in ("textwrap.py", "bisect.py", "heapq.py", "shlex.py"):
        (root / name).write_bytes((STDLIB / name).read_bytes())
    return root


@pytest.fixture()
def micro_args(corpus: Path, tmp_path: Path) -> list[str]:
    sets = MICRO + [f"data.paths=['{corpus}']", f"data.cache_dir='{tmp_path / 'cache'}'"]
    return [a for s in sets for a in ("--set", s)]


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist each worker's own torch computes on one thread: several workers share the machine's
    cores, and two threads each would fight over them (a CPU-bound test ran 30x slower). Processes a test
    starts choose their own threads (the micro runs take train.threads = 1)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)
        # an xdist worker is started with COLUMNS=80 and LINES=24 in its environment: every process a test
        # starts (a tmux server and what runs in it included) would take that for its terminal's size
        for name in ("COLUMNS", "LINES"):
            os.environ.pop(name, None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``cuda`` tests run where torch sees a GPU and are skipped, saying why, everywhere else."""
    cuda_items = [item for item in items if item.get_closest_marker("cuda")]
    if not cuda_items:
        return
    import torch

    if torch.cuda.is_available():
        return
    why = "no CUDA GPU: torch.cuda.is_available() is False" + (
        "" if torch.version.cuda else f" (torch {torch.__version__} is a CPU build)")
    for item in cuda_items:
        item.add_marker(pytest.mark.skip(reason=why))
