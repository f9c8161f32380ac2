"""Where a builder writes: a temp folder beside ``--out``, renamed to it only when everything is written, so a
failed or interrupted build leaves nothing half-written; and the summary it prints at the end."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from trm_core.config import ConfigError


@dataclass
class BuildSummary:
    out: Path
    splits: dict[str, dict[str, int]] = field(default_factory=dict)
    bytes: int = 0

    def add(self, split: str, **counts: int) -> None:
        self.splits[split] = counts

    def text(self) -> str:
        parts = [f"{split}: " + ", ".join(f"{v:,} {k}" for k, v in counts.items()) for split, counts in self.splits.items()]
        return f"wrote {self.out}: " + "; ".join(parts) + f"; {self.bytes / 2**20:.1f} MiB"


def hold_out(count: int, fraction: float, rng: np.random.Generator, source: Path, what: str
             ) -> tuple[np.ndarray, np.ndarray]:
    """(test, train) row numbers: a fixed ``fraction`` of ``count`` rows held out at random, at least one, before
    any augmentation (no test puzzle is trained on in any disguise)."""
    order = rng.permutation(count)
    n_test = max(1, int(round(count * fraction)))
    if n_test >= count:
        raise ConfigError(f"{source}: {count} {what}(s) is too few to hold some out; give --test-csv")
    return order[:n_test], order[n_test:]


def check_out(out: Path) -> None:
    """``out`` may become the build: it does not exist, or is an empty folder. Asked before a long download too."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder; choose a folder that does not exist yet")
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out} already exists and is not empty; remove it or choose another folder")


@contextmanager
def building(out: Path) -> Iterator[Path]:
    """A fresh temp folder for the build; on success it becomes ``out``, on any failure it is removed."""
    check_out(out)
    tmp = out.with_name(f".{out.name}.building-{os.getpid()}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    except OSError as exc:  # a folder this user cannot write, a path through a file
        through = next((p for p in out.parents if p.exists()), None)
        why = f"{through} is a file" if through is not None and not through.is_dir() else exc.strerror or str(exc)
        raise ConfigError(f"--out {out}: cannot be written ({why}); choose a folder you can write") from None
    try:
        yield tmp
        if out.exists():
            out.rmdir()  # empty, checked above
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
