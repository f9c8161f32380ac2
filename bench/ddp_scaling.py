"""Global samples/s of the real worker at 1 and at N ranks (torchrun, DDP), and the scaling efficiency.

    python -m bench.ddp_scaling --ranks 2 --device cuda     # on a machine with 2 GPUs (bench/gpu_check.sh)
    python -m bench.ddp_scaling --ranks 2 --device cpu      # the same path on CPU cores (gloo)

Each side is a fresh run through trm-tui --no-ui (keeper, launcher, torchrun) with the same global batch;
the figure is the median of the step events' samples_per_s after the warm-up steps. Efficiency is
samples/s at N ranks over N times samples/s at 1: 1.0 is perfect scaling. On a CPU the ranks share the
machine's cores, so the figure checks the path, not the speed-up.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from bench.common import set_flags

SHAPE = ["model.net='attention'", "model.dim=256", "model.depth=2", "model.num_heads=4", "model.seq_len=128",
         "model.latent_steps=2", "model.refinement_blocks=2", "model.max_supervision_steps=2",
         "train.warmup_steps=2", "train.eval_every=0", "train.checkpoint_every=100000", "train.ema_decay=0",
         "data.max_bytes=2000000"]


def measure(ranks: int, device: str, batch: int, steps: int, warmup: int, root: Path) -> dict:
    run_dir = root / f"ranks-{ranks}"
    sets = SHAPE + [f"train.batch_size={batch}", f"train.max_steps={steps}", f"train.device='{device}'",
                    f"distributed.nproc_per_node={ranks}"]
    args = [sys.executable, "-m", "trm_tui.cli", "--no-ui", "--run-dir", str(run_dir), *set_flags(sets)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"{ranks} rank(s) failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    lines = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    rates = [e["samples_per_s"] for e in lines if e["event"] == "step" and e["step"] > warmup]
    slowest = [e.get("slowest_step_s") for e in lines if e["event"] == "step" and e["step"] > warmup]
    return {"ranks": ranks, "samples_per_s": round(statistics.median(rates), 2),
            "slowest_step_s": round(statistics.median(s for s in slowest if s), 4) if any(slowest) else None}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--device", default="cuda")
    p.add_argument("--batch", type=int, default=64, help="the global batch (each rank trains batch / ranks)")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--json-out", type=Path)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        one = measure(1, args.device, args.batch, args.steps, args.warmup, Path(tmp))
        many = measure(args.ranks, args.device, args.batch, args.steps, args.warmup, Path(tmp))
    result = {"device": args.device, "global_batch": args.batch, "one": one, "many": many,
              "efficiency": round(many["samples_per_s"] / (args.ranks * one["samples_per_s"]), 3)}
    print(f"global samples/s: 1 rank {one['samples_per_s']}, {args.ranks} ranks {many['samples_per_s']} "
          f"(scaling efficiency {result['efficiency']:.2f}) on {args.device}, global batch {args.batch}")
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
