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


def test_bench_is_a_package_run_with_python_m() -> None:
    """Each benchmark is ``python -m bench.NAME`` from the repository root: none edits sys.path to find this
    checkout (only the two that load the reference's own code add its folder), and they share bench.common."""
    assert (REPO / "bench" / "__init__.py").exists()
    for script in BENCH:
        text = script.read_text()
        assert "parents[1]" not in text or script.name == "common.py", f"{script.name}: use bench.common.REPO"
        inserts = [line for line in text.splitlines() if "sys.path.insert" in line]
        assert all("ref_dir" in line for line in inserts), f"{script.name}: {inserts}"
        assert "python bench/" not in text, f"{script.name}: its usage says python bench/...; python -m bench.NAME"


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
