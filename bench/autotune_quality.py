"""How good is auto-tune's choice, and how much cheaper is it than trying everything?

1. Makes a run (a short real worker run of ``--preset``, with ``--set`` overrides) so the trials read a
   real run config and a packed corpus.
2. Runs the auto-tune search (the engine's Search and TrialRunner: real trial processes) and times it.
3. Runs an exhaustive sweep of the same space: every divisor of the batch as micro-batch, times every
   thread count the search may try; times it.
4. Re-measures the search's pick and the sweep's best side by side, interleaved ``--rounds`` times (this
   machine is noisy), and reports the pick's samples/s as a fraction of the best's.

Run from the repository root:  python -m bench.autotune_quality [--preset tiny] [--set train.batch_size=32]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


from trm_core import config as config_mod
from trm_core.rundir import layout
from trm_core.autotune.runner import TrialRunner
from trm_core.autotune.search import Candidate, Search, SearchSpace, Trial, choose, divisors, thread_counts
from bench.common import set_flags


def make_run(run_dir: Path, preset: str, sets: list[str]) -> None:
    argv = [sys.executable, "-m", "trm_core.worker", "--run-dir", str(run_dir), "--preset", preset,
            *set_flags(["train.max_steps=1", *sets])]
    subprocess.run(argv, check=True, capture_output=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="tiny")
    p.add_argument("--set", dest="sets", action="append", default=[])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--cores", type=int, default=0, help="thread counts up to this; 0 = this machine's cores")
    args = p.parse_args()
    import os
    cores = args.cores or len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        make_run(run_dir, args.preset, args.sets)
        config_path = run_dir / layout.RUN_CONFIG
        cfg = config_mod.resolve(base=config_mod.read_run_config(config_path), env={})
        runner = TrialRunner(config_path, cfg, time.monotonic() + 10**6, threading.Event())
        batch = cfg.train.batch_size
        print(f"run: preset {args.preset} {' '.join(args.sets)}; batch {batch}, micro {cfg.micro_batch}, "
              f"threads {cfg.train.threads or 'default'}; {cores} cores")

        t0 = time.monotonic()
        space = SearchSpace(batch, Candidate(batch, cfg.micro_batch, cfg.train.threads), cores,
                            min_gain=cfg.autotune.min_gain)
        trials = Search(space, runner, lambda: False).run()
        pick = choose(trials, trials[0], cfg.autotune.min_gain)
        search_s = time.monotonic() - t0
        print(f"search: {len(trials)} trials, {search_s:.0f} s -> {pick.candidate.label()} "
              f"({pick.samples_per_s:.1f} samples/s)")

        t0 = time.monotonic()
        sweep: list[Trial] = [runner(Candidate(batch, m, n)) for m in divisors(batch) for n in thread_counts(cores)]
        sweep_s = time.monotonic() - t0
        best = max((t for t in sweep if t.accepted), key=lambda t: t.samples_per_s)
        print(f"sweep: {len(sweep)} trials, {sweep_s:.0f} s -> {best.candidate.label()} "
              f"({best.samples_per_s:.1f} samples/s)")
        for t in sweep:
            print(f"  {t.candidate.label():<34} {t.samples_per_s or 0:8.1f} samples/s  peak {t.peak_mb or 0:6.0f} MiB")

        picks, bests = [], []
        for _ in range(args.rounds):  # side by side: the noise of the moment hits both
            picks.append(runner(pick.candidate).samples_per_s)
            bests.append(runner(best.candidate).samples_per_s)
        ratio = statistics.median(picks) / statistics.median(bests)
        print(f"re-measured {args.rounds}x interleaved: pick {statistics.median(picks):.1f}, "
              f"sweep best {statistics.median(bests):.1f} samples/s (medians)")
        print(f"RESULT pick/best = {ratio:.3f}; search time / sweep time = {search_s / sweep_s:.2f} "
              f"({len(trials)} vs {len(sweep)} trials)")


if __name__ == "__main__":
    main()
