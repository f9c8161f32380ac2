"""The event log: strict JSON lines, and a reader that never crashes on partial or malformed input."""

from __future__ import annotations

import json
import os
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from trm_core.events import SCHEMA_VERSION, EventTail, EventWriter, parse_lines, read_events


def test_writer_lines_are_strict_json_with_time_and_version(tmp_path: Path) -> None:
    w = EventWriter(tmp_path / "e.jsonl")
    w.emit("step", step=1, loss=float("nan"), grad_norm=float("inf"))
    w.emit("run_end", status="completed")
    lines = (tmp_path / "e.jsonl").read_text().splitlines()
    first = json.loads(lines[0])  # strict: no NaN literals
    assert first["event"] == "step" and first["v"] == SCHEMA_VERSION and isinstance(first["time"], float)
    assert first["loss"] == "nan" and first["grad_norm"] == "inf"
    assert [e["event"] for e in read_events(tmp_path / "e.jsonl").events] == ["step", "run_end"]


def test_partial_last_line_waits_until_complete(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    tail = EventTail(path)
    with open(path, "wb") as fh:
        fh.write(b'{"event":"step","step":1}\n{"event":"st')
        fh.flush()
        assert [e["step"] for e in tail.poll()] == [1]
        assert tail.poll() == []
        fh.write(b'ep","step":2}\n')
        fh.flush()
        assert [e["step"] for e in tail.poll()] == [2]


def test_tail_detects_truncation_and_replacement(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text('{"event":"a"}\n{"event":"b"}\n')
    tail = EventTail(path)
    assert len(tail.poll()) == 2
    path.write_text('{"event":"c"}\n')  # truncated in place
    assert [e["event"] for e in tail.poll()] == ["c"]
    new = tmp_path / "new"
    new.write_text('{"event":"d"}\n{"event":"e"}\n')
    os.replace(new, path)  # rotated: a new inode
    assert [e["event"] for e in tail.poll()] == ["d", "e"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=40), st.just(b'{"event":"step","step":1}'),
                          st.just(b'[1,2]'), st.just(b'{"no_event":1}')), max_size=20))
def test_reader_survives_random_garbage(chunks: list[bytes]) -> None:
    blob = b"\n".join(chunks)
    result = parse_lines(blob)
    assert all(isinstance(e, dict) and isinstance(e["event"], str) for e in result.events)
    assert result.offset == blob.rfind(b"\n") + 1
