"""Weights from elsewhere written as a completed run: its config.toml, one verified checkpoint holding the model
alone, and a log of two lines (run_start naming where the weights came from, run_end ``completed``). Every
command that opens a run (eval with every test-time setting, solve, the predictions browser, status, runs,
export) then opens it as it opens one of ours; a resume is refused (no optimizer state to go on from).

The folder is written under a temporary name and renamed whole: a folder under its own name is complete."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from trm_core.config import Config
from trm_core.prep.output import building
from trm_core.rundir import checkpoints as ckpt
from trm_core.rundir.events import EventWriter
from trm_core.rundir.layout import RunDir
from trm_core.rundir.records import Checkpoint, RunEnd, RunStart

IMPORTED = "imported"  # the checkpoint state's key: where the weights came from (no optimizer, no EMA)


def write_weights_run(out: Path, cfg: Config, model_state: dict[str, Any], *, step: int, weights_from: str,
                      parameters: int, data: str, files: dict[str, str] | None = None) -> RunDir:
    """The run folder ``out`` holding ``model_state`` as the checkpoint of ``step``, trained as ``cfg`` says, and
    ``files`` (name: text) beside."""
    import torch

    from trm_core.config.run_config import write_config

    with building(out) as tmp:
        run = RunDir(tmp)
        write_config(cfg, run.config)
        for name, text in (files or {}).items():
            (tmp / name).write_text(text)
        state = {"model": {k: v.detach().to("cpu").contiguous() for k, v in model_state.items()},
                 IMPORTED: weights_from}
        info = ckpt.save_checkpoint(run.checkpoints, state, step=step, epoch=0, loss=None, config_hash=cfg.hash())
        log = EventWriter(run.events)
        try:
            log.emit(RunStart(config=cfg.to_dict(), config_hash=cfg.hash(), pid=os.getpid(),
                              host=socket.gethostname(), device="cpu", world_size=1, resumed_from=None, overrides=[],
                              total_steps=step, steps_per_epoch=0, parameters=parameters, data=data,
                              torch=torch.__version__, threads=torch.get_num_threads(), weights_from=weights_from,
                              imported=True))
            log.emit(Checkpoint(step=step, epoch=0, path=str(out / "checkpoints" / info.path.name), bytes=info.bytes,
                                seconds=0.0))
            log.emit(RunEnd(status="completed", step=step, exit_code=0, reason=f"imported: {weights_from}"))
        finally:
            log.close()
    return RunDir(out)


def imported_from(run: RunDir) -> str | None:
    """Where an imported run's weights came from; None for a run that trained (its newest run_start says)."""
    from trm_core.rundir import log_queries

    start = log_queries.newest(run.events, RunStart) if run.events.exists() else None
    return start.weights_from if isinstance(start, RunStart) and start.imported else None
