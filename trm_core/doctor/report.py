"""One check's verdict, and every check for one config in one list."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator



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

    def line(self) -> str:
        """The check as doctor prints it: verdict, area, name, what was seen; the fix on a line below."""
        text = f"{str(self.status):<4}  {self.area:<11} {self.name:<11} {self.detail}"
        return text + (f"\n{'':<29}fix: {self.fix}" if self.fix else "")


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


def guarded_iter(area: str, name: str, checks: Iterator[Check]) -> Iterator[Check]:
    """``guarded`` for checks that come one by one: those before a break are kept, the break is a FAIL."""
    try:
        yield from checks
    except Exception as exc:  # noqa: BLE001 - the report must go on
        yield fail(area, name, f"the check itself failed: {type(exc).__name__}: {exc}",
                   "report this with the output of trm-tui doctor --json")
