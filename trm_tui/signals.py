"""Signal handlers for the length of a block: what a foreground command (--no-ui, autotune) installs while it
runs, and puts back however the block ends."""

from __future__ import annotations

import signal
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
