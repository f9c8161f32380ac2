"""Scoring a task's predictions beyond token accuracy: ARC's voting over augmentations (``arc_vote``). NumPy
only; the worker hands it each eval's predictions."""
