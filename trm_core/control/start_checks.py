"""Every check a start or a resume passes before anything is launched, in one place: the CLI's start, the
dashboard's ``r`` and any front end to come go through ``check_start``, so none of them starts a run the others
would have refused (the dashboard's ``r`` used to skip them all).

Torch-free and quick (milliseconds): the config resolves, its data is shaped as it says, a fresh run's
``train.init_from`` names weights that can fit, an imported run is not resumed, and doctor's checks that need
neither torch nor a GPU (the dataset, the run dir, the file system, the rendezvous) pass.
"""

from __future__ import annotations

from trm_core.config import Config, ConfigError, Start


class StartRefused(ConfigError):
    """Doctor's quick checks failed: the message is their lines, as doctor prints them."""


def check_start(start: Start) -> Config:
    """The config the start would run with; a ``ConfigError`` (or ``StartRefused``) saying why it may not."""
    from trm_core.prep.dataset_shape import check_data

    if start.resume:
        refuse_imported(start)
    cfg = start.resolve()
    check_data(cfg)
    if not start.resume:
        from trm_core.weights.init_from import problem as init_problem

        refused = init_problem(cfg.train.init_from, cfg.model)
        if refused:
            raise ConfigError(refused)
    failed = doctor_failures(cfg, start)
    if failed:
        raise StartRefused(failed)
    return cfg


def refuse_imported(start: Start) -> None:
    """A run trm-tui import or --model wrote holds weights alone: no optimizer state to go on from."""
    from trm_core.weights.as_run import imported_from

    run = start.rundir
    source = imported_from(run)
    if source is not None:
        raise ConfigError(f"--resume: the run in {run.root} holds imported weights ({source}), no optimizer state "
                          f"to resume; fine-tune from them in a new run: --set train.init_from='{run.root}'")


def doctor_failures(cfg: Config, start: Start) -> str:
    """What ``trm-tui doctor`` finds failing without torch or a GPU, as the lines a start shows before it
    launches anything; empty when nothing fails."""
    from trm_core.doctor.all_checks import checks_for
    from trm_core.doctor.report import Status

    failed = [c for c in checks_for(cfg, start.rundir.root, start.preset, quick=True) if c.status == Status.FAIL]
    if not failed:
        return ""
    lines = "\n".join(c.line() for c in failed)
    return (f"not started: {len(failed)} check(s) failed\n{lines}\n(trm-tui doctor also checks torch, the GPU "
            f"and the model's memory)")
