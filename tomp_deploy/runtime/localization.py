"""ATOM/DiMP 'advanced' localisation on a ToMP score map, as the reference tracker applies it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tomp_deploy.runtime.geometry import argmax2d
from tomp_deploy.runtime.presets import TrackerParams

NORMAL, HARD_NEGATIVE, UNCERTAIN, NOT_FOUND = "normal", "hard_negative", "uncertain", "not_found"


@dataclass
class Localization:
    flag: str
    """normal, hard_negative (a distractor is present), uncertain or not_found."""
    cell: np.ndarray
    """(row, col) of the score peak whose box is reported."""
    max_score: float


def default_confidence(found: Localization) -> tuple[float, bool]:
    """The default mode's `confidence` and `present`: the score peak clipped to [0, 1], and whether the
    localisation found the target (any outcome but not_found). A non-finite peak is confidence 0 and
    never present (the tracker flags it not_found)."""
    if not math.isfinite(found.max_score):
        return 0.0, False
    return min(max(float(found.max_score), 0.0), 1.0), found.flag != NOT_FOUND


def peak_window(cell: np.ndarray, extent: np.ndarray, shape: tuple[int, int]) -> tuple[slice, slice]:
    """The rows and columns of a map of `shape` within `extent` (rows, columns, in cells) around `cell`:
    the neighbourhood masked out when looking for a second peak."""
    top = max(round(cell[0] - extent[0] / 2), 0)
    bottom = min(round(cell[0] + extent[0] / 2 + 1), shape[0])
    left = max(round(cell[1] - extent[1] / 2), 0)
    right = min(round(cell[1] + extent[1] / 2 + 1), shape[1])
    return slice(top, bottom), slice(left, right)


def localize(
    scores: np.ndarray,
    target_size: np.ndarray,
    previous_offset: np.ndarray,
    sample_scale: float,
    sample_size: int,
    params: TrackerParams,
) -> Localization:
    """Finds the target on `scores` [F, F].

    `target_size` (h, w) is in image pixels; `previous_offset` (y, x) is the previous target centre
    relative to the sample centre, in score cells. The best peak is the target unless its score is
    below `target_not_found_threshold`. Otherwise the neighbourhood of the peak
    (`target_neighborhood_scale` times the target) is masked out and a second peak looked for: a strong
    second peak (above `distractor_threshold` of the first) is resolved by which peak lies within
    `displacement_scale` of the map's half-size from the previous position; a weaker one (above
    `hard_negative_threshold`) marks a hard negative.
    """
    size = np.array(scores.shape, dtype=np.float64)
    center = (size - 1) / 2
    max_score1, peak1 = argmax2d(scores)
    if max_score1 < params.target_not_found_threshold:
        return Localization(NOT_FOUND, peak1, max_score1)

    neighbourhood = params.target_neighborhood_scale * (target_size / sample_scale) * (size / sample_size)
    masked = scores.copy()
    masked[peak_window(peak1, neighbourhood, scores.shape)] = 0
    max_score2, peak2 = argmax2d(masked)

    if max_score2 > params.distractor_threshold * max_score1:
        distance1 = np.linalg.norm(peak1 - center - previous_offset)
        distance2 = np.linalg.norm(peak2 - center - previous_offset)
        threshold = params.displacement_scale * math.sqrt(size[0] * size[1]) / 2
        if distance2 > threshold and distance1 < threshold:
            return Localization(HARD_NEGATIVE, peak1, max_score1)
        if distance2 < threshold and distance1 > threshold:
            return Localization(HARD_NEGATIVE, peak2, max_score1)
        return Localization(UNCERTAIN, peak1, max_score1)

    if max_score2 > params.hard_negative_threshold * max_score1 and max_score2 > params.target_not_found_threshold:
        return Localization(HARD_NEGATIVE, peak1, max_score1)
    return Localization(NORMAL, peak1, max_score1)
