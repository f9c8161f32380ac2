"""How long ``trm-tui runs`` takes on a root of many runs with huge logs: it must read tails, never whole logs.

Builds ``--runs`` run dirs under a temporary root whose events.jsonl are hard links to one log of ``--lines``
step events (the same bytes, so the set-up writes one file), then times ``trm-tui runs`` (a real process, best
of 3) against parsing one of those logs whole, in the same process run (a ratio, since this machine is noisy).

Run from the repository root:  python -m bench.runs_list [--runs 100] [--lines 1000000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


from bench.dashboard_cost import write_log
from trm_core.rundir.events import read_events


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--lines", type=int, default=1_000_000)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "events.jsonl"
        write_log(log, args.lines)
        root = Path(tmp) / "runs"
        for i in range(args.runs):
            (root / f"run{i:03d}").mkdir(parents=True)
            os.link(log, root / f"run{i:03d}" / "events.jsonl")
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            out = subprocess.run([sys.executable, "-m", "trm_tui.cli", "runs", "--root", str(root)], check=True,
                                 capture_output=True, text=True).stdout
            times.append(time.perf_counter() - t0)
        assert len(out.splitlines()) == args.runs + 1
        t0 = time.perf_counter()
        whole = len(read_events(log).events)
        one_whole = time.perf_counter() - t0
    size = log.stat().st_size if log.exists() else 0
    print(f"trm-tui runs on {args.runs} runs of {args.lines:,} lines each: best {min(times):.2f} s "
          f"(of {', '.join(f'{t:.2f}' for t in times)}); parsing ONE of those logs whole: {one_whole:.2f} s "
          f"({whole:,} events); ratio {min(times) / one_whole:.2f}")


if __name__ == "__main__":
    main()
