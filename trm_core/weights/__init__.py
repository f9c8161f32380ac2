"""Weights from elsewhere, made runs: the reference's checkpoints (``reference``), a model folder or a Hugging
Face repository (``sources``), written as a completed run every command opens (``as_run``), and a new run's
starting weights (``init_from``)."""
