"""The disk: the run dir writable, room for the checkpoints the run keeps, and with several nodes a file
system they all see (each node's keeper, and every rank's checkpoint restore, read the same run dir)."""

from __future__ import annotations

import os
from pathlib import Path

from trm_core.config import Config
from trm_core.doctor.report import Check, fail, ok, warn
from trm_core.rundir.layout import free_bytes

AREA = "disk"
# file systems one machine alone sees; anything else (nfs, lustre, gpfs, beegfs, cephfs, cifs, fuse...) is shared
LOCAL_FILESYSTEMS = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "tmpfs", "overlay", "f2fs", "vfat",
                               "ramfs", "jfs", "reiserfs"})


def nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def filesystem_type(path: Path) -> str | None:
    """The type of the mount holding ``path``, from /proc/mounts (Linux); None elsewhere."""
    try:
        mounts = [line.split() for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return None
    target = str(nearest_existing(path).resolve())
    best = None
    for fields in mounts:
        if len(fields) >= 3:
            point = fields[1].replace("\\040", " ")
            if (target == point or target.startswith(point.rstrip("/") + "/")) and (best is None or len(point) > len(best[0])):
                best = (point, fields[2])
    return best[1] if best else None


def on_this_machine(endpoint: str) -> bool:
    """A rendezvous on a loopback address: every node is a process of this machine (tests, a trial)."""
    import ipaddress
    import socket

    host = endpoint.rpartition(":")[0] or endpoint
    try:
        return all(ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None))
    except (OSError, ValueError):
        return False


def checkpoint_bytes(cfg: Config) -> int:
    """One checkpoint: the weights, the optimizer's two moments, the EMA copy, the buffers (the puzzle table)."""
    from trm_core.doctor.model_memory import data_shape, static_bytes

    params, _, buffers = static_bytes(cfg, data_shape(cfg))
    return params * 4 * (1 + 2 + (1 if cfg.train.ema_decay > 0 else 0)) + buffers


def checks(cfg: Config, run_dir: Path, with_model: bool = True) -> list[Check]:
    from trm_core.config import ConfigError
    from trm_core.doctor.model_memory import gib

    found: list[Check] = []
    where = nearest_existing(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        return [fail(AREA, "run dir", f"{run_dir} is a file", "give a folder (new or a run's) with --run-dir")]
    if not os.access(where, os.W_OK | os.X_OK):
        found.append(fail(AREA, "run dir", f"{where} is not writable by this user", "choose a --run-dir you can write"))
    else:
        found.append(ok(AREA, "run dir", f"{run_dir} can be written" + ("" if run_dir.exists() else f" (made in {where})")))
    free = free_bytes(where)
    try:
        one = checkpoint_bytes(cfg) if with_model else None  # the model's size needs torch (the meta device)
    except ConfigError:
        one = None  # the dataset check says why
    if free is not None and one is not None:
        keep = cfg.train.keep_checkpoints + 1  # the newest K, and the one being written before the oldest goes
        need = one * keep
        detail = (f"{gib(need)} for {keep} checkpoints of {gib(one)} (train.keep_checkpoints = "
                  f"{cfg.train.keep_checkpoints}, plus one being written); {gib(free)} free")
        if need > free:
            found.append(fail(AREA, "space", detail, "free space, lower train.keep_checkpoints, or choose a run "
                              "dir on a larger disk"))
        elif need > 0.8 * free:
            found.append(warn(AREA, "space", detail, "evals, logs and other runs need room too: free some space"))
        else:
            found.append(ok(AREA, "space", detail))
    fs = filesystem_type(run_dir)
    if cfg.distributed.nnodes > 1:
        if on_this_machine(cfg.distributed.rdzv_endpoint):
            found.append(ok(AREA, "shared", "every node on this machine (a loopback rendezvous): they share "
                                            f"{where}"))
        elif fs in LOCAL_FILESYSTEMS:
            found.append(fail(AREA, "shared", f"distributed.nnodes = {cfg.distributed.nnodes} but {where} is on a "
                              f"local {fs} file system; every node must see the same run dir",
                              "put the run dir on a shared file system (NFS, Lustre, GPFS, ...)"))
        else:
            found.append(ok(AREA, "shared", f"{where} is on {fs or 'an unknown file system'}: the nodes can share it"
                            if fs else f"the file system of {where} is unknown; it must be shared by every node"))
    elif fs:
        found.append(ok(AREA, "filesystem", f"{where} is on {fs}"))
    return found
