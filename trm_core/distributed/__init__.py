"""Data parallelism across processes and machines, launched by torchrun (``torch.distributed``).

- ``group``: the process group as the trainer and the worker see it (one process is a group of one).
- ``rank_files``: each rank's small heartbeat file and log under ``RUN_DIR/ranks/``.
- ``launch``: the torchrun command line a node's keeper starts, and the node's own files.
- ``postmortem``: after the group went down, which rank took it down, and why.

Only ``group`` imports torch: the front ends read rank files and build launch lines cheaply.
"""
