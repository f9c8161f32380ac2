"""``trm-tui --help`` names every subcommand, from the one table ``main`` dispatches by (it once left out doctor
and export), and each of them answers its own --help."""

from __future__ import annotations

import pytest

from trm_tui.cli.main import COMMANDS

from helpers import cli_run


@pytest.mark.process
def test_help_lists_every_command_of_the_table() -> None:
    out = cli_run("--help")
    assert out.returncode == 0, out.stderr
    listed = {line.split()[1] for line in out.stdout.splitlines() if line.strip().startswith("trm-tui ")}
    assert listed == set(COMMANDS) and {"doctor", "export"} <= listed


@pytest.mark.process
@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_command_answers_its_help(name: str) -> None:
    out = cli_run(name, "--help")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: trm-tui " + name)


@pytest.mark.process
def test_version_and_a_mistyped_command() -> None:
    from importlib.metadata import version

    shown = cli_run("--version")
    assert shown.returncode == 0 and shown.stdout.strip() == f"trm-tui {version('trm-tui')}"
    typo = cli_run("stauts")
    assert typo.returncode == 2 and "'stauts' is not a command; did you mean 'status'?" in typo.stderr
    far = cli_run("frobnicate")
    assert far.returncode == 2 and "commands: status, stop" in far.stderr and "Traceback" not in far.stderr
