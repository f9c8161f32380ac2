"""ARC at eval: the augmentation vote behind pass@k, the ARC Prize submission, and an ensemble of checkpoints."""
