"""The run's event log, ``RUN_DIR/events.jsonl``: one JSON object per line, the writer and its readers.

Each event is written with a single ``os.write`` on an ``O_APPEND`` descriptor, so lines from the trainer,
the watchdog thread and a signal handler never interleave, and there is no Python buffer to lose on a
crash. The readers skip (and count) partial or malformed lines instead of failing. What each kind of line
holds is defined in ``records``; readers get plain dicts (cheap, and what ``--json`` passes on) and turn
one into a typed record with ``records.parse`` where they use its fields.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trm_core.rundir import strict_json
from trm_core.rundir.records import SCHEMA_VERSION, Event, as_line

__all__ = ["SCHEMA_VERSION", "EventTail", "EventWriter", "parse_lines", "read_events", "read_span", "read_tail",
           "sample_events"]  # SCHEMA_VERSION: readers check a line's "v" against it



class EventWriter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)  # the umask decides
        self.last_write = time.monotonic()

    def emit(self, record: Event) -> dict[str, Any]:
        """Append one typed record as a line; returns the line as written (a dict, as readers get it)."""
        line_fields = strict_json.clean(as_line(record, round(time.time(), 6)))
        line = json.dumps(line_fields, separators=(",", ":"), allow_nan=False) + "\n"
        os.write(self._fd, line.encode())
        self.last_write = time.monotonic()
        return line_fields

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class SilentLog:
    """The event log of a rank other than 0: it writes nothing (rank 0's log is the run's)."""

    def __init__(self) -> None:
        self.last_write = time.monotonic()

    def emit(self, record: object) -> dict:
        self.last_write = time.monotonic()
        return {}

    def close(self) -> None:
        pass


@dataclass
class ReadResult:
    events: list[dict[str, Any]] = field(default_factory=list)
    malformed: int = 0
    offset: int = 0  # bytes consumed: the start of the first incomplete line


def parse_lines(blob: bytes) -> ReadResult:
    """Parse complete lines of ``blob``; a trailing line without a newline is left unconsumed."""
    result = ReadResult()
    end = blob.rfind(b"\n") + 1
    result.offset = end
    for raw in blob[:end].split(b"\n")[:-1]:
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            result.malformed += 1
            continue
        if not isinstance(record, dict) or not isinstance(record.get("event"), str):
            result.malformed += 1
            continue
        result.events.append(record)
    return result


def read_events(path: Path) -> ReadResult:
    """Every complete, well-formed event in the file (missing file: none)."""
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        return ReadResult()
    return parse_lines(blob)


class EventTail:
    """Follow a growing events file: yields new complete events; survives truncation and replacement."""

    def __init__(self, path: Path, from_end: bool = False) -> None:
        self.path = path
        self.offset = 0
        self.inode: int | None = None
        self.malformed = 0
        if from_end:
            try:
                st = path.stat()
                self.offset, self.inode = st.st_size, st.st_ino
            except FileNotFoundError:
                pass

    def poll(self) -> list[dict[str, Any]]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return []
        if st.st_ino != self.inode or st.st_size < self.offset:
            self.inode, self.offset = st.st_ino, 0  # rotated or truncated: start over
        if st.st_size == self.offset:
            return []
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            blob = fh.read(st.st_size - self.offset)
        result = parse_lines(blob)
        self.offset += result.offset
        self.malformed += result.malformed
        return result.events


def sample_events(path: Path, count: int, end: int | None = None) -> list[dict[str, Any]]:
    """About ``count`` events spread evenly over the first ``end`` bytes of the file, without reading it all.

    Seeks to evenly spaced offsets and parses the first whole line after each: a long run's log (a million
    lines) gives its overall shape in milliseconds. Lines that are not events are skipped.
    """
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return []
    out: list[dict[str, Any]] = []
    with fh:
        size = fh.seek(0, 2) if end is None else end
        last = -1
        for k in range(count):
            offset = size * k // count
            fh.seek(offset)
            if offset:
                fh.readline()  # skip the line the offset fell into
            start = fh.tell()
            if start <= last or start >= size:
                continue
            line = fh.readline()
            last = start
            out.extend(parse_lines(line if line.endswith(b"\n") else b"").events)
    return out


def read_span(path: Path, start: int, end: int) -> list[dict[str, Any]]:
    """The complete events between byte offsets ``start`` (moved to the next line start) and ``end``."""
    try:
        with open(path, "rb") as fh:
            fh.seek(start)
            blob = fh.read(max(0, end - start))
    except FileNotFoundError:
        return []
    if start > 0:
        blob = blob[blob.find(b"\n") + 1:]
    return parse_lines(blob).events


def tail_bytes(path: Path, max_bytes: int) -> bytes:
    """The whole lines in the last ``max_bytes`` of the file (the line cut in half dropped); none missing."""
    try:
        with open(path, "rb") as fh:
            start = max(0, fh.seek(0, 2) - max_bytes)
            fh.seek(start)
            blob = fh.read()
    except FileNotFoundError:
        return b""
    return blob[blob.find(b"\n") + 1:] if start > 0 else blob


def read_tail(path: Path, max_bytes: int = 1 << 20) -> list[dict[str, Any]]:
    """The complete events in the last ``max_bytes`` of the file: recent state without reading it all."""
    return parse_lines(tail_bytes(path, max_bytes)).events
