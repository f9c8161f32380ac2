"""Where the worker's machinery time goes: Python's garbage collector, counted per generation.

Runs the real worker loop (``trm_core.worker.process.main``) in this process with ``gc.callbacks`` timing
every collection, then reads the run's own step events as ``machinery_overhead.py`` does. A full (gen 2)
collection walks every object the process holds (the model, torch's modules, the dataset's index): that
is the pause to look for in the time between two steps.

Run from the repository root:  python -m bench.gc_pauses [--steps 300] [--preset tiny]
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path


from trm_core.rundir.events import read_events
from trm_core.rundir import layout
from bench.common import set_flags


class GcClock:
    """Every collection: when it ended (wall clock, as the events' times), its generation and its seconds."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, int, float]] = []
        self._t0 = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
            return
        self.seen.append((time.time(), info["generation"], time.perf_counter() - self._t0))

    def summary(self, since: float, until: float) -> str:
        inside = [(g, s) for t, g, s in self.seen if since <= t <= until]
        per_gen = ", ".join(f"gen{g}: {sum(1 for x, _ in inside if x == g)} "
                            f"({1e3 * sum(s for x, s in inside if x == g):.1f} ms)" for g in range(3))
        longest = max((s for _, s in inside), default=0.0)
        return f"{per_gen}; longest {1e3 * longest:.2f} ms"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="tiny")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--checkpoint-every", type=int, default=100)
    args = p.parse_args()
    from trm_core.worker.process import main as worker_main

    clock = GcClock()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        sets = [f"train.max_steps={args.steps}", f"train.checkpoint_every={args.checkpoint_every}",
                "train.eval_every=0", "train.log_every=1"]
        gc.callbacks.append(clock)
        try:
            code = worker_main(["--run-dir", str(run_dir), "--preset", args.preset,
                                *set_flags(sets)])
        finally:
            gc.callbacks.remove(clock)
        assert code == 0, code
        evs = read_events(run_dir / layout.EVENTS).events
    steps = [e for e in evs if e["event"] == "step"]
    wall = steps[-1]["time"] - steps[0]["time"]
    inside = sum(e["step_s"] + e["data_s"] for e in steps[1:])
    print(f"preset={args.preset} steps={len(steps)}")
    print(f"wall {wall:.3f}s from the first step event to the last, machinery {100 * (wall - inside) / wall:.2f}% of it")
    print(f"collections in that time: {clock.summary(steps[0]['time'], steps[-1]['time'])}")
    print(f"collections in set-up: {clock.summary(0.0, steps[0]['time'])}")


if __name__ == "__main__":
    main()
