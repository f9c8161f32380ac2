"""Signal handlers for the length of a block: what a foreground command (--no-ui, autotune) installs while it
runs, and puts back however the block ends; and a closed pipe's quiet end (`trm-tui status | head -2`)."""

from __future__ import annotations

import os
import signal
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterator

Handler = Callable[[int, Any], Any]


@contextmanager
def handling(handlers: dict[signal.Signals, Handler]) -> Iterator[None]:
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def interrupt(signum: int, frame: Any) -> None:
    """A handler that turns a signal (SIGTERM) into Ctrl-C's KeyboardInterrupt, so one path cleans up for both."""
    raise KeyboardInterrupt


def quiet_stdout() -> None:
    """After a closed pipe, point stdout at /dev/null so the interpreter's final flush cannot fail loudly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
