"""``trm-tui doctor``: what would make a long run fail hours in, checked in seconds before it starts.

Each check gives OK, WARN or FAIL with what it saw and, when not OK, the fix. The checks are grouped by
what they look at: the platform (torch, CUDA, NVML), the model (it builds; its memory at the configured
batch), the dataset, the disk, the distributed settings. ``trm-tui doctor`` adds the terminal's. Nothing
here trains, writes into a run, or needs a GPU to run (a GPU's facts are read where there is one).
"""

from __future__ import annotations

from trm_core.doctor.all_checks import checks_for
from trm_core.doctor.report import Check, Status

__all__ = ["Check", "Status", "checks_for"]
