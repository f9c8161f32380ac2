"""Whose run it is, and who may act on it: on a shared machine a run's folder is read by many, controlled by one.

A run belongs to the user who owns its ``config.toml`` (the worker writes it), or its folder before there is
one. Reading a run is the file system's business: ``status``, ``runs`` and the dashboard show anyone's run
their permissions let them read. Acting on it (stop, kill, resume, auto-tune) is for its owner alone:

- front ends refuse, naming the owner, before any signal is sent or any file written (``require_owner``);
- the run's own processes (its keeper and worker, which run as the owner) act only on a command file or a
  ``stop.request`` the owner's uid owns (``owned_by``), so a folder made writable by mistake, or a shared
  file system, still lets no one else stop the run;
- the folders and files that steer the run (``commands/``, the keeper's and worker's identity files) are
  created so that no one else may write them (``private_dir``, ``CONTROL_FILE_MODE``), whatever the umask.

Nothing here imports torch.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from trm_core.rundir import layout

CONTROL_FILE_MODE = 0o644  # the identity files and stop.request: readable by all (status), written by the owner
PRIVATE_DIR_MODE = 0o700   # commands/: no one else may list it or drop a file into it


class NotOwner(Exception):
    """A user acting on a run that is not theirs: one line naming the run's owner and what to do instead."""


def user_name(uid: int) -> str:
    """A uid as people say it: its login name, or ``uid N`` where the passwd database does not know it."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def who(uid: int) -> str:
    """``alice (uid 1000)``: the name and the number, as refusals and command events say it."""
    name = user_name(uid)
    return name if name.startswith("uid ") else f"{name} (uid {uid})"


def run_owner(root: Path) -> int | None:
    """The uid the run belongs to: the owner of its ``config.toml``, else of its folder; None when neither
    exists (no run yet: whoever starts it will own it)."""
    for path in (root / layout.RUN_CONFIG, root):
        try:
            return os.stat(path).st_uid
        except OSError:
            continue
    return None


def owned_by(path: Path, uid: int) -> bool:
    """Whether ``path`` itself (not what a link points to) belongs to ``uid``; False when it is gone."""
    try:
        return os.lstat(path).st_uid == uid
    except OSError:
        return False


def file_uid(path: Path) -> int | None:
    try:
        return os.lstat(path).st_uid
    except OSError:
        return None


def is_mine(root: Path) -> bool:
    """The run in ``root`` is this process's user's (or there is no run yet)."""
    owner = run_owner(root)
    return owner is None or owner == os.geteuid()


def require_owner(root: Path, doing: str) -> None:
    """Raise ``NotOwner`` when this user does not own the run in ``root``: ``doing`` says what was refused
    (``stop it``), and the message names the owner and how they would do it."""
    owner = run_owner(root)
    me = os.geteuid()
    if owner is None or owner == me:
        return
    raise NotOwner(f"the run in {root} belongs to {who(owner)}; only its owner may {doing} "
                   f"(you are {who(me)}): ask them, or run it as them (sudo -u {user_name(owner)} ...)")


def private_dir(path: Path) -> Path:
    """``path`` as a folder no one else may write (mode 0700 whatever the umask). An existing one of ours is
    narrowed to 0700; one someone else made is left alone (the files in it are checked one by one)."""
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=False, exist_ok=True)
    try:
        st = os.lstat(path)
        if st.st_uid == os.geteuid() and st.st_mode & 0o777 != PRIVATE_DIR_MODE:
            os.chmod(path, PRIVATE_DIR_MODE)
    except OSError:
        pass
    return path
