"""Long-term tracking measures: tracking precision, tracking recall and their F-score, maximised over
confidence thresholds (Lukežič et al., "Now you see me: evaluating performance in long-term visual
tracking", and the VOT toolkit's `average_tpr`/`pr_curve`/`f_curve` analyses, whose conventions these
follow so that `score` and the toolkit agree on one run).

A tracker reports a box and a confidence on every frame. At a threshold t it claims the target on the
frames whose confidence is at least t. Tracking precision Pr(t) is the mean overlap over the claimed
frames (an overlap is 0 where the target is absent: claiming it there costs precision), 1 where no frame
is claimed. Tracking recall Re(t) is the overlap summed over the claimed frames, divided by the number
of frames where the target is visible. Per sequence, then averaged over sequences at each threshold;
F(t) = 2 Pr Re / (Pr + Re), and the reported F-score is its maximum. The thresholds are shared by all
sequences: +inf, then `resolution - 2` confidences taken at equal steps from all frames' confidences
sorted in decreasing order, then -inf.

The first frame is the initialisation, not a prediction: as in the toolkit it counts as a visible frame
with overlap 0 and confidence 0 (claimed only at thresholds of 0 and below). Overlaps are those of the
one-pass measures (inclusive pixel boxes); the toolkit rasterises rounded boxes, which can move an
overlap by about one pixel's share of the box.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tomp_deploy.evaluation.datasets import Sequence
from tomp_deploy.evaluation.metrics import overlaps
from tomp_deploy.runtime.errors import ToMPError

THRESHOLD_RESOLUTION = 100
REACQUIRE_WITHIN = 30
"""Frames after the target comes back into view within which a tracker must overlap it (IoU > 0.5)."""
CONFIDENCE_SUFFIX = "_confidence.value"
"""A results file's confidences lie beside it: `<name>.txt` -> `<name>_confidence.value`, one number per
frame (the VOT toolkit's naming of per-frame values)."""


def confidence_path(boxes: Path) -> Path:
    return boxes.with_name(boxes.stem + CONFIDENCE_SUFFIX)


def load_confidences(path: Path) -> np.ndarray:
    """One confidence per line; an empty line is a frame without one (NaN), as the VOT toolkit writes for
    the initialisation frame. Errors name the file and line."""
    text = Path(path).read_text()
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    values = []
    for number, line in enumerate(lines, start=1):
        try:
            values.append(float(line) if line.strip() else math.nan)
        except ValueError:
            raise ToMPError(f"{path} line {number}: {line.strip()!r} is not a confidence (one number per line).") from None
    return np.array(values, dtype=np.float64)


def format_confidence(confidence: float) -> str:
    """One line of a confidence file."""
    return f"{confidence:.6f}"


@dataclass
class LongTermRun:
    """One sequence's per-frame overlap with the ground truth and the tracker's confidence."""

    overlap: np.ndarray
    """[N] IoU of the reported box with the ground truth; 0 where the target is absent."""
    confidence: np.ndarray
    """[N] the tracker's confidence that the target is present; NaN where it gave none."""
    visible: np.ndarray
    """[N] bool: the target is in view (the ground truth has a box)."""

    def __post_init__(self):
        lengths = {len(self.overlap), len(self.confidence), len(self.visible)}
        if len(lengths) != 1:
            raise ToMPError(
                f"A long-term run needs one overlap, confidence and visibility per frame; got "
                f"{len(self.overlap)}, {len(self.confidence)} and {len(self.visible)}."
            )
        if not self.visible.any():
            raise ToMPError("The target is absent from every frame; tracking recall is undefined.")


@dataclass
class LongTermCurves:
    thresholds: np.ndarray
    """Decreasing confidence thresholds, from +inf to -inf."""
    reentries: int
    """How often a target came back into view, over all sequences."""
    reacquired: int
    """How many of those returns the tracker overlapped (IoU > 0.5) within `REACQUIRE_WITHIN` frames."""
    precision: np.ndarray
    """Tracking precision at each threshold, averaged over sequences."""
    recall: np.ndarray
    """Tracking recall at each threshold, averaged over sequences."""

    @property
    def f_score(self) -> np.ndarray:
        total = self.precision + self.recall
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, 2 * self.precision * self.recall / np.where(total > 0, total, 1), 0.0)

    def summary(self) -> dict[str, float]:
        """The maximal F-score and the precision, recall and threshold where it is reached."""
        best = int(np.argmax(self.f_score))
        return {
            "f_score": float(self.f_score[best]),
            "tracking_precision": float(self.precision[best]),
            "tracking_recall": float(self.recall[best]),
            "confidence_threshold": float(self.thresholds[best]),
            "reentries": self.reentries,
            "reacquired_within_30_frames": self.reacquired,
        }


def confidence_thresholds(confidences: np.ndarray, resolution: int = THRESHOLD_RESOLUTION) -> np.ndarray:
    """+inf, `resolution - 2` of the sorted confidences at equal steps (all of them when fewer), -inf."""
    if resolution < 3:
        raise ToMPError(f"The threshold resolution must be at least 3, not {resolution}.")
    values = np.sort(confidences[~np.isnan(confidences)])[::-1]
    if len(values) > resolution - 2:
        step = math.floor(len(values) / (resolution - 2))
        values = values[np.round(np.linspace(step, len(values) - step, num=resolution - 2)).astype(int)]
    return np.concatenate([[math.inf], values, [-math.inf]])


def sequence_precision_recall(run: LongTermRun, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tracking precision and recall of one sequence at each threshold. A frame without a confidence (NaN)
    is claimed at no threshold."""
    with np.errstate(invalid="ignore"):
        claimed = run.confidence[None, :] >= thresholds[:, None]
    count = claimed.sum(axis=1)
    overlap_sum = (claimed * run.overlap[None, :]).sum(axis=1)
    precision = np.where(count > 0, overlap_sum / np.maximum(count, 1), 1.0)
    recall = np.where(count > 0, overlap_sum / run.visible.sum(), 0.0)
    return precision, recall


def long_term_curves(runs: list[LongTermRun], resolution: int = THRESHOLD_RESOLUTION) -> LongTermCurves:
    """Precision and recall curves averaged over sequences, at thresholds drawn from every frame's confidence."""
    if not runs:
        raise ToMPError("No sequence to score.")
    thresholds = confidence_thresholds(np.concatenate([run.confidence for run in runs]), resolution)
    curves = [sequence_precision_recall(run, thresholds) for run in runs]
    returns = [reacquisitions(run) for run in runs]
    return LongTermCurves(
        thresholds,
        sum(count for count, _ in returns),
        sum(hits for _, hits in returns),
        np.mean([precision for precision, _ in curves], axis=0),
        np.mean([recall for _, recall in curves], axis=0),
    )


def reacquisitions(run: LongTermRun, within: int = REACQUIRE_WITHIN) -> tuple[int, int]:
    """How often the target comes back into view (an absent frame followed by a visible one), and how many
    of those times the reported box overlaps it (IoU > 0.5) on one of the `within` frames from its return."""
    returns = np.flatnonzero(~run.visible[:-1] & run.visible[1:]) + 1
    hits = sum(bool((run.overlap[start : start + within] > 0.5).any()) for start in returns)
    return len(returns), hits


def long_term_run(pred: np.ndarray, confidence: np.ndarray, sequence: Sequence, origin: str = "results") -> LongTermRun:
    """One sequence's overlaps and confidences from its results: the target is visible where the ground
    truth has a box of positive size and the dataset does not flag it absent (NaN rows in the VOT layout,
    `full_occlusion.txt`/`out_of_view.txt` in LaSOT's)."""
    anno = sequence.ground_truth
    pred = np.asarray(pred, dtype=np.float64)
    confidence = np.asarray(confidence, dtype=np.float64).reshape(-1)
    if pred.shape != anno.shape or confidence.shape != (len(anno),):
        raise ToMPError(
            f"{origin}: {len(pred)} boxes and {len(confidence)} confidences for the {len(anno)} frames of "
            f"{sequence.name}; long-term scoring needs one of each per frame."
        )
    visible = sequence.target_present
    overlap = np.where(visible, np.nan_to_num(overlaps(pred, np.nan_to_num(anno)), nan=0.0), 0.0)
    overlap[0] = 0.0
    confidence = confidence.copy()
    confidence[0] = 0.0
    return LongTermRun(overlap, confidence, visible)
