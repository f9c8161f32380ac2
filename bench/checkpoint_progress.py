"""Reading a checkpoint's progress costs milliseconds whatever its size; verifying and loading do not.

Saves one checkpoint of about ``--mb`` MiB through the real atomic writer, then times, side by side:
``latest_progress`` (the sidecar only), ``verify`` (size + sha256 of every byte) and ``load_checkpoint``
(``torch.load(weights_only=True)``).

Run from the repository root:  python -m bench.checkpoint_progress [--mb 1024]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch


from trm_core.rundir import checkpoints as ckpt
from bench.common import median_seconds


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--mb", type=int, default=1024)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        folder = Path(tmp)
        state = {"model": {f"w{i}": torch.randn(args.mb * 2**20 // 4 // 16) for i in range(16)}}
        t0 = time.perf_counter()
        info = ckpt.save_checkpoint(folder, state, step=1000, epoch=2, loss=0.5, config_hash="bench")
        save_s = time.perf_counter() - t0
        del state
        progress_s = median_seconds(lambda: ckpt.latest_progress(folder), 50)
        verify_s = median_seconds(lambda: ckpt.verify(info), 2)
        load_s = median_seconds(lambda: ckpt.load_checkpoint(info), 2)
    print(f"checkpoint {info.bytes / 2**20:.0f} MiB: save (hash while writing, fsync, rename, sidecar) {save_s:.2f}s")
    print(f"latest_progress {1000 * progress_s:.2f} ms | verify {verify_s:.2f}s | torch.load {load_s:.2f}s "
          f"| progress is {verify_s / progress_s:,.0f}x cheaper than verifying")


if __name__ == "__main__":
    main()
