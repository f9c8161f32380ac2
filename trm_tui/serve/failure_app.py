"""The page a browser tab shows when its dashboard could not open: the error, and what to do."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Footer, Label, Static


class FailureApp(App[None]):
    """The error ``trm-tui`` gave instead of the dashboard, word for word."""

    TITLE = "trm-tui: the dashboard could not open"
    CSS = """
    Screen { align: center middle; }
    #dialog { width: 90%; max-width: 110; height: auto; border: thick $error; background: $surface; padding: 1 2; }
    #message { margin: 1 0; }
    """
    BINDINGS = [Binding("q", "quit", "close")]

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("[b]The dashboard could not open[/b]")
            yield Static(self.message, id="message", markup=False)
            yield Static("Fix it on the server, then reload this page.")
        yield Footer()
