"""A run's log, elsewhere: TensorBoard event files (and through them W&B, Aim, trackio) and CSV tables.

Every exporter is a reader of ``events.jsonl`` like any front end: the worker's hot path never knows. The
tags and columns are defined here once (``scalars``), the writers beside them (``tensorboard``, ``tables``).
"""
