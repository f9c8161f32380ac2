"""What the events, checkpoints and watchdog cost, as a share of the worker's wall time.

Runs the real worker (``python -m trm_core.worker``) and reads its own events: each ``step`` event carries
``step_s``, the time inside ``Trainer.train_step``, and ``data_s``, the time building its batch: the work
a loop with every piece of machinery off would still do. Everything else between the first and the last
step event (writing events, checkpoint saves with their hashing and fsyncs, watchdog arming, heartbeats)
is the machinery:

    machinery = 1 - sum(step_s + data_s) / (wall time of those steps)

Timing inside one run is far more precise than comparing two runs on this noisy machine, where run-to-run
variation (a few %) is larger than the effect measured.

Run from the repository root:  python -m bench.machinery_overhead [--steps 300] [--preset tiny]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path


from trm_core.rundir.events import read_events
from trm_core.rundir import layout
from bench.common import repo_env, set_flags


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="tiny")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--set", dest="sets", action="append", default=[])
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        sets = [f"train.max_steps={args.steps}", f"train.checkpoint_every={args.checkpoint_every}",
                "train.eval_every=0", "train.log_every=1", *args.sets]
        cmd = [sys.executable, "-m", "trm_core.worker", "--run-dir", str(run_dir), "--preset", args.preset]
        cmd += set_flags(sets)
        env = repo_env()
        subprocess.run(cmd, check=True, env=env)
        evs = read_events(run_dir / layout.EVENTS).events
    steps = [e for e in evs if e["event"] == "step"]
    checkpoints = [e for e in evs if e["event"] == "checkpoint"]
    # from the end of step 1 to the end of the last step: steps 2..N and all the machinery in between
    wall = steps[-1]["time"] - steps[0]["time"]
    inside = sum(e["step_s"] for e in steps[1:])
    data = sum(e["data_s"] for e in steps[1:])
    ckpt_s = sum(e["seconds"] for e in checkpoints if e["step"] < steps[-1]["step"])
    print(f"preset={args.preset} steps={len(steps)} checkpoint_every={args.checkpoint_every} "
          f"log_every=1 events={len(evs)}")
    print(f"wall {wall:.3f}s, inside train_step {inside:.3f}s, checkpoint saves {ckpt_s:.3f}s "
          f"({len(checkpoints)} saves, {checkpoints[-1]['bytes'] / 2**20:.1f} MiB each)")
    print(f"building batches {data:.3f}s ({100 * data / wall:.2f}% of wall time)")
    machinery = wall - inside - data
    print(f"machinery {100 * machinery / wall:.2f}% of wall time: checkpoints {100 * ckpt_s / wall:.2f}%, "
          f"events, watchdog and the loop itself {100 * (machinery - ckpt_s) / wall:.2f}%")


if __name__ == "__main__":
    main()
