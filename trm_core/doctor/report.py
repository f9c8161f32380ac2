"""One check's verdict, and every check for one config in one list."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from trm_core.config import Config


class Status(str, enum.Enum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Check:
    """What was checked (``area``, ``name``), the verdict, what was seen, and what to do when not OK."""

    area: str
    name: str
    status: Status
    detail: str
    fix: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"status": str(self.status)}


def ok(area: str, name: str, detail: str) -> Check:
    return Check(area, name, Status.OK, detail)


def warn(area: str, name: str, detail: str, fix: str) -> Check:
    return Check(area, name, Status.WARN, detail, fix)


def fail(area: str, name: str, detail: str, fix: str) -> Check:
    return Check(area, name, Status.FAIL, detail, fix)


def guarded(area: str, name: str, run: Callable[[], list[Check]]) -> list[Check]:
    """A check that itself breaks is a FAIL naming what broke, never a traceback that hides the others."""
    try:
        return run()
    except Exception as exc:  # noqa: BLE001 - the report must go on
        return [fail(area, name, f"the check itself failed: {type(exc).__name__}: {exc}",
                     "report this with the output of trm-tui doctor --json")]


def checks_for(cfg: Config, run_dir: Path, preset: str | None = None, probe_memory: bool = True,
               quick: bool = False) -> list[Check]:
    """Every check of ``cfg`` for a run in ``run_dir`` (``preset``: the build the dataset should have had).
    ``quick``: only what needs neither torch nor a GPU (milliseconds; what a start checks before it
    launches): the dataset, the run dir, the file system, the rendezvous."""
    from trm_core.doctor import dataset, distributed, storage

    found: list[Check] = []
    if not quick:
        from trm_core.doctor import model_memory, platform

        found += guarded("torch", "platform", lambda: platform.checks(cfg))
    found += guarded("dataset", "dataset", lambda: dataset.checks(cfg, preset))
    if not quick:
        found += guarded("model", "model", lambda: model_memory.checks(cfg, probe_memory))
    found += guarded("disk", "disk", lambda: storage.checks(cfg, run_dir, with_model=not quick))
    found += guarded("distributed", "distributed", lambda: distributed.checks(cfg, with_gpus=not quick))
    return found
