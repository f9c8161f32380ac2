"""The reference implementation's carry (``train.carry = "refill"``): a fixed batch of slots, each holding a
sample and its (y, z) across optimizer steps. Every step runs one supervision step for every slot; a slot whose
sample halted (or used its ``max_supervision_steps``) takes the sample at the same row of the next batch, with
fresh (y, z), as the reference does (the other rows of that batch are not used).

The carry is training state like the weights: it goes into the checkpoint, so a resume continues every slot
where it was and stays bit-exact.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch

from trm_core.data.base import Batch


@dataclass
class Carry:
    inputs: torch.Tensor              # (slots, seq)
    targets: torch.Tensor             # (slots, seq)
    hidden: torch.Tensor | None       # (slots, seq) bool, the code task's masked bytes
    puzzle_ids: torch.Tensor | None   # (slots,)
    y: torch.Tensor                   # (positions, slots, dim)
    z: torch.Tensor                   # (positions, slots, dim)
    steps: torch.Tensor               # (slots,) supervision steps the slot's sample has had
    halted: torch.Tensor              # (slots,) bool: the slot takes a new sample at the next step

    @classmethod
    def empty(cls, batch: Batch, y: torch.Tensor, z: torch.Tensor) -> "Carry":
        """Every slot halted: the first step fills them all."""
        slots = len(batch.inputs)
        return cls(batch.inputs.clone(), batch.targets.clone(),
                   None if batch.hidden is None else batch.hidden.clone(),
                   None if batch.puzzle_ids is None else batch.puzzle_ids.clone(),
                   y.clone(), z.clone(), torch.zeros(slots, dtype=torch.long, device=batch.inputs.device),
                   torch.ones(slots, dtype=torch.bool, device=batch.inputs.device))

    def admit(self, batch: Batch, y0: torch.Tensor, z0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Halted slots take their row of ``batch``; returns the states to run from: (y0, z0) in those slots,
        the carried ones elsewhere (``torch.where``, so a learned initial state still gets its gradient). Every
        slot is written, taken or kept, by ``torch.where``: selecting the halted rows would make the host wait
        for the device to learn how many there are."""
        h = self.halted
        row = h[:, None]
        self.inputs = torch.where(row, batch.inputs, self.inputs)
        self.targets = torch.where(row, batch.targets, self.targets)
        if self.hidden is not None and batch.hidden is not None:
            self.hidden = torch.where(row, batch.hidden, self.hidden)
        if self.puzzle_ids is not None and batch.puzzle_ids is not None:
            self.puzzle_ids = torch.where(h, batch.puzzle_ids, self.puzzle_ids)
        self.steps = torch.where(h, 0, self.steps)
        fresh = h[None, :, None]
        return torch.where(fresh, y0, self.y), torch.where(fresh, z0, self.z)

    def state_dict(self) -> dict[str, Any]:
        return {f.name: (None if getattr(self, f.name) is None else getattr(self, f.name).cpu()) for f in fields(self)}

    @classmethod
    def from_state(cls, state: dict[str, Any], device: torch.device) -> "Carry":
        return cls(**{f.name: (None if state[f.name] is None else state[f.name].to(device)) for f in fields(cls)})
