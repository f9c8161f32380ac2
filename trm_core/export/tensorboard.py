"""The run's log as TensorBoard event files: once, or for as long as the run lives (``follow``).

One mirror per output folder. It reads ``events.jsonl`` from where it left off (a small state file beside the
event files keeps the log's offset and the newest step written per kind), so a mirror restarted with its
keeper, or run again by hand, appends what is new and repeats nothing.

A resumed run re-lives the steps between its checkpoint and where it was (the steps a crash or a stop lost).
Each tag keeps the first record of each step: the re-lived steps are skipped, so steps only ever increase and
nothing is written twice. That is what W&B does with a step it has seen (and what its, Aim's and trackio's
importers need: they do not honour TensorBoard's restart marks), and the curve goes on unbroken from the
first new step.

The writer is tensorboardX (protobuf and numpy only; no TensorFlow, no TensorBoard server), an optional
extra: ``pip install 'trm-tui[tensorboard]'``.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trm_core.config import ConfigError
from trm_core.export.scalars import HPARAM_METRICS, TEXT_KINDS, flat_config, scalars, text
from trm_core.rundir import layout
from trm_core.rundir.events import EventTail

STATE_FILE = ".trm-tui-export.json"
MISSING_WRITER = ("TensorBoard export needs tensorboardX: pip install 'trm-tui[tensorboard]' "
                  "(or pip install tensorboardX)")
DEDUPED_KINDS = ("step", "eval", "checkpoint")  # one record per step each: a repeat is a re-lived step


def default_out(run_dir: Path) -> Path:
    """``RUN_DIR/tensorboard``: ``tensorboard --logdir runs`` then shows every run under runs/ by name."""
    return run_dir / "tensorboard"


def out_under(folder: Path, run_dir: Path) -> Path:
    """A run's own subfolder in a folder of many runs' mirrors (``--out``, ``[export] tensorboard_dir``)."""
    return folder.expanduser() / run_dir.resolve().name


@dataclass
class MirrorState:
    """Where the mirror is in the log, and what it has written (saved after each flush)."""

    inode: int | None = None
    head: str = ""  # a digest of the log's first line: an inode can be reused by a log put in its place
    offset: int = 0
    last_step: dict[str, int] = field(default_factory=dict)
    step: int = 0  # the newest step seen: where a text event without a step of its own is shown
    hparams: bool = False

    @classmethod
    def load(cls, path: Path) -> "MirrorState":
        try:
            raw = json.loads(path.read_text())
            return cls(inode=raw["inode"], head=str(raw["head"]), offset=int(raw["offset"]), last_step=dict(raw["last_step"]),
                       step=int(raw["step"]), hparams=bool(raw["hparams"]))
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError, KeyError, TypeError):
            return cls()  # unreadable: start over (the event files it described are cleared with it)

    def save(self, path: Path) -> None:
        layout.write_atomic(path, json.dumps(asdict(self)).encode())


def _writer_module() -> Any:
    try:
        import tensorboardX  # noqa: F401
    except ImportError:
        raise ConfigError(MISSING_WRITER) from None
    return tensorboardX


class SyncWriter:
    """tensorboardX's record writer, used directly: each event is written when it is added, and ``flush``
    means on disk. (Its FileWriter queues events for a thread, through a multiprocessing queue that pickles
    each one, and its ``flush`` does not wait for that queue: the mirror's state file, saved after a flush,
    could then name steps that were never written.)"""

    def __init__(self, folder: Path) -> None:
        from tensorboardX.event_file_writer import EventsWriter

        # its file is named by the second and the host: a suffix of our own keeps two mirrors started in one
        # second (an export run twice) from writing into one file
        self.events = EventsWriter(str(folder / "events"), filename_suffix=f".{os.getpid()}.{secrets.token_hex(3)}")

    def add_summary(self, summary: Any, global_step: int, walltime: float) -> None:
        from tensorboardX.proto.event_pb2 import Event

        self.events.write_event(Event(wall_time=walltime, step=global_step, summary=summary))

    def flush(self) -> None:
        self.events.flush()  # flushed and fsynced: the state file saved next never runs ahead of it

    def close(self) -> None:
        self.flush()
        self.events.close()


def text_summary(tag: str, markdown: str) -> Any:
    """A text summary under ``tag`` itself (tensorboardX's helper appends ``/text_summary`` to every tag)."""
    from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboardX.proto.tensor_pb2 import TensorProto
    from tensorboardX.proto.tensor_shape_pb2 import TensorShapeProto

    meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="text"))
    tensor = TensorProto(dtype="DT_STRING", string_val=[markdown.encode()],
                         tensor_shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=1)]))
    return Summary(value=[Summary.Value(tag=tag, metadata=meta, tensor=tensor)])


class TensorBoardMirror:
    """Mirror ``run_dir``'s log into ``out_dir`` (event files plus the mirror's state file)."""

    def __init__(self, run_dir: Path, out_dir: Path) -> None:
        _writer_module()  # a missing writer is said before anything is made
        self.log = run_dir / layout.EVENTS
        self.out = out_dir
        self.state_path = out_dir / STATE_FILE
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            probe = out_dir / ".trm-tui-write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(f"cannot write the TensorBoard files in {out_dir}: {exc.strerror or exc} "
                              f"(choose another folder with --out)") from None
        self.state = MirrorState.load(self.state_path)
        if self.state.offset and not self._same_log():
            self._start_over()  # the log was replaced (or the state lost): what was written describes another
        self.tail = EventTail(self.log)
        self.tail.offset, self.tail.inode = self.state.offset, self.state.inode
        self._file_writer: Any = None

    # -- reading --------------------------------------------------------------------------------------------

    def _same_log(self) -> bool:
        try:
            st = self.log.stat()
        except FileNotFoundError:
            return False
        return st.st_ino == self.state.inode and st.st_size >= self.state.offset and self._head() == self.state.head

    def _head(self) -> str:
        try:
            with open(self.log, "rb") as fh:
                return hashlib.sha256(fh.readline(1 << 16)).hexdigest()[:16]
        except FileNotFoundError:
            return ""

    def _start_over(self) -> None:
        for old in self.out.glob("events.out.tfevents.*"):
            old.unlink()
        self.state = MirrorState()
        self.state_path.unlink(missing_ok=True)

    def sync(self) -> int:
        """Write what the log gained since the last call; returns the events read."""
        if self.state.offset and not self._same_log() and self.log.exists():
            self.close()
            self._start_over()
            self.tail = EventTail(self.log)
        events = self.tail.poll()
        for event in events:
            self._write(event)
        if events:
            if self._file_writer is not None:
                self._file_writer.flush()
            self.state.offset, self.state.inode = self.tail.offset, self.tail.inode
            self.state.head = self.state.head or self._head()
            self.state.save(self.state_path)
        return len(events)

    def follow(self, stop: threading.Event, every_s: float = 2.0) -> None:
        """Keep mirroring until ``stop`` is set (the keeper's thread, or ``--follow`` until Ctrl-C)."""
        self.sync()
        while not stop.wait(every_s):
            self.sync()
        self.sync()

    def close(self) -> None:
        if self._file_writer is not None:
            self._file_writer.close()
            self._file_writer = None

    # -- writing --------------------------------------------------------------------------------------------

    @property
    def writer(self) -> "SyncWriter":
        if self._file_writer is None:
            self._file_writer = SyncWriter(self.out)
        return self._file_writer

    def _write(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        wall = float(event.get("time") or 0.0)
        if kind == "run_start":
            self._on_start(event, wall)
        step = event.get("step")
        if kind in DEDUPED_KINDS:
            if not isinstance(step, int) or step <= self.state.last_step.get(kind, 0):
                return
            self.state.last_step[kind] = step
            self.state.step = max(self.state.step, step)
            pairs = list(scalars(event))
            if pairs:
                from tensorboardX.proto.summary_pb2 import Summary

                summary = Summary(value=[Summary.Value(tag=tag, simple_value=value) for tag, value in pairs])
                self.writer.add_summary(summary, global_step=step, walltime=wall)
        elif kind in TEXT_KINDS:
            at = step if isinstance(step, int) else self.state.step
            self.writer.add_summary(text_summary(f"events/{kind}", text(event)), global_step=at, walltime=wall)

    def _on_start(self, event: dict[str, Any], wall: float) -> None:
        """A (re)start: the config as hparams, once (at the first start's step)."""
        resumed = event.get("resumed_from")
        back_to = resumed if isinstance(resumed, int) else 0
        if not self.state.hparams and isinstance(event.get("config"), dict):
            from tensorboardX.summary import hparams

            values = {k: v for k, v in flat_config(event["config"]).items()
                      if isinstance(v, (str, bool, int, float))}
            for summary in hparams(values, {tag: 0.0 for tag in HPARAM_METRICS}):
                self.writer.add_summary(summary, global_step=back_to, walltime=wall)
            self.state.hparams = True
