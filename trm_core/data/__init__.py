"""Training data: a dataset gives batches as a pure function of (seed, epoch, position)."""

from trm_core.data.base import Batch, Dataset
from trm_core.data.factory import build_dataset

__all__ = ["Batch", "Dataset", "build_dataset"]
