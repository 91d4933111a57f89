"""Long-term mode's calibrated confidence: the probability that a box overlaps the target (IoU above 0.5),
from what the tracker sees on the frame.

The score peak alone is a poor probability: with the tiny model any compact textured patch scores 0.6 to
0.9, and the tracker drifts onto background at 0.3 to 0.6. The shape of the score map and the box's
appearance say more: one sharp peak over a flat map (peak-to-sidelobe ratio, low entropy, no second peak)
on a box that looks like the annotated target. Two logistic models over those features (`FEATURES`) turn
them into probabilities: `PRESENCE` for the box the tracker reports on a frame, `CANDIDATE` for a
whole-frame search's candidates. Their weights are tracker parameters (`lt_calibration_bias` and
`lt_weight_<feature>`; `lt_candidate_bias` and `lt_candidate_weight_<feature>`), so they travel with the
model (model.json, checkpoint metadata) and `tomp-deploy calibrate` refits both on a user's own sequences.
Numpy and OpenCV only, like the rest of the runtime.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from tomp_deploy.runtime.geometry import argmax2d
from tomp_deploy.runtime.localization import peak_window

FEATURES = ("peak", "sidelobe", "second_peak", "entropy", "colour", "template")
"""peak: the score map's maximum. sidelobe: log(1 + peak-to-sidelobe ratio), the peak above the mean of
the map outside the target's neighbourhood, in that region's standard deviations. second_peak: the highest
score outside the neighbourhood over the peak. entropy: of the map's positive part as a distribution,
over its largest value (1: flat, 0: a single cell). colour: Bhattacharyya coefficient of the box's colour
histogram with the target's, both of the box brightness-normalised. template: normalised cross-correlation
of the box, resized to `TEMPLATE_SIDE` square, with the target's."""
TEMPLATE_SIDE = 16
"""Side of the appearance template in pixels: the target's layout at a resolution that blur, noise and
small misalignments of the box do not change."""
HISTOGRAM_BINS = 8
"""Bins per RGB channel of the colour histogram: coarse enough to ignore noise and blur, fine enough to
tell a colour-shifted look-alike from the target."""
NORMALISED_BRIGHTNESS = 128.0
"""Mean pixel value a box is scaled to before its colour histogram is taken (`_brightness_normalised`)."""


@dataclass(frozen=True)
class LogisticModel:
    """A logistic model over `FEATURES` whose bias and weights are tracker parameters: `bias` names the
    bias's, `weight_prefix` + a feature's name each weight's."""

    bias: str
    weight_prefix: str

    def weight(self, feature: str) -> str:
        """The tracker parameter holding `feature`'s weight."""
        return f"{self.weight_prefix}{feature}"

    def parameters(self, params) -> dict[str, float]:
        """This model's tracker parameters and their values in `params`."""
        return {self.bias: getattr(params, self.bias)} | {
            self.weight(name): getattr(params, self.weight(name)) for name in FEATURES
        }

    def probability(self, features: np.ndarray, params) -> float:
        """The model's probability for one feature vector (in `FEATURES` order)."""
        logit = getattr(params, self.bias) + sum(
            getattr(params, self.weight(name)) * float(value) for name, value in zip(FEATURES, features)
        )
        return 1.0 / (1.0 + math.exp(-min(max(logit, -50.0), 50.0)))


PRESENCE = LogisticModel("lt_calibration_bias", "lt_weight_")
"""A tracked frame's confidence: the probability that the box the tracker reports overlaps the target."""
CANDIDATE = LogisticModel("lt_candidate_bias", "lt_candidate_weight_")
"""A re-detection candidate's confidence: the probability that a tile's peak box overlaps the target. A
model of its own because a tile is not a tracked frame: its crop is not centred on where the target was, most
tiles hold no target at all, and the score-map shape that marks a drift on a tracked frame (a high peak on
a look-alike) is what a tile holding the target shows too."""


def score_map_features(scores: np.ndarray, neighbourhood: np.ndarray) -> np.ndarray:
    """peak, sidelobe, second_peak and entropy of a finite score map [F, F]; `neighbourhood` (rows,
    columns) is the target's extent around the peak in cells, masked out for the sidelobe."""
    peak, cell = argmax2d(scores)
    peak = float(peak)
    outside = np.ones(scores.shape, bool)
    outside[peak_window(cell, neighbourhood, scores.shape)] = False
    sidelobe = scores[outside] if outside.any() else np.zeros(1, scores.dtype)
    ratio = (peak - float(sidelobe.mean())) / (float(sidelobe.std()) + 1e-3)
    second = float(sidelobe.max()) / peak if peak > 1e-3 else 1.0
    positive = np.clip(scores, 0, None).astype(np.float64).ravel()
    total = positive.sum()
    if total > 0 and positive.size > 1:
        p = positive[positive > 0] / total
        entropy = float(-(p * np.log(p)).sum() / math.log(positive.size))
    else:
        entropy = 1.0
    return np.array([peak, math.log1p(max(ratio, 0.0)), min(max(second, 0.0), 2.0), entropy])


class Appearance:
    """The target's look: colour histogram and template of its box on the annotated frame and on the
    newest frame stored in the memory (lighting drifts); a box is compared with both and the closer counts."""

    def __init__(self, frame: np.ndarray, box: np.ndarray):
        self.annotated = describe(frame, box)
        self.recent = None

    def remember(self, frame: np.ndarray, box: np.ndarray) -> None:
        """The newest memory frame's look replaces the previous one's."""
        self.recent = describe(frame, box) or self.recent

    def similarity(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        """colour and template of `box` against the target (0, 0 for a box without pixels in the frame)."""
        described = describe(frame, box)
        references = [look for look in (self.annotated, self.recent) if look is not None]
        if described is None or not references:
            return np.zeros(2)
        histogram, template = described
        colour = max(float(np.sqrt(reference[0] * histogram).sum()) for reference in references)
        correlation = max(float((reference[1] * template).sum()) for reference in references)
        return np.array([colour, correlation])


def describe(frame: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The normalised colour histogram and the zero-mean unit-norm template of the part of `box` (x, y,
    w, h) inside the frame; None when it has less than 2 x 2 pixels there."""
    height, width = frame.shape[:2]
    x1, y1 = max(int(math.floor(box[0])), 0), max(int(math.floor(box[1])), 0)
    x2, y2 = min(int(math.ceil(box[0] + box[2])), width), min(int(math.ceil(box[1] + box[3])), height)
    if x2 - x1 < 2 or y2 - y1 < 2:
        return None
    region = np.ascontiguousarray(frame[y1:y2, x1:x2])
    counts = cv2.calcHist([_brightness_normalised(region)], [0, 1, 2], None, [HISTOGRAM_BINS] * 3, [0, 256] * 3).ravel()
    template = cv2.resize(region, (TEMPLATE_SIDE, TEMPLATE_SIDE), interpolation=cv2.INTER_AREA).astype(np.float64)
    template -= template.mean()
    norm = np.linalg.norm(template)
    template = template / norm if norm > 0 else template
    return counts / counts.sum(), template


def _brightness_normalised(region: np.ndarray) -> np.ndarray:
    """`region` scaled to a mean of `NORMALISED_BRIGHTNESS`: a change of lighting or exposure multiplies every
    pixel by about the same gain, which this undoes, so the colour histogram compares the target's colours
    rather than how brightly it is lit."""
    mean = float(region.mean())
    if mean <= 0:
        return region
    return np.clip(region.astype(np.float32) * (NORMALISED_BRIGHTNESS / mean), 0, 255).astype(np.uint8)
