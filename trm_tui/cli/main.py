"""``trm-tui [COMMAND] ...``: which command runs, and the one place a user's mistake becomes a message.

Each command is a module of its own with its parser and its ``cmd_*`` function, imported only when asked
for: ``trm-tui status`` never loads Textual or the dataset builders. Bare ``trm-tui`` is the run command.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from typing import Callable

from trm_core.config import ConfigError
from trm_core.rundir.layout import EXIT_CONFIG, EXIT_INTERRUPTED


@dataclass(frozen=True)
class Command:
    """A subcommand: where its ``cmd_*`` function lives, and the line ``trm-tui --help`` says of it."""

    module: str
    function: str
    summary: str


# every subcommand, in the order --help lists them; anything else is the run command's flags
COMMANDS: dict[str, Command] = {
    "status": Command("trm_tui.cli.status", "cmd_status", "a run's state, progress, checkpoint and health"),
    "stop": Command("trm_tui.cli.stop", "cmd_stop", "stop a run with a checkpoint (--force: at once)"),
    "adopt": Command("trm_tui.cli.adopt", "cmd_adopt", "a new keeper for a running worker whose keeper is gone"),
    "runs": Command("trm_tui.cli.runs", "cmd_runs", "every run under runs/, a line each (--csv for a sweep)"),
    "serve": Command("trm_tui.cli.serve", "cmd_serve", "the dashboard in a browser, behind a secret token"),
    "autotune": Command("trm_tui.cli.autotune", "cmd_autotune", "measure micro-batch and threads, keep the fastest"),
    "eval": Command("trm_tui.cli.eval", "cmd_eval", "evaluate a checkpoint on a dataset's test split"),
    "solve": Command("trm_tui.cli.solve", "cmd_solve", "answer one puzzle with a trained model"),
    "data": Command("trm_tui.cli.data", "cmd_data", "build a puzzle dataset (sudoku, maze, arc) or generate Sudokus"),
    "export": Command("trm_tui.cli.export", "cmd_export", "a run's figures (TensorBoard, CSV) or its model (a "
                      "folder for the hub)"),
    "import": Command("trm_tui.cli.import_weights", "cmd_import", "the reference's checkpoint as a run of ours"),
    "doctor": Command("trm_tui.cli.doctor", "cmd_doctor", "check what would make a long run fail hours in"),
}


def commands_help() -> str:
    """The subcommands' list for ``trm-tui --help``, from the one table above."""
    width = max(len(name) for name in COMMANDS)
    lines = [f"  trm-tui {name:<{width}}  {c.summary}" for name, c in COMMANDS.items()]
    return "commands (each has --help):\n" + "\n".join(lines)


RUN = ("trm_tui.cli.start_or_open", "cmd_run")


def version() -> str:
    """The installed package's version (the checkout's pyproject.toml, for an editable install)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("trm-tui")
    except PackageNotFoundError:
        return "unknown (not installed)"


def not_a_command(word: str) -> str | None:
    """A first word that is neither a command nor a flag: the run command takes no words, so it is a
    mistyped command; the message names the nearest one."""
    if word.startswith("-") or word in COMMANDS:
        return None
    import difflib

    near = difflib.get_close_matches(word, list(COMMANDS), n=1, cutoff=0.6)
    hint = f"did you mean '{near[0]}'?" if near else f"commands: {', '.join(COMMANDS)}"
    return f"trm-tui: '{word}' is not a command; {hint} (trm-tui --help lists them)"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    mistyped = not_a_command(argv[0]) if argv else None
    if mistyped is not None:
        print(mistyped, file=sys.stderr)
        return EXIT_CONFIG
    name = argv[0] if argv and argv[0] in COMMANDS else None
    module, function = (COMMANDS[name].module, COMMANDS[name].function) if name else RUN
    rest = argv[1:] if name else argv
    if name is None:  # a start may be under way: visible to a stop from now, before the heavy imports
        from trm_core.rundir import start_claim

        starting = start_claim.started_run_dir(rest)
        if starting is not None:
            start_claim.hold(starting)
    from trm_tui.serve.tab import in_browser_tab, showing_failure

    def command(args: list[str]) -> int:  # its module loads inside the boundary: a Ctrl-C while it loads too
        return getattr(importlib.import_module(module), function)(args)

    if in_browser_tab():  # a tab of trm-tui serve: an error must reach the page, not only the server's terminal
        return showing_failure(lambda: run_command(name, command, rest))
    return run_command(name, command, rest)


def run_command(name: str | None, command: Callable[[list[str]], int], argv: list[str]) -> int:
    try:
        return command(argv)
    except ConfigError as exc:  # a mistake in what the user asked for: one line naming it, never a traceback
        print(f"trm-tui{' ' + name if name else ''}: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:  # Ctrl-C where the command has no answer of its own: what it wrote, it writes
        # whole (a temp name renamed at the end), so nothing half-written is left; one line, no traceback
        print(f"\ntrm-tui{' ' + name if name else ''}: interrupted; nothing half-written was kept", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `trm-tui status | head -2`: the reader has what it wanted
        from trm_tui.signals import quiet_stdout
        quiet_stdout()
        return 0
