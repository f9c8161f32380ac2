"""The questions every process asks of a run's log, answered from its tail in one place.

A log grows for the whole life of a run (a step record every few steps, for days), so nothing reads it all
to learn what happened last: each query reads the last ``TAIL_BYTES`` and parses the records there. One
window for every query, so two processes asking the same question of the same log get the same answer.
Following a log as it grows is ``events.EventTail``'s job, not this module's.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Iterable

from trm_core.rundir.events import parse_lines, tail_bytes
from trm_core.rundir.records import CommandAck, Eval, Event, GiveUp, KeeperEnd, KeeperStart, Restart, RunEnd, \
    RunStart, Step, parse
from trm_core.rundir.scores import after_eval

TAIL_BYTES = 1 << 20  # about ten thousand records: hours of steps, every restart of a day


def _markers(kinds: tuple[type[Event], ...]) -> tuple[bytes, ...]:
    return tuple(f'"event"{sep}"{kind.KIND}"'.encode() for kind in kinds for sep in (":", ": "))


def _naming(path: Path, kinds: tuple[type[Event], ...]) -> list[bytes]:
    """The lines of the log's tail that name one of ``kinds`` (compact or spaced JSON), oldest first: each
    query wants a few kinds among thousands of step records, and only these lines are decoded."""
    markers = _markers(kinds)
    return [line for line in tail_bytes(path, TAIL_BYTES).split(b"\n") if any(m in line for m in markers)]


def first_time(path: Path) -> float | None:
    """When the run first started: the time of its log's first line (a heartbeat of the worker's start-up, or
    its run_start), read without reading the rest."""
    try:
        with open(path, "rb") as fh:
            first = fh.readline(1 << 16)
    except OSError:
        return None
    try:
        value = json.loads(first).get("time")
    except (ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) else None


def newest_in_log(path: Path, *kinds: type[Event]) -> Event | None:
    """The newest record of ``kinds`` anywhere in the log, read back from the end a window at a time: for a
    kind so rare that the tail may not hold one (a paper preset's eval comes every few thousand steps). Reads
    the whole log when there is none: a question for a worker's start, not for a poll."""
    markers = _markers(kinds)
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return None
    with fh:
        end, cut = fh.seek(0, 2), b""
        while end > 0:
            start = max(0, end - TAIL_BYTES)
            fh.seek(start)
            lines = (fh.read(end - start) + cut).split(b"\n")
            cut = lines.pop(0) if start > 0 else b""  # perhaps half a line: completed by the window before
            for line in reversed(lines):
                if any(m in line for m in markers):
                    found = [ev for ev in map(parse, parse_lines(line + b"\n").events) if isinstance(ev, kinds)]
                    if found:
                        return found[0]
            end = start
    return None


def recent(path: Path, *kinds: type[Event]) -> list[Event]:
    """The records of ``kinds`` in the last ``TAIL_BYTES`` of the log at ``path``, oldest first."""
    return [ev for ev in map(parse, parse_lines(b"\n".join(_naming(path, kinds)) + b"\n").events)
            if isinstance(ev, kinds)]


def newest(path: Path, *kinds: type[Event]) -> Event | None:
    """The newest record of ``kinds`` in the log's tail, decoding lines from the end until one is."""
    for line in reversed(_naming(path, kinds)):
        for ev in map(parse, parse_lines(line + b"\n").events):
            if isinstance(ev, kinds):
                return ev
    return None


def last_run_end(path: Path) -> RunEnd | None:
    """The run_end of the newest worker start, if it wrote one (none: it is running, or died without a word)."""
    end = None
    for ev in recent(path, RunStart, RunEnd):
        if isinstance(ev, RunStart):
            end = None
        elif isinstance(ev, RunEnd):
            end = ev
    return end


def last_step(path: Path) -> int:
    """The newest step the log records (0 for none): for a worker that died without a word."""
    ev = newest(path, Step, RunEnd)
    return ev.step if isinstance(ev, (Step, RunEnd)) else 0


def restarts_in_log(path: Path, window_s: float, now: float | None = None) -> list[tuple[float, int]]:
    """(time, failed step) of the restarts of the run's current episode within the window, oldest first.

    An episode starts with a launch by hand (a run_start that no restart led to) and ends with give_up:
    restarts before either belong to an earlier episode's budget."""
    now = time.time() if now is None else now
    episode: list[tuple[float, int]] = []
    restarting = False
    for ev in recent(path, Restart, GiveUp, RunStart):
        if isinstance(ev, Restart):
            episode.append((ev.time, ev.failed_step if ev.failed_step is not None else -1))
            restarting = True
        elif isinstance(ev, GiveUp) or (isinstance(ev, RunStart) and not restarting):
            episode = []
        if isinstance(ev, RunStart):
            restarting = False
    return [(t, step) for t, step in episode if now - t <= window_s]


def keeper_ending(path: Path) -> bool:
    """The newest keeper record is a keeper_end: the live keeper wrote its last word and is on its way out."""
    return isinstance(newest(path, KeeperStart, KeeperEnd), KeeperEnd)


def steps_per_epoch(path: Path) -> int | None:
    """The steps per epoch the run's newest start recorded; None before any start."""
    starts = recent(path, RunStart)
    return starts[-1].steps_per_epoch if starts else None


def best_eval(path: Path) -> tuple[float, int] | None:
    """(score, step) of the run's best eval by the task's figure: the newest eval carries every earlier one's
    (``best_*``; one written before those fields existed counts by its own figure)."""
    newest_eval = newest_in_log(path, Eval)
    return after_eval(None, newest_eval) if isinstance(newest_eval, Eval) else None


def resumed_total(path: Path, max_steps: int, epochs: int) -> int | None:
    """The steps a resume with these settings would train to: ``max_steps``, or epochs x the steps per epoch
    of the run's last start; None when that is unknown (the worker then decides)."""
    if max_steps:
        return max_steps
    per_epoch = steps_per_epoch(path)
    return epochs * per_epoch if per_epoch else None


def command_answer(lines: Iterable[dict], cid: str) -> CommandAck | None:
    """The keeper's answer to command ``cid`` among raw log lines (only the answer is parsed)."""
    for line in lines:
        if line.get("event") == CommandAck.KIND and line.get("id") == cid:
            ack = parse(line)
            assert isinstance(ack, CommandAck)
            return ack
    return None


def every(path: Path, *kinds: type[Event]) -> list[Event]:
    """Every record of ``kinds`` in the whole log, oldest first, read a window at a time and decoding only the
    lines that name them: for a question about the run's whole history (which checkpoint scored best), asked
    once by a command, never by a poll."""
    markers = _markers(kinds)
    found: list[Event] = []
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return found
    with fh:
        cut = b""
        while block := fh.read(TAIL_BYTES):
            lines = (cut + block).split(b"\n")
            cut = lines.pop()
            wanted = [line for line in lines if any(m in line for m in markers)]
            if wanted:
                found += [ev for ev in map(parse, parse_lines(b"\n".join(wanted) + b"\n").events) if isinstance(ev, kinds)]
    return found
