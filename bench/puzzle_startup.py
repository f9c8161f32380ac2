"""How fast training starts on a big puzzle set, and what it costs in memory: the arrays must be memory-mapped,
never copied whole.

Generates 1,000 Sudoku puzzles (``trm-tui data sudoku-generate``) and builds them with ``--aug 1000`` (about
900k training rows of 81) and with no augmentation (900 rows), then runs the real worker for a few steps of a
small model on each, side by side in one process run: seconds from the worker's launch to its ``run_start``
event and to its first ``step`` event, and the worker's memory, polled from /proc: the most private
(anonymous) memory it held, where a copy of the arrays would show (a whole copy as int64 would add 560 MiB),
and its peak RSS, which also counts the page-cache pages of the mapped files it touched (shared and
reclaimable; how many depends on the page cache's state: right after the build, with the files' pages still
in large folios, the big set's first batch mapped about 115 MiB of them).

``--cold`` drops the page cache before each run (root only), so the first batch reads its rows from disk.

Run from the repository root:  python -m bench.puzzle_startup [--keep DIR] [--cold]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench.common import REPO, set_flags

SETS = ["data.kind='puzzles'", "model.dim=64", "model.depth=1", "model.max_supervision_steps=2",
        "train.batch_size=64", "train.max_steps=3", "train.eval_every=0", "train.checkpoint_every=1000",
        "train.log_every=1", "train.threads=1"]


def cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "trm_tui.cli", *args], check=True, capture_output=True, text=True)


def _status_kib(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def first_times(run_dir: Path, dataset: Path) -> tuple[float, float, float, float]:
    """(seconds to run_start, seconds to the first step, peak RSS MiB, most anonymous memory MiB) of one run."""
    events = run_dir / "events.jsonl"
    args = set_flags([*SETS, f"data.dataset_dir='{dataset}'"])
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "trm_core.worker", "--run-dir", str(run_dir), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    started = stepped = None
    anon = 0
    while stepped is None or proc.poll() is None:
        anon = max(anon, _status_kib(proc.pid, "RssAnon"))
        if stepped is not None:
            time.sleep(0.01)
            continue
        if proc.poll() is not None and proc.returncode != 0:
            raise SystemExit(f"worker failed: {proc.stderr.read()}")
        text = events.read_text() if events.exists() else ""
        kinds = [json.loads(line)["event"] for line in text.splitlines() if line.strip()]
        if started is None and "run_start" in kinds:
            started = time.perf_counter() - t0
        if "step" in kinds:
            stepped = time.perf_counter() - t0
        time.sleep(0.01)
    proc.wait()
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak <= before:
        raise SystemExit("the worker's peak RSS did not pass an earlier child's: run each size in its own process")
    return started or stepped, stepped, peak / 1024, anon / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--keep", type=Path, help="build (or reuse) the datasets here instead of a temp folder")
    p.add_argument("--cold", action="store_true", help="drop the page cache before each run (needs root)")
    p.add_argument("--size", choices=("big", "small"), help=argparse.SUPPRESS)  # one measurement, in a child
    p.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.size:  # a child: one worker run, so RUSAGE_CHILDREN is that worker's alone
        root = args.root
        started, stepped, peak, anon = first_times(root / f"run-{args.size}", root / args.size)
        print(json.dumps({"run_start_s": started, "first_step_s": stepped, "peak_rss_mib": peak,
                          "anon_mib": anon}))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        csv = root / "sudoku.csv"
        t0 = time.perf_counter()
        if not csv.exists():
            cli("data", "sudoku-generate", "--count", "1000", "--blanks", "50", "--out", str(csv), "--seed", "1")
        if not (root / "big").exists():
            cli("data", "sudoku", "--csv", str(csv), "--out", str(root / "big"), "--aug", "1000")
        if not (root / "small").exists():
            cli("data", "sudoku", "--csv", str(csv), "--out", str(root / "small"))
        build_s = time.perf_counter() - t0
        rows = {size: len(np.load(root / size / "train" / "all__inputs.npy", mmap_mode="r"))
                for size in ("big", "small")}
        results = {}
        for size in ("small", "big", "small", "big"):  # interleaved: the second of each is the one reported
            for old in root.glob(f"run-{size}"):
                subprocess.run(["rm", "-rf", str(old)], check=True)
            if args.cold:
                os.sync()
                Path("/proc/sys/vm/drop_caches").write_text("1\n")
            out = subprocess.run([sys.executable, "-m", "bench.puzzle_startup", "--size", size, "--root", str(root)], check=True,
                                 capture_output=True, text=True, cwd=REPO).stdout
            results[size] = json.loads(out.splitlines()[-1])
    big, small = results["big"], results["small"]
    print(f"{'cold' if args.cold else 'warm'} page cache; built in {build_s:.1f} s (0 when reused); training rows: big {rows['big']:,}, small {rows['small']:,}")
    for name, r in (("big", big), ("small", small)):
        print(f"{name:5}: run_start {r['run_start_s']:.2f} s, first step {r['first_step_s']:.2f} s, "
              f"private memory {r['anon_mib']:.0f} MiB, peak RSS {r['peak_rss_mib']:.0f} MiB")
    print(f"big/small: run_start {big['run_start_s'] / small['run_start_s']:.2f}x, first step "
          f"{big['first_step_s'] / small['first_step_s']:.2f}x, private memory "
          f"{big['anon_mib'] / small['anon_mib']:.2f}x (+{big['anon_mib'] - small['anon_mib']:.0f} MiB), peak RSS "
          f"{big['peak_rss_mib'] / small['peak_rss_mib']:.2f}x (+{big['peak_rss_mib'] - small['peak_rss_mib']:.0f} MiB)")


if __name__ == "__main__":
    main()
