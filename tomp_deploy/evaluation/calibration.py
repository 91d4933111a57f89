"""Fitting long-term mode's calibrated confidence (`runtime.confidence`) on a user's sequences.

The tracker runs each sequence in long-term mode with the model's current parameters; every frame after
the first gives the confidence features of the box it reported and a label: 1 where that box overlaps the
ground truth with IoU above 0.5, 0 elsewhere (absent frames included). A logistic regression
(scikit-learn) on standardised features is fitted and folded back into weights on the raw features, the
form the runtime evaluates.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from tomp_deploy.evaluation.datasets import Sequence
from tomp_deploy.evaluation.metrics import overlaps
from tomp_deploy.runtime.confidence import FEATURES, calibrated_confidence, weight_parameter
from tomp_deploy.runtime.driver import track_frames
from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.presets import TrackerParams
from tomp_deploy.runtime.sources import FrameSource

ON_TARGET_IOU = 0.5
MIN_FRAMES_PER_LABEL = 20
"""A fit needs at least this many frames on the target and this many off it (absent or drifted)."""


@dataclass
class CalibrationSamples:
    features: np.ndarray
    """[N, len(FEATURES)] per tracked frame."""
    on_target: np.ndarray
    """[N] bool: the reported box overlaps the visible target with IoU above `ON_TARGET_IOU`."""


@dataclass
class CalibrationReport:
    frames: int
    on_target: int
    auc_before: float
    """ROC AUC of the model's confidence before the fit (0.5: no better than chance)."""
    auc_after: float
    log_loss_before: float
    log_loss_after: float


def collect_samples(
    backend, sequences: Iterable[Sequence], params: TrackerParams, on_frame: Callable[[], None] | None = None
) -> CalibrationSamples:
    """Tracks every sequence in long-term mode with `params`; one sample per frame whose scores were finite."""
    params = dataclasses.replace(params, long_term=True)
    features, labels = [], []
    for sequence in sequences:
        visible = sequence.target_present
        frames = (frame.image for frame in FrameSource.of_images(sequence.frames))
        try:
            for tracked in track_frames(backend, frames, [sequence.init_box], params):
                if on_frame:
                    on_frame()
                if not tracked.results or tracked.results[0].confidence_features is None:
                    continue
                result, index = tracked.results[0], tracked.index
                overlap = overlaps(result.box[None], np.nan_to_num(sequence.ground_truth[index])[None])[0]
                features.append(result.confidence_features)
                labels.append(bool(visible[index]) and overlap > ON_TARGET_IOU)
        except ToMPError as exc:
            raise ToMPError(f"Sequence {sequence.name}: {exc}") from None
    return CalibrationSamples(np.array(features).reshape(-1, len(FEATURES)), np.array(labels, bool))


def fit_calibration(samples: CalibrationSamples, params: TrackerParams) -> tuple[TrackerParams, CalibrationReport]:
    """`params` with the logistic model refitted on `samples`, and how well each model ranks them."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss, roc_auc_score
    from sklearn.preprocessing import StandardScaler

    positives = int(samples.on_target.sum())
    negatives = len(samples.on_target) - positives
    if min(positives, negatives) < MIN_FRAMES_PER_LABEL:
        raise ToMPError(
            f"Calibration needs at least {MIN_FRAMES_PER_LABEL} frames where the tracker is on the target and as "
            f"many where it is not (the target absent or lost); these sequences gave {positives} and {negatives}. "
            "Add sequences where the target leaves the view or is hidden."
        )
    scaler = StandardScaler().fit(samples.features)
    regression = LogisticRegression(max_iter=1000).fit(scaler.transform(samples.features), samples.on_target)
    weights = regression.coef_[0] / scaler.scale_
    bias = float(regression.intercept_[0] - (weights * scaler.mean_).sum())
    fitted = dataclasses.replace(
        params,
        lt_calibration_bias=bias,
        **{weight_parameter(name): float(weight) for name, weight in zip(FEATURES, weights)},
    )
    before = np.array([calibrated_confidence(f, params) for f in samples.features])
    after = np.array([calibrated_confidence(f, fitted) for f in samples.features])
    report = CalibrationReport(
        len(samples.on_target),
        positives,
        float(roc_auc_score(samples.on_target, before)),
        float(roc_auc_score(samples.on_target, after)),
        float(log_loss(samples.on_target, np.clip(before, 1e-6, 1 - 1e-6))),
        float(log_loss(samples.on_target, np.clip(after, 1e-6, 1 - 1e-6))),
    )
    return fitted, report
