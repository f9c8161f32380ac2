"""One browser tab of ``trm-tui serve``: the ``trm-tui`` that textual-serve runs under its web driver.

When that ``trm-tui`` cannot open the dashboard (the run's folder was removed, its config is corrupt, the
run belongs to no one who may read it), textual-serve keeps showing its splash screen and prints the error
in the server's terminal, where the person at the browser cannot see it. So a tab's error is also drawn in
the page, by a one-screen Textual app, and stays there until the tab is closed or ``q`` is pressed.
"""

from __future__ import annotations

import io
import os
import sys
from typing import Callable, TextIO


def in_browser_tab() -> bool:
    """Run by textual-serve for a page (its web driver, pipes for stdin and stdout)."""
    return os.environ.get("TEXTUAL_DRIVER", "").startswith("textual.drivers.web_driver")


class _Tee(io.TextIOBase):
    """stderr as it was, and a copy of what was written to it."""

    def __init__(self, real: TextIO) -> None:
        self.real, self.copy = real, io.StringIO()

    def write(self, text: str) -> int:
        self.copy.write(text)
        return self.real.write(text)

    def flush(self) -> None:
        self.real.flush()


def showing_failure(command: Callable[[], int]) -> int:
    """``command()``; when it fails before any Textual app drew (Textual loads for the dashboard alone), what
    it wrote to stderr is shown in the page."""
    tee = _Tee(sys.stderr)
    sys.stderr = tee
    try:
        code = command()
    finally:
        sys.stderr = tee.real
    message = tee.copy.getvalue().strip()
    if code != 0 and message and "textual.app" not in sys.modules:
        from trm_tui.serve.failure_app import FailureApp

        FailureApp(message).run()
    return code
