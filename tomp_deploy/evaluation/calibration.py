"""Fitting long-term mode's two logistic models (`runtime.confidence`: PRESENCE for tracked frames,
CANDIDATE for re-detection candidates) on a user's sequences.

The tracker runs each sequence in long-term mode with the model's current parameters. Every frame after
the first gives the confidence features of the box it reported, and every whole-frame search gives those of
each tile's candidate box; each is labelled 1 where its box overlaps the ground truth with IoU above 0.5, 0
elsewhere (absent frames included). A logistic regression (scikit-learn) on standardised features is fitted
per model and folded back into weights on the raw features, the form the runtime evaluates.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from tomp_deploy.evaluation.datasets import Sequence
from tomp_deploy.evaluation.metrics import overlaps
from tomp_deploy.runtime.confidence import CANDIDATE, FEATURES, PRESENCE, LogisticModel
from tomp_deploy.runtime.driver import track_frames
from tomp_deploy.runtime.errors import ToMPError
from tomp_deploy.runtime.presets import TrackerParams
from tomp_deploy.runtime.sources import FrameSource

ON_TARGET_IOU = 0.5
MIN_SAMPLES_PER_LABEL = 20
"""A fit needs at least this many samples on the target and this many off it (absent or drifted)."""


@dataclass
class LabelledFeatures:
    features: np.ndarray
    """[N, len(FEATURES)]."""
    on_target: np.ndarray
    """[N] bool: the box overlaps the visible target with IoU above `ON_TARGET_IOU`."""


@dataclass
class CalibrationSamples:
    frames: LabelledFeatures
    """One per tracked frame whose scores were finite (the presence model's samples)."""
    candidates: LabelledFeatures
    """One per whole-frame search's candidate (the candidate model's samples)."""


@dataclass
class ModelFit:
    """How well one logistic model ranks its samples before and after the fit."""

    samples: int
    on_target: int
    auc_before: float
    """ROC AUC of the model's probability before the fit (0.5: no better than chance)."""
    auc_after: float
    log_loss_before: float
    log_loss_after: float


@dataclass
class CalibrationReport:
    presence: ModelFit
    candidate: ModelFit | None
    """None where the sequences gave too few candidates on or off the target: that model is kept."""


def collect_samples(
    backend, sequences: Iterable[Sequence], params: TrackerParams, on_frame: Callable[[], None] | None = None
) -> CalibrationSamples:
    """Tracks every sequence in long-term mode with `params`; a sample per frame whose scores were finite and
    one per re-detection candidate, each labelled by its box's overlap with the ground truth."""
    params = dataclasses.replace(params, long_term=True)
    frames, candidates = _Labelled(), _Labelled()
    for sequence in sequences:
        visible = sequence.target_present
        images = (frame.image for frame in FrameSource.of_images(sequence.frames))
        try:
            for tracked in track_frames(backend, images, [sequence.init_box], params):
                if on_frame:
                    on_frame()
                if not tracked.results:
                    continue
                result, index = tracked.results[0], tracked.index
                truth = np.nan_to_num(sequence.ground_truth[index]) if visible[index] else None
                if result.confidence_features is not None:
                    frames.add(result.confidence_features, result.box, truth)
                for candidate in result.candidates:
                    candidates.add(candidate.features, candidate.box, truth)
        except ToMPError as exc:
            raise ToMPError(f"Sequence {sequence.name}: {exc}") from None
    return CalibrationSamples(frames.done(), candidates.done())


class _Labelled:
    def __init__(self):
        self.features, self.on_target = [], []

    def add(self, features: np.ndarray, box: np.ndarray, truth: np.ndarray | None) -> None:
        self.features.append(features)
        self.on_target.append(truth is not None and overlaps(box[None], truth[None])[0] > ON_TARGET_IOU)

    def done(self) -> LabelledFeatures:
        return LabelledFeatures(np.array(self.features).reshape(-1, len(FEATURES)), np.array(self.on_target, bool))


def fit_calibration(samples: CalibrationSamples, params: TrackerParams) -> tuple[TrackerParams, CalibrationReport]:
    """`params` with both logistic models refitted: the presence model on the tracked frames, the candidate
    model on the re-detection candidates (kept as it is where there are too few of them on or off the
    target), and how well each ranks its samples."""
    frames = samples.frames
    positives = int(frames.on_target.sum())
    if min(positives, len(frames.on_target) - positives) < MIN_SAMPLES_PER_LABEL:
        raise ToMPError(
            f"Calibration needs at least {MIN_SAMPLES_PER_LABEL} frames where the tracker is on the target and as "
            f"many where it is not (the target absent or lost); these sequences gave {positives} and "
            f"{len(frames.on_target) - positives}. Add sequences where the target leaves the view or is hidden."
        )
    fitted, presence = _fit(PRESENCE, frames, params)
    candidates = samples.candidates
    positives = int(candidates.on_target.sum())
    candidate = None
    if min(positives, len(candidates.on_target) - positives) >= MIN_SAMPLES_PER_LABEL:
        fitted, candidate = _fit(CANDIDATE, candidates, fitted)
    return fitted, CalibrationReport(presence, candidate)


def _fit(model: LogisticModel, samples: LabelledFeatures, params: TrackerParams) -> tuple[TrackerParams, ModelFit]:
    """`params` with `model` refitted on `samples` (scikit-learn's logistic regression on standardised
    features, folded back into weights on the raw features, the form the runtime evaluates)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss, roc_auc_score
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(samples.features)
    regression = LogisticRegression(max_iter=1000).fit(scaler.transform(samples.features), samples.on_target)
    weights = regression.coef_[0] / scaler.scale_
    bias = float(regression.intercept_[0] - (weights * scaler.mean_).sum())
    fitted = dataclasses.replace(
        params, **{model.bias: bias}, **{model.weight(name): float(weight) for name, weight in zip(FEATURES, weights)}
    )
    before = np.array([model.probability(f, params) for f in samples.features])
    after = np.array([model.probability(f, fitted) for f in samples.features])
    report = ModelFit(
        len(samples.on_target),
        int(samples.on_target.sum()),
        float(roc_auc_score(samples.on_target, before)),
        float(roc_auc_score(samples.on_target, after)),
        float(log_loss(samples.on_target, np.clip(before, 1e-6, 1 - 1e-6))),
        float(log_loss(samples.on_target, np.clip(after, 1e-6, 1 - 1e-6))),
    )
    return fitted, report
