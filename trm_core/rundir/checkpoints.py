"""Atomic, verified checkpoints in ``RUN_DIR/checkpoints/``.

A checkpoint is ``step-NNNNNNNN.pt`` plus a small sidecar ``step-NNNNNNNN.json`` (step, epoch, loss, time,
config hash, size, sha256). The .pt is written to a temp file in the same folder while its sha256 is
computed, fsynced, renamed into place; then the sidecar the same way; then the folder is fsynced. A
checkpoint without a sidecar, or whose bytes do not match it, does not verify and is never loaded, so a
kill at any instant leaves the previous checkpoint as the newest good one. Progress comes from the sidecar
alone: reading it costs milliseconds whatever the size of the tensors.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Callable

from trm_core.rundir import layout

if TYPE_CHECKING:
    import torch

SIDECAR_FORMAT = 1
_NAME = re.compile(r"^step-(\d{8,})\.json$")
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class CheckpointInfo:
    """What the sidecar says about one checkpoint."""

    path: Path
    step: int
    epoch: int
    loss: float | None
    time: float
    config_hash: str
    bytes: int
    sha256: str
    best: tuple[float, int] | None = None  # the run's best eval (score, step) when this was saved (scores.py)
    compiled: bool | None = None  # train.compile = "auto"'s verdict in the checkpoint, when it has one
    target: tuple[int, float, int] | None = None  # when train.target_score was reached: (step, seconds, samples)


class _HashingWriter:
    """A write-only file wrapper that hashes what passes through (one pass over the bytes), and tells
    ``on_write`` the size of each chunk."""

    def __init__(self, fh: BinaryIO, on_write: Callable[[int], None] | None = None) -> None:
        self.fh = fh
        self.digest = hashlib.sha256()
        self.size = 0
        self.on_write = on_write

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.digest.update(view)
        self.size += len(view)
        if self.on_write is not None:
            self.on_write(len(view))
        try:
            return self.fh.write(view)
        except OSError as exc:  # torch's writer reports it as "unexpected pos": keep the real cause
            self.error = exc
            raise

    error: OSError | None = None

    def flush(self) -> None:
        self.fh.flush()


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def save_checkpoint(folder: Path, state: dict[str, Any], *, step: int, epoch: int, loss: float | None,
                    config_hash: str, on_write: Callable[[int], None] | None = None,
                    best: tuple[float, int] | None = None,
                    target: tuple[int, float, int] | None = None) -> CheckpointInfo:
    """Save ``state`` as the checkpoint of ``step``, atomically, with its sidecar. ``on_write`` hears the size
    of each chunk as it is written (progress; the test suite slows writes down with it). ``best``: the run's
    best eval so far, kept in the sidecar, where status finds it without reading back through the log."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{checkpoint_name(step)}.pt"
    import torch  # here, not at the top: status readers of this module must not pay for importing torch

    newest = latest_progress(folder)
    expected = newest.bytes if newest is not None else None
    free = layout.free_bytes(folder)
    if expected and free is not None and free < expected * 1.05 + (1 << 20):
        raise layout.DiskFull(final, expected)  # would not fit: fail before writing half of it
    writer: _HashingWriter | None = None
    try:
        with layout.atomic_file(final) as fh:  # a failed write removes its temp file
            writer = _HashingWriter(fh, on_write)
            torch.save(state, writer)
    except Exception as exc:
        if layout.is_disk_full(exc) or (writer is not None and writer.error is not None
                                        and layout.is_disk_full(writer.error)):
            raise layout.DiskFull(final, expected or (writer.size if writer else None)) from exc
        raise
    compiled = state.get("compiled") if isinstance(state.get("compiled"), bool) else None
    info = CheckpointInfo(final, step, epoch, loss, time.time(), config_hash, writer.size,
                          writer.digest.hexdigest(), best, compiled, target)
    layout.write_atomic(final.with_suffix(".json"), json.dumps({
        "format": SIDECAR_FORMAT, "file": final.name, "step": step, "epoch": epoch, "loss": loss,
        "time": info.time, "config_hash": config_hash, "bytes": info.bytes, "sha256": info.sha256,
        **({"best_score": best[0], "best_step": best[1]} if best else {}),
        **({"compiled": compiled} if compiled is not None else {}),
        **(dict(zip(("target_step", "target_seconds", "target_samples"), target)) if target else {})},
        indent=1).encode())
    layout.fsync_dir(folder)
    return info


def read_sidecar(path: Path) -> CheckpointInfo | None:
    """Parse one sidecar; ``None`` when it is missing, partial or malformed."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        return CheckpointInfo(path.with_name(meta["file"]), int(meta["step"]), int(meta["epoch"]),
                              meta.get("loss"), float(meta["time"]), str(meta["config_hash"]),
                              int(meta["bytes"]), str(meta["sha256"]), _best(meta),
                              meta.get("compiled") if isinstance(meta.get("compiled"), bool) else None, _target(meta))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _target(meta: dict[str, Any]) -> tuple[int, float, int] | None:
    """The sidecar's time to target: advice for status, so a malformed one is dropped, never the checkpoint."""
    try:
        return (int(meta["target_step"]), float(meta["target_seconds"]), int(meta["target_samples"])) \
            if "target_step" in meta else None
    except (TypeError, ValueError, KeyError):
        return None


def _best(meta: dict[str, Any]) -> tuple[float, int] | None:
    """The sidecar's best eval: advice for status, so a malformed one is dropped, never the checkpoint."""
    try:
        return float(meta["best_score"]), int(meta["best_step"])
    except (KeyError, ValueError, TypeError):
        return None


def list_checkpoints(folder: Path) -> list[CheckpointInfo]:
    """Checkpoints with a readable sidecar, newest first (not yet verified against their bytes)."""
    if not folder.is_dir():
        return []
    infos = [read_sidecar(p) for p in folder.iterdir() if _NAME.match(p.name)]
    return sorted((i for i in infos if i is not None), key=lambda i: i.step, reverse=True)


def latest_progress(folder: Path) -> CheckpointInfo | None:
    """The newest checkpoint's metadata, from its sidecar only: cheap enough to poll."""
    found = list_checkpoints(folder)
    return found[0] if found else None


def newest_whole(folder: Path) -> tuple[CheckpointInfo | None, list[tuple[CheckpointInfo, str]]]:
    """The newest checkpoint whose file is there at its sidecar's size, and each newer one that is not, with
    what is wrong: a stat each, cheap enough for status to poll (``newest_verified`` also reads every byte)."""
    return _newest_passing(folder, size_problem)


def _newest_passing(folder: Path, problem_of: Callable[[CheckpointInfo], str | None],
                    ) -> tuple[CheckpointInfo | None, list[tuple[CheckpointInfo, str]]]:
    """The newest checkpoint with no problem, and each newer one with its problem."""
    failed: list[tuple[CheckpointInfo, str]] = []
    for info in list_checkpoints(folder):
        problem = problem_of(info)
        if problem is None:
            return info, failed
        failed.append((info, problem))
    return None, failed


def size_problem(info: CheckpointInfo) -> str | None:
    """A checkpoint file that is missing or not its sidecar's size (a truncated copy, a disk that filled)."""
    try:
        size = info.path.stat().st_size
    except FileNotFoundError:
        return f"{info.path.name} is missing"
    if size != info.bytes:
        return f"{info.path.name} has {size} bytes, its sidecar says {info.bytes} (truncated?)"
    return None


def verify(info: CheckpointInfo) -> str | None:
    """``None`` when the checkpoint's bytes match its sidecar, else what is wrong."""
    problem = size_problem(info)
    if problem is not None:
        return problem
    digest = hashlib.sha256()
    with open(info.path, "rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != info.sha256:
        return f"{info.path.name} does not match its sha256 (corrupt)"
    return None


def newest_verified(folder: Path) -> tuple[CheckpointInfo | None, list[tuple[CheckpointInfo, str]]]:
    """The newest checkpoint that verifies, and each newer one that did not with what is wrong with it."""
    return _newest_passing(folder, verify)


def quarantine(info: CheckpointInfo) -> Path:
    """Set a checkpoint that failed verification aside (renamed, not deleted) so it never counts again."""
    for p in (info.path, info.path.with_suffix(".json")):
        if p.exists():
            p.rename(p.with_name(p.name + ".corrupt"))
    return info.path.with_name(info.path.name + ".corrupt")


def load_checkpoint(info: CheckpointInfo, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    import torch

    return torch.load(info.path, map_location=map_location, weights_only=True)


def prune(folder: Path, keep: int, also_keep: int | None = None) -> list[Path]:
    """Delete all but the newest ``keep`` checkpoints (and the one at step ``also_keep``: the run's best eval,
    which ``eval --checkpoint best`` opens), .pt files without a sidecar, and temp files that no live writer
    owns. Call it right after a save: then every listed checkpoint has just been verified or written, and
    failed ones were quarantined on restore."""
    removed: list[Path] = []
    for info in list_checkpoints(folder)[keep:]:
        if info.step == also_keep:
            continue
        for p in (info.path, info.path.with_suffix(".json")):
            p.unlink(missing_ok=True)
            removed.append(p)
    for p in folder.glob("step-*.pt"):
        if not p.with_suffix(".json").exists():  # killed between the .pt rename and its sidecar: never valid
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed + layout.remove_dead_temps(folder)
