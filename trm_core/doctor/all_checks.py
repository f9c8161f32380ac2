"""Every check for one config, in the order a report reads: platform, dataset, model, disk, distributed."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

from trm_core.config import Config
from trm_core.doctor.dataset import checks as dataset_checks
from trm_core.doctor.distributed import checks as distributed_checks
from trm_core.doctor.model_memory import checks as model_checks
from trm_core.doctor.platform import checks as platform_checks
from trm_core.doctor.report import Check, guarded, guarded_iter
from trm_core.doctor.storage import checks as storage_checks


def checks_for(cfg: Config, run_dir: Path, preset: str | None = None, probe_memory: bool = True,
               quick: bool = False) -> list[Check]:
    """Every check of ``cfg`` for a run in ``run_dir`` (``preset``: the build the dataset should have had).
    ``quick``: only what needs neither torch nor a GPU (milliseconds; what a start checks before it
    launches): the dataset, the run dir, the file system, the rendezvous."""
    return list(iter_checks(cfg, run_dir, preset, probe_memory, quick))


def iter_checks(cfg: Config, run_dir: Path, preset: str | None = None, probe_memory: bool = True,
                quick: bool = False, note: Callable[[str], None] = lambda text: None) -> Iterator[Check]:
    """The same checks, each as soon as it is known (a report can print them as they come); ``note`` hears
    what a slow one is doing (the memory probe), and an empty string when it is done."""
    if not quick:
        yield from guarded("torch", "platform", lambda: platform_checks(cfg))
    yield from guarded("dataset", "dataset", lambda: dataset_checks(cfg, preset, quick))
    if not quick:
        yield from guarded_iter("model", "model", model_checks(cfg, probe_memory, note))
    yield from guarded("disk", "disk", lambda: storage_checks(cfg, run_dir, with_model=not quick))
    yield from guarded("distributed", "distributed", lambda: distributed_checks(cfg, with_gpus=not quick))
