"""Every check for one config, in the order a report reads: platform, dataset, model, disk, distributed."""

from __future__ import annotations

from pathlib import Path

from trm_core.config import Config
from trm_core.doctor.dataset import checks as dataset_checks
from trm_core.doctor.distributed import checks as distributed_checks
from trm_core.doctor.model_memory import checks as model_checks
from trm_core.doctor.platform import checks as platform_checks
from trm_core.doctor.report import Check, guarded
from trm_core.doctor.storage import checks as storage_checks


def checks_for(cfg: Config, run_dir: Path, preset: str | None = None, probe_memory: bool = True,
               quick: bool = False) -> list[Check]:
    """Every check of ``cfg`` for a run in ``run_dir`` (``preset``: the build the dataset should have had).
    ``quick``: only what needs neither torch nor a GPU (milliseconds; what a start checks before it
    launches): the dataset, the run dir, the file system, the rendezvous."""
    found: list[Check] = []
    if not quick:
        found += guarded("torch", "platform", lambda: platform_checks(cfg))
    found += guarded("dataset", "dataset", lambda: dataset_checks(cfg, preset))
    if not quick:
        found += guarded("model", "model", lambda: model_checks(cfg, probe_memory))
    found += guarded("disk", "disk", lambda: storage_checks(cfg, run_dir, with_model=not quick))
    found += guarded("distributed", "distributed", lambda: distributed_checks(cfg, with_gpus=not quick))
    return found
