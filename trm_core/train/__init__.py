"""Training: the TRM model and its network (``model``, ``mixer``), one optimizer step with deep supervision
and halting (``trainer``), the EMA copy (``ema``) and the learning-rate schedule (``schedule``). Knows
nothing of processes or run dirs: the worker drives it."""
