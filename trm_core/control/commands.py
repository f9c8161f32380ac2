"""Commands from clients to the run's keeper, through the run dir: one small JSON file each in
``RUN_DIR/commands/``, answered by a ``command`` event in the log.

Files, not a socket: a command survives the keeper's death (the next keeper answers it), any process that
can write a file can send one (a cron job, a shell script, another host on a shared disk), nothing holds a
connection, and the answer lands in the one place every client already reads. The keeper looks every
``POLL_S``; that is the command's latency.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from trm_core.rundir import layout
from trm_core.rundir.events import read_tail
from trm_core.rundir.records import CommandAck, parse

COMMANDS = ("stop", "kill", "cancel_restart", "autotune", "cancel_autotune")
POLL_S = 0.2


@dataclass(frozen=True)
class Command:
    id: str
    command: str
    sender: str
    time: float
    path: Path
    args: dict = field(default_factory=dict)


def send(run_dir: Path, command: str, sender: str, args: dict | None = None) -> str:
    """Queue ``command`` (with ``args``: for autotune, ``sets`` and ``resume``) for the keeper; returns its id
    (the acknowledgement carries it)."""
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r}; commands: {', '.join(COMMANDS)}")
    inbox = run_dir / layout.COMMANDS
    inbox.mkdir(exist_ok=True)
    now = time.time()
    cid = uuid.uuid4().hex[:12]
    body = {"id": cid, "command": command, "sender": sender, "time": now, "args": args or {}}
    # the name sorts by time, so the keeper answers in the order commands were sent
    layout.write_atomic(inbox / f"{now:.6f}-{cid}.json", json.dumps(body).encode())
    return cid


def pending(run_dir: Path) -> list[Command]:
    """Commands waiting for the keeper, oldest first. A file that is not a command is set aside."""
    inbox = run_dir / layout.COMMANDS
    if not inbox.is_dir():
        return []
    out: list[Command] = []
    for path in sorted(p for p in inbox.iterdir() if p.suffix == ".json" and not p.name.startswith(".")):
        try:
            body = json.loads(path.read_text())
            args = body.get("args") or {}
            out.append(Command(str(body["id"]), str(body["command"]), str(body.get("sender", "?")),
                               float(body.get("time", 0.0)), path, args if isinstance(args, dict) else {}))
        except (OSError, ValueError, KeyError, TypeError):
            path.rename(path.with_name(path.name + ".bad"))
    return out


def discard_all(run_dir: Path) -> None:
    """A new start (launch or resume) is a new request: commands left for an older keeper do not apply."""
    inbox = run_dir / layout.COMMANDS
    if inbox.is_dir():
        for path in inbox.iterdir():
            path.unlink(missing_ok=True)


def answer(run_dir: Path, cid: str, timeout_s: float) -> CommandAck | None:
    """Wait for the keeper's answer to command ``cid`` (from the end of the log); None after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        for line in reversed(read_tail(run_dir / layout.EVENTS, 1 << 16)):
            if line["event"] == CommandAck.KIND and line.get("id") == cid:  # parse only the answer
                ack = parse(line)
                assert isinstance(ack, CommandAck)
                return ack
        if time.monotonic() >= deadline:
            return None
        time.sleep(POLL_S / 2)


def sender_name(role: str) -> str:
    return f"{role} pid {os.getpid()}"
