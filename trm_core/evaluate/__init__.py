"""Every eval in one home: the per-batch pass (``batch_pass``) that the in-training eval, ``trm-tui eval``,
``solve`` and an ensemble share; a checkpoint loaded to answer (``loaded``); what a run of it writes
(``session``, ``trace``, ``predictions``); how a model is run at test time (``test_time/``); and ARC's vote,
submission and ensemble (``arc/``)."""
