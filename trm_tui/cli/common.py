"""What the commands share: the --run-dir flag, the owner check before acting, and a new keeper for a worker
that lost its own."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trm_core.control import launch
from trm_core.rundir.layout import DEFAULT_RUN_DIR, EXIT_CONFIG, RunDir
from trm_core.rundir.ownership import NotOwner, require_owner

def run_dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR, help="run folder (default: runs/default)")


def model_args(p: argparse.ArgumentParser, dataset_help: str) -> None:
    """``--model DIR|hf:OWNER/NAME[@REV]`` instead of ``--run-dir``, and the ``--dataset`` it answers."""
    p.add_argument("--model", metavar="DIR|hf:REPO", help="a model folder (trm-tui export model) or a Hugging Face "
                   "repository holding one, instead of --run-dir (safetensors only: no pickle, no code run)")
    p.add_argument("--dataset", type=Path, metavar="DIR", help=dataset_help)


def run_or_model(args: argparse.Namespace, argv: list[str]) -> RunDir:
    """The run ``--run-dir`` names, or the run ``--model`` opens as (made once, in the cache)."""
    from trm_core.config import ConfigError

    given = {a.split("=")[0] for a in argv}
    if args.model is None:
        if args.dataset is not None:
            raise ConfigError("--dataset goes with --model; a run reads its own dataset")
        return RunDir.at(args.run_dir)
    if "--run-dir" in given:
        raise ConfigError("--model and --run-dir: give one (a model folder or hub repository, or a run)")
    from trm_core.weights.model_run import model_run

    return model_run(args.model, args.dataset)


def not_a_run_folder(run_dir: Path) -> str | None:
    """Why ``run_dir`` cannot hold a run (a file, or nothing there), in words; None for a folder."""
    if run_dir.is_dir():
        return None
    if run_dir.exists():
        return f"no run in {run_dir}: {run_dir} is a file, not a run folder; give the run's folder with --run-dir"
    return (f"no run in {run_dir}: {run_dir} does not exist; give the run's folder with --run-dir (trm-tui runs "
            f"lists them)")


def refuse_unless_run_folder(run_dir: Path, prog: str) -> int | None:
    """Exit 2 with why, before anything else, for a --run-dir that is a file or is not there; None for a folder."""
    problem = not_a_run_folder(run_dir)
    if problem is None:
        return None
    print(f"{prog}: {problem}", file=sys.stderr)
    return EXIT_CONFIG


def refuse_unless_owner(run_dir: Path, doing: str, prog: str) -> int | None:
    """Another user's run: say whose it is and exit 2 before anything is signalled or written; None for ours."""
    try:
        require_owner(RunDir.at(run_dir).root, doing)
    except NotOwner as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return None


def adopt_orphan_worker(run_dir: Path) -> None:
    """A live worker without its keeper (the keeper was killed): a new keeper adopts it, and we say so. Only
    for commands that act on the run (autotune, adopt); a reading command only says it can be done."""
    adopted = launch.revive_keeper(RunDir.at(run_dir))
    if adopted is not None:
        print(f"trm-tui: {launch.adoption_note(adopted)}", file=sys.stderr, flush=True)


def orphan_note(run_dir: Path) -> str | None:
    """What a reading command says of a live worker whose keeper is gone (it starts nothing itself)."""
    return launch.orphan_note(RunDir.at(run_dir))
