"""What the compile cache in a run dir saves a restart: the first compiled step in a fresh process with an empty
cache (a run's first start), then again with that cache (a keeper restart after a crash, a resume), beside the
eager first step and the steady step times of both networks.

    python -m bench.compile_cache                        # the tiny preset on this CPU
    python -m bench.compile_cache --preset tiny --device cuda

Each measurement is its own interpreter (as a restarted worker is), the cache directory set through
TORCHINDUCTOR_CACHE_DIR as the worker sets it to RUN_DIR/compile-cache.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import repo_env

ONE_PROCESS = r"""
import json, sys, time, torch
from trm_core.config import resolve
from trm_core.data.base import Batch
from trm_core.train.trainer import Trainer
preset, device, compiled, steps = sys.argv[1], sys.argv[2], sys.argv[3] == "on", int(sys.argv[4])
cfg = resolve(env={}, preset=preset, sets=[f"train.device='{device}'", f"train.compile='{sys.argv[3]}'"])
vocab = 258
tr = Trainer(cfg, vocab, total_steps=10**6)
g = torch.Generator().manual_seed(0)
b = Batch(torch.randint(0, vocab, (cfg.train.batch_size, cfg.model.seq_len), generator=g),
          torch.randint(0, vocab, (cfg.train.batch_size, cfg.model.seq_len), generator=g))
t0 = time.perf_counter(); tr.train_step(b); first = time.perf_counter() - t0
times = []
for _ in range(steps):
    t0 = time.perf_counter(); tr.train_step(b); times.append(time.perf_counter() - t0)
times.sort()
print(json.dumps({"first_s": first, "step_s": times[len(times) // 2]}))
"""


def measure(preset: str, device: str, compiled: bool, steps: int, cache: Path) -> dict:
    env = repo_env(TORCHINDUCTOR_CACHE_DIR=cache)
    out = subprocess.run([sys.executable, "-c", ONE_PROCESS, preset, device, "on" if compiled else "off", str(steps)],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="tiny")
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=8, help="steady steps timed after the first")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "compile-cache"
        eager = measure(a.preset, a.device, False, a.steps, cache)
        cold = measure(a.preset, a.device, True, a.steps, cache)
        warm = measure(a.preset, a.device, True, a.steps, cache)
        size = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file())
    print(f"{a.preset} on {a.device}: first step eager {eager['first_s']:.2f} s; compiled, empty cache "
          f"{cold['first_s']:.1f} s; compiled, from the cache {warm['first_s']:.1f} s "
          f"({cold['first_s'] / warm['first_s']:.1f}x less); cache {size / 2**20:.1f} MiB")
    print(f"steady step: eager {eager['step_s'] * 1e3:.1f} ms, compiled {cold['step_s'] * 1e3:.1f} ms "
          f"(first process), {warm['step_s'] * 1e3:.1f} ms (second)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
