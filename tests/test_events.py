"""The event log: strict JSON lines, and a reader that never crashes on partial or malformed input."""

from __future__ import annotations

import json
import os
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from trm_core.rundir.events import SCHEMA_VERSION, EventTail, EventWriter, parse_lines, read_events

from helpers import record


def test_writer_lines_are_strict_json_with_time_and_version(tmp_path: Path) -> None:
    w = EventWriter(tmp_path / "e.jsonl")
    w.emit(record("step", step=1, loss=float("nan"), grad_norm=float("inf")))
    w.emit(record("run_end", status="completed"))
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


GOOD = b'{"event":"step","step":1}'
garbage = st.one_of(
    st.binary(max_size=200).filter(lambda b: b"\n" not in b),
    st.just(b"[" * 100_000),  # deep nesting: the JSON parser recurses
    st.just(b'{"no_event":1}'), st.just(b'[1,2]'), st.just(b'{"event":3}'), st.just(b'\xff\xfe{"event":"x"}'),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.just(GOOD), garbage), max_size=30), st.binary(max_size=30).filter(lambda b: b"\n" not in b))
def test_reader_keeps_every_good_line_and_skips_garbage(lines: list[bytes], partial: bytes) -> None:
    blob = b"\n".join(lines) + (b"\n" if lines else b"") + partial  # an unterminated last line waits
    result = parse_lines(blob)
    assert result.events == [{"event": "step", "step": 1}] * lines.count(GOOD)
    assert result.malformed == sum(1 for line in lines if line != GOOD and line.strip())
    assert result.offset == len(blob) - len(partial)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=25), st.data())
def test_tail_yields_every_event_once_in_order_whatever_the_write_splits(steps: list[int], data) -> None:
    import tempfile

    blob = b"".join(json.dumps({"event": "step", "step": s}).encode() + b"\n" for s in steps)
    cuts = sorted(data.draw(st.lists(st.integers(min_value=0, max_value=len(blob)), max_size=12)))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "e.jsonl"
        tail, seen, start = EventTail(path), [], 0
        with open(path, "wb") as fh:
            for cut in cuts + [len(blob)]:
                fh.write(blob[start:cut])
                fh.flush()
                start = max(start, cut)
                seen += [e["step"] for e in tail.poll()]
        assert seen == steps and tail.malformed == 0


def test_the_log_format_doc_is_generated_from_the_records() -> None:
    """docs/log-format.md's events section is the records' own rendering: the schema lives in one place."""
    from trm_core.rundir.records import markdown
    from helpers import REPO
    doc = (REPO / "docs" / "log-format.md").read_text()
    begin = doc.index("<!-- generated from trm_core/rundir/records.py")
    block = doc[doc.index("\n", begin) + 1:doc.index("<!-- end of generated events -->")]
    assert block == markdown()


def test_newer_lines_stay_readable() -> None:
    """An unknown kind and unknown fields parse (kept aside, not lost); a missing field reads as None."""
    from trm_core.rundir.records import Step, Unknown, parse
    newer = parse({"event": "step", "time": 5.0, "v": 2, "step": 3, "loss": 0.5, "shiny": [1]})
    assert isinstance(newer, Step) and newer.step == 3 and newer.extra == {"shiny": [1]} and newer.halt_loss is None
    other = parse({"event": "rank_health", "time": 6.0, "rank": 1})
    assert isinstance(other, Unknown) and other.event == "rank_health" and other.extra == {"rank": 1}


def test_a_record_written_is_the_record_read(tmp_path: Path) -> None:
    """Writer and readers share the records: every field survives the round trip, optional ones left out."""
    from trm_core.rundir.records import RunEnd, parse
    w = EventWriter(tmp_path / "e.jsonl")
    w.emit(RunEnd(status="stopped", step=7, exit_code=0, reason="SIGTERM"))
    w.close()
    (line,) = read_events(tmp_path / "e.jsonl").events
    assert "seconds" not in line and "forced" not in line
    assert parse(line) == RunEnd(status="stopped", step=7, exit_code=0, reason="SIGTERM")
