"""The two kinds of training step (``train.carry``): "shrink" and the reference's "refill"."""
