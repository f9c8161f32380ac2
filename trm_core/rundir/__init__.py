"""The run dir: the files a worker writes and every other process reads. Its contract (``layout``: names,
atomic writes, exit codes), the event log (``events``) and its typed records (``records``), checkpoints
(``checkpoints``), and the worker's identity and lock (``identity``). Never imports torch at import time:
``trm-tui status`` and the dashboard read runs without it."""
