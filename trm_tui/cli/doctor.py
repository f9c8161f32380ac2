"""``trm-tui doctor``: the checks of ``trm_core.doctor`` for a config, a preset or a run, plus the terminal's,
one line each with the fix; exit 0 when nothing fails, 1 otherwise."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

from trm_core import config as config_mod
from trm_core.config import Config, ConfigError
from trm_core.config.run_config import saved_config
from trm_core.doctor.all_checks import iter_checks
from trm_core.doctor.report import Check, Status, fail, ok, warn
from trm_core.rundir import layout
from trm_tui.cli.common import run_dir_arg

MIN_COLUMNS, MIN_ROWS = 80, 24


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trm-tui doctor", description="Check, in seconds and without training, "
                                "what would make a long run fail later: torch and the GPU, the config, the model's "
                                "memory, the dataset, the disk, the distributed settings, the terminal.")
    run_dir_arg(p)
    config_mod.add_start_arguments(p)
    p.add_argument("--json", action="store_true", help="one JSON object per check, for scripts")
    p.add_argument("--no-memory", action="store_true", help="skip the memory estimate (one small training step)")
    return p


def the_config(args: argparse.Namespace) -> tuple[Config, str]:
    """The config the run would use: a run's own (its config.toml, with --set), else the start flags'."""
    saved = layout.RunDir.at(args.run_dir).config
    if saved.exists() and not (args.preset or args.config):
        return saved_config(args.run_dir, args.sets), f"the run's own config ({saved})"
    start = config_mod.Start.from_args(args)
    what = f"preset {args.preset}" if args.preset else (f"{args.config}" if args.config else "the defaults")
    return start.layers(), what + (" with --set" if args.sets else "")


def terminal_checks() -> list[Check]:
    """What the dashboard will look like here: colours and size."""
    found = []
    if os.environ.get("NO_COLOR"):
        found.append(ok("terminal", "colour", "NO_COLOR is set: no colour; states and alerts stand out in bold "
                                              "and reverse"))
    else:
        term, colorterm = os.environ.get("TERM", ""), os.environ.get("COLORTERM", "")
        if not term or term == "dumb":
            found.append(warn("terminal", "colour", f"TERM={term or '(unset)'}: no colours, maybe no cursor "
                              "movement", "run in a real terminal (or tmux/screen) with TERM=xterm-256color"))
        else:
            depth = "truecolor" if colorterm in ("truecolor", "24bit") else ("256 colours" if "256" in term
                                                                           else "16 colours")
            found.append(ok("terminal", "colour", f"TERM={term}: {depth}"))
    if sys.stdout.isatty():
        size = shutil.get_terminal_size()
        if size.columns < MIN_COLUMNS or size.lines < MIN_ROWS:
            found.append(warn("terminal", "size", f"{size.columns}x{size.lines}: the dashboard needs at least "
                              f"{MIN_COLUMNS}x{MIN_ROWS}", "enlarge the window"))
        else:
            found.append(ok("terminal", "size", f"{size.columns}x{size.lines}"))
    else:
        found.append(ok("terminal", "size", "not a terminal (the dashboard runs headless here, or in a browser "
                                            "with trm-tui serve)"))
    return found


def render(check: Check) -> str:
    return check.line()


def cmd_doctor(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    started = time.monotonic()
    found: list[Check] = []
    note = ProbeNote()

    def report(check: Check) -> None:  # each line as soon as its check is done: nothing silent for long
        found.append(check)
        note("")
        print(json.dumps(check.to_dict()) if args.json else render(check), flush=True)

    try:
        cfg, what = the_config(args)
    except ConfigError as exc:
        report(fail("config", "resolves", str(exc), "fix the key, file or line it names"))
    else:
        report(ok("config", "resolves", what))
        for check in iter_checks(cfg, args.run_dir, args.preset, probe_memory=not args.no_memory, note=note):
            report(check)
    for check in terminal_checks():
        report(check)
    failed = [c for c in found if c.status == Status.FAIL]
    if not args.json:
        warned = sum(c.status == Status.WARN for c in found)
        print(f"\n{len(found)} checks in {time.monotonic() - started:.1f} s: {len(failed)} failed, {warned} "
              f"warned" + ("; fix the failures before a long run" if failed else ""))
    return 1 if failed else 0


class ProbeNote:
    """What a slow check is doing, on stderr: one line that the next report line replaces on a terminal, a
    plain line otherwise (a log shows what took the time)."""

    def __init__(self) -> None:
        self.tty, self.shown = sys.stderr.isatty(), False

    def __call__(self, text: str) -> None:
        if self.tty:
            if self.shown or text:
                sys.stderr.write("\r\x1b[K" + text)
                sys.stderr.flush()
            self.shown = bool(text)
        elif text:
            print(text, file=sys.stderr, flush=True)