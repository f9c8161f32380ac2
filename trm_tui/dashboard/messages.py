"""What the dashboard's threads tell its UI: typed Textual messages, posted from the thread (``post_message``
is thread-safe) and handled on the UI loop in order. A thread never calls into the App's private methods,
and a message posted after the App has closed is refused (``post_message`` returns False) rather than lost
in a half-torn-down loop.
"""

from __future__ import annotations

from typing import Any

from textual.message import Message

from trm_core.control.client import KeeperClient
from trm_core.control.tune import SearchOver


class HistoryRead(Message):
    """The run's past, read from its log before the keeper is found or started."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        super().__init__()
        self.events = events


class Attached(Message):
    """The client holds the run: attached to its keeper, started one, or found the run over."""

    def __init__(self, client: KeeperClient, had_history: bool) -> None:
        super().__init__()
        self.client, self.had_history = client, had_history


class EventsArrived(Message):
    """New lines of the run's log (or of a search in this process, as it writes them)."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        super().__init__()
        self.events = events


class Note(Message):
    """Something the user should hear that is not in the log (a keeper revived for an orphaned worker)."""

    def __init__(self, text: str, severity: str = "information") -> None:
        super().__init__()
        self.text, self.severity = text, severity


class SupervisionOver(Message):
    """The keeper is gone and the run is over. ``counts``: its outcome is this dashboard's exit code (not when
    the run was already over when opened)."""

    def __init__(self, code: int | None, counts: bool = True) -> None:
        super().__init__()
        self.code, self.counts = code, counts


class SupervisionResumed(Message):
    """A new keeper took the run over (a resume from another client)."""


class KeeperSearchRefused(Message):
    """The keeper did not take the search asked for from here (or did not answer)."""

    def __init__(self, why: str) -> None:
        super().__init__()
        self.why = why


class SearchFinished(Message):
    """The search in this process is over."""

    def __init__(self, over: SearchOver) -> None:
        super().__init__()
        self.over = over
