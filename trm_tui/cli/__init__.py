"""``trm-tui``'s command line: a thin shell over the control layer and the front ends, one module per command
(``run``, ``status``, ``stop``, ``autotune``, ``eval``, ``solve``; ``runs``, ``serve`` and ``data`` beside them), dispatched by
``main``.

Exit codes: 0 the run completed or was stopped on request, 1 it failed beyond its restarts, 2 bad usage
or config.
"""

from trm_tui.cli.main import main

__all__ = ["main"]
