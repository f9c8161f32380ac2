"""Auto-tune: a throughput search over micro-batch and threads that keeps the run's math.

``engine`` runs a search for a run dir, ``search`` decides what to try, ``trial`` is the process that
measures one candidate. (Nothing is imported here, so ``python -m trm_core.autotune.trial`` runs clean.)
"""
