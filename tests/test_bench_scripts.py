"""The benchmarks are run rarely, by hand or on a GPU machine lent for minutes: each must at least compile, and
the GPU check's dry run (on a machine without a GPU) must pass, so a slip is found here, not in that quarter
of an hour. (A stray quote in bench/gpu_bench.py once made the GPU check's report a SyntaxError.)"""

from __future__ import annotations

import py_compile
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import REPO, worker_env

BENCH = sorted((REPO / "bench").glob("*.py"))


@pytest.mark.parametrize("script", BENCH, ids=[p.name for p in BENCH])
def test_every_bench_script_compiles(script: Path, tmp_path: Path) -> None:
    py_compile.compile(str(script), cfile=str(tmp_path / "out.pyc"), doraise=True)


@pytest.mark.process
def test_the_gpu_check_dry_run_passes_without_a_gpu() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: the check would measure, not dry-run")
    if not shutil.which("bash"):
        pytest.skip("no bash")
    done = subprocess.run(["bash", str(REPO / "bench" / "gpu_check.sh")], capture_output=True, text=True,
                          env=worker_env(), timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "The script's syntax and imports check out" in done.stdout
