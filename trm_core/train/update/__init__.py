"""How the weights move after a step's gradients: the optimizer, its learning-rate schedule, the EMA copy."""
