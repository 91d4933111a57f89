"""One-pass evaluation metrics as the reference implementation's analysis computes them.

Per sequence: the first predicted box is replaced by the annotation; a zero-sized prediction repeats
the previous one; boxes are inclusive pixel boxes (x2 = x + w - 1) for overlaps and centres. A frame is
valid when its annotation has four positive values and the target is visible where the dataset flags
it. Invalid frames never count as a success for overlap, do count for normalised precision, and
count for precision only on UAV123 (the reference's conventions); LaSOT frames with an invisible target
never count for either precision. Every frame is in the denominator. Curves are averaged over
sequences: AUC is the mean of the success curve over overlap thresholds 0, 0.05, ..., 1; precision is
the fraction within 20 px; normalised precision within 0.2 of the target size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tomp_deploy.evaluation.datasets import Sequence
from tomp_deploy.runtime.errors import ToMPError

OVERLAP_THRESHOLDS = np.arange(0.0, 1.0 + 0.05, 0.05)
CENTER_THRESHOLDS = np.arange(0, 51, dtype=np.float64)
NORM_CENTER_THRESHOLDS = np.arange(0, 51, dtype=np.float64) / 100.0
PRECISION_INDEX = 20


@dataclass
class SequenceCurves:
    success: np.ndarray
    """Fraction of frames with overlap > each of OVERLAP_THRESHOLDS."""
    precision: np.ndarray
    """Fraction of frames with centre error <= each of CENTER_THRESHOLDS (pixels)."""
    norm_precision: np.ndarray
    """Fraction of frames with normalised centre error <= each of NORM_CENTER_THRESHOLDS."""
    mean_overlap: float

    @classmethod
    def zero(cls) -> "SequenceCurves":
        return cls(
            np.zeros(len(OVERLAP_THRESHOLDS)), np.zeros(len(CENTER_THRESHOLDS)), np.zeros(len(NORM_CENTER_THRESHOLDS)), 0.0
        )

    def summary(self) -> dict[str, float]:
        """AUC, precision and normalised precision in percent."""
        return {
            "auc": float(self.success.mean() * 100),
            "precision": float(self.precision[PRECISION_INDEX] * 100),
            "norm_precision": float(self.norm_precision[PRECISION_INDEX] * 100),
        }


def overlaps(pred: np.ndarray, anno: np.ndarray) -> np.ndarray:
    """IoU of inclusive pixel boxes, row-wise."""
    top_left = np.maximum(pred[:, :2], anno[:, :2])
    bottom_right = np.minimum(pred[:, :2] + pred[:, 2:] - 1.0, anno[:, :2] + anno[:, 2:] - 1.0)
    intersection = np.clip(bottom_right - top_left + 1.0, 0, None).prod(axis=1)
    union = pred[:, 2:].prod(axis=1) + anno[:, 2:].prod(axis=1) - intersection
    with np.errstate(invalid="ignore", divide="ignore"):
        return intersection / union


def center_errors(pred: np.ndarray, anno: np.ndarray, normalized: bool = False) -> np.ndarray:
    pred_center = pred[:, :2] + 0.5 * (pred[:, 2:] - 1.0)
    anno_center = anno[:, :2] + 0.5 * (anno[:, 2:] - 1.0)
    if normalized:
        with np.errstate(invalid="ignore", divide="ignore"):
            pred_center, anno_center = pred_center / anno[:, 2:], anno_center / anno[:, 2:]
    return np.sqrt(((pred_center - anno_center) ** 2).sum(axis=1))


def sequence_curves(pred: np.ndarray, sequence: Sequence, origin: str = "results") -> SequenceCurves:
    anno = sequence.ground_truth
    pred = np.array(pred, dtype=np.float64)
    if pred.shape != anno.shape:
        raise ToMPError(
            f"{origin}: {len(pred)} boxes for the {len(anno)} frames of {sequence.name}; a results file has one "
            "x,y,w,h line per frame, the first being the initial box."
        )
    if np.isnan(pred).any() or (pred[:, 2:] < 0).any():
        row = int(np.flatnonzero(np.isnan(pred).any(axis=1) | (pred[:, 2:] < 0).any(axis=1))[0])
        raise ToMPError(f"{origin} line {row + 1}: the box {pred[row].tolist()} has NaN or a negative size.")
    annotated = ~np.isnan(anno).any(axis=1)
    for i in range(1, len(pred)):
        if (pred[i, 2:] == 0).any() and annotated[i]:
            pred[i] = pred[i - 1]
    pred[0] = anno[0]
    valid = sequence.valid
    overlap = np.where(valid, np.nan_to_num(overlaps(pred, anno), nan=-1.0), -1.0)
    uav = sequence.dataset == "uav"
    center = np.where(valid, center_errors(pred, anno), -1.0 if uav else np.inf)
    norm_center = np.where(valid, center_errors(pred, anno, normalized=True), -1.0)
    if sequence.dataset in ("lasot", "lasot_extension") and sequence.target_visible is not None:
        center[~sequence.target_visible] = np.inf
        norm_center[~sequence.target_visible] = np.inf
    frames = len(anno)
    return SequenceCurves(
        (overlap[:, None] > OVERLAP_THRESHOLDS[None]).sum(0) / frames,
        (center[:, None] <= CENTER_THRESHOLDS[None]).sum(0) / frames,
        (norm_center[:, None] <= NORM_CENTER_THRESHOLDS[None]).sum(0) / frames,
        float(overlap[valid].mean()) if valid.any() else 0.0,
    )


def average(curves: list[SequenceCurves]) -> SequenceCurves:
    return SequenceCurves(
        np.mean([c.success for c in curves], axis=0),
        np.mean([c.precision for c in curves], axis=0),
        np.mean([c.norm_precision for c in curves], axis=0),
        float(np.mean([c.mean_overlap for c in curves])),
    )
