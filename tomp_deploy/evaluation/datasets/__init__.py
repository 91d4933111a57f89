"""Benchmark datasets in their published layouts, read into one `Sequence` type (numpy only)."""

from tomp_deploy.evaluation.datasets.readers import FORMATS, open_dataset
from tomp_deploy.evaluation.datasets.sequence import Sequence, load_boxes

__all__ = ["FORMATS", "Sequence", "load_boxes", "open_dataset"]
