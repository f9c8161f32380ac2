"""``trm-tui [COMMAND] ...``: which command runs, and the one place a user's mistake becomes a message.

Each command is a module of its own with its parser and its ``cmd_*`` function, imported only when asked
for: ``trm-tui status`` never loads Textual or the dataset builders. Bare ``trm-tui`` is the run command.
"""

from __future__ import annotations

import importlib
import sys
from typing import Callable

from trm_core.config import ConfigError
from trm_core.rundir.layout import EXIT_CONFIG

# name -> (module, function): every subcommand; anything else is the run command's flags
COMMANDS: dict[str, tuple[str, str]] = {
    "status": ("trm_tui.cli.status", "cmd_status"),
    "stop": ("trm_tui.cli.stop", "cmd_stop"),
    "autotune": ("trm_tui.cli.autotune", "cmd_autotune"),
    "eval": ("trm_tui.cli.eval", "cmd_eval"),
    "solve": ("trm_tui.cli.solve", "cmd_solve"),
    "runs": ("trm_tui.runs", "cmd_runs"),
    "serve": ("trm_tui.serve", "cmd_serve"),
    "data": ("trm_tui.data_cli", "cmd_data"),
    "export": ("trm_tui.cli.export", "cmd_export"),
    "doctor": ("trm_tui.cli.doctor", "cmd_doctor"),
}
RUN = ("trm_tui.cli.run", "cmd_run")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    name = argv[0] if argv and argv[0] in COMMANDS else None
    module, function = COMMANDS[name] if name else RUN
    command = getattr(importlib.import_module(module), function)
    rest = argv[1:] if name else argv
    from trm_tui.serve.tab import in_browser_tab, showing_failure

    if in_browser_tab():  # a tab of trm-tui serve: an error must reach the page, not only the server's terminal
        return showing_failure(lambda: run_command(name, command, rest))
    return run_command(name, command, rest)


def run_command(name: str | None, command: Callable[[list[str]], int], argv: list[str]) -> int:
    try:
        return command(argv)
    except ConfigError as exc:  # a mistake in what the user asked for: one line naming it, never a traceback
        print(f"trm-tui{' ' + name if name else ''}: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except BrokenPipeError:  # `trm-tui status | head -2`: the reader has what it wanted
        from trm_tui.headless import _quiet_stdout
        _quiet_stdout()
        return 0
