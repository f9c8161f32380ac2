"""Commands from clients to the run's keeper, through the run dir: one small JSON file each in
``RUN_DIR/commands/``, answered by a ``command`` event in the log.

Files, not a socket: a command survives the keeper's death (the next keeper answers it), any process that
can write a file can send one (a cron job, a shell script, another host on a shared disk), nothing holds a
connection, and the answer lands in the one place every client already reads. The keeper looks every
``POLL_S``; that is the command's latency.

Only the run's owner may command it: ``commands/`` is made mode 0700, and the keeper acts only on files its
own uid owns; any other is refused with a ``command`` event naming the uid (``rundir.ownership``).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

from trm_core.rundir import layout
from trm_core.rundir import log_queries
from trm_core.rundir.events import EventTail, read_tail
from trm_core.rundir.ownership import private_dir
from trm_core.rundir.records import CommandAck

POLL_S = 0.2


@dataclass(frozen=True)
class Request:
    """What a client asks of the keeper; one typed record per command, as the log's events are."""

    KIND: ClassVar[str] = ""

    @property
    def kind(self) -> str:
        return self.KIND

    def args(self) -> dict[str, Any]:
        """The command file's ``args``: the record's fields."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Stop(Request):
    """Stop with a checkpoint (a second one: at once, without); cancels a pending restart. ``why``: what asked,
    in words ("Ctrl-C in trm-tui --no-ui"), for the run's end line (the worker itself only sees a SIGTERM)."""

    KIND: ClassVar[str] = "stop"
    why: str = ""


@dataclass(frozen=True)
class Kill(Request):
    """SIGKILL the worker (or every rank); the newest good checkpoint is kept."""

    KIND: ClassVar[str] = "kill"


@dataclass(frozen=True)
class CancelRestart(Request):
    KIND: ClassVar[str] = "cancel_restart"


@dataclass(frozen=True)
class Autotune(Request):
    """Stop the run with a checkpoint, search with ``sets`` (autotune.* keys), then resume it if ``resume``."""

    KIND: ClassVar[str] = "autotune"
    sets: tuple[str, ...] = ()
    resume: bool = True


@dataclass(frozen=True)
class CancelAutotune(Request):
    """End the search; the run resumes with its settings."""

    KIND: ClassVar[str] = "cancel_autotune"


@dataclass(frozen=True)
class UnknownRequest(Request):
    """A command file naming no command this keeper knows (a newer client's): refused, naming it."""

    name: str = ""

    @property
    def kind(self) -> str:
        return self.name


REQUESTS: dict[str, type[Request]] = {cls.KIND: cls for cls in (Stop, Kill, CancelRestart, Autotune, CancelAutotune)}
COMMANDS = tuple(REQUESTS)


def request_of(name: str, args: dict[str, Any] | None = None) -> Request:
    """The typed request a command file names; its ``args`` fill the fields they match, with their types."""
    cls = REQUESTS.get(name)
    if cls is None:
        return UnknownRequest(name)
    args = args or {}
    if cls is Autotune:
        sets = args.get("sets", [])
        return Autotune(tuple(str(x) for x in sets if isinstance(x, str)) if isinstance(sets, list) else (),
                        bool(args.get("resume", True)))
    if cls is Stop:
        why = args.get("why", "")
        return Stop(why[:200] if isinstance(why, str) else "")
    return cls()


@dataclass(frozen=True)
class Command:
    """A request as it waits in the inbox: who sent it, when, its file (removed once answered), and the uid
    that owns that file (the only sender identity a file system vouches for)."""

    id: str
    sender: str
    time: float
    path: Path
    request: Request
    uid: int = -1

    @property
    def command(self) -> str:
        return self.request.kind


def send(run_dir: Path, request: Request | str, sender: str, args: dict | None = None) -> str:
    """Queue ``request`` for the keeper (a typed record, or a command's name with its ``args``, as a script
    writes it); returns its id (the acknowledgement carries it)."""
    if isinstance(request, str):
        if request not in REQUESTS:
            raise ValueError(f"unknown command {request!r}; commands: {', '.join(COMMANDS)}")
        request = request_of(request, args)
    inbox = private_dir(run_dir / layout.COMMANDS)
    now = time.time()
    cid = uuid.uuid4().hex[:12]
    body = {"id": cid, "command": request.kind, "sender": sender, "time": now, "args": request.args()}
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
            uid = os.lstat(path).st_uid
            body = json.loads(path.read_text())
            args = body.get("args") or {}
            request = request_of(str(body["command"]), args if isinstance(args, dict) else {})
            out.append(Command(str(body["id"]), str(body.get("sender", "?")), float(body.get("time", 0.0)), path,
                               request, uid))
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
    """Wait for the keeper's answer to command ``cid``; None after ``timeout_s``. What the log held already is
    read once from its tail; what comes after, as it comes (a poll reads only the new lines)."""
    deadline = time.monotonic() + timeout_s
    log = run_dir / layout.EVENTS
    follow = EventTail(log, from_end=True)
    ack = log_queries.command_answer(read_tail(log, log_queries.TAIL_BYTES), cid)
    while ack is None:
        if time.monotonic() >= deadline:
            return None
        time.sleep(POLL_S / 2)
        ack = log_queries.command_answer(follow.poll(), cid)
    return ack


def sender_name(role: str) -> str:
    return f"{role} pid {os.getpid()}"
