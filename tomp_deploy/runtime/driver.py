"""The one tracking loop: frames in, one result per frame out. Every command that tracks a video or a
sequence (track, demo, eval, bench, parity, the benchmarks) iterates `track_frames`."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from tomp_deploy.runtime.backends.base import Backend
from tomp_deploy.runtime.presets import TrackerParams
from tomp_deploy.runtime.target import TrackResult
from tomp_deploy.runtime.tracker import MultiTargetTracker


@dataclass
class TrackedFrame:
    index: int
    image: np.ndarray
    """The RGB frame as given."""
    boxes: list[np.ndarray]
    """(x, y, w, h) per target; the initial boxes on frame 0."""
    scores: list[float]
    """Score peak per target (1.0 on frame 0)."""
    confidences: list[float]
    """Confidence per target that it is present, in [0, 1] (1.0 on frame 0)."""
    seconds: float
    """Time the tracker spent on this frame (initialisation on frame 0); reading frames is not counted."""
    results: list[TrackResult] = field(default_factory=list)
    """The tracker's full results per target; empty on frame 0."""


def track_frames(
    backend: Backend, frames: Iterable[np.ndarray], boxes: list, params: TrackerParams | None = None
) -> Iterator[TrackedFrame]:
    """Initialises on the first frame with `boxes` (one per target), then tracks every later frame.
    `params` overrides the tracker parameters the backend's model records."""
    tracker = MultiTargetTracker(backend, params)
    for index, image in enumerate(frames):
        started = time.perf_counter()
        if index == 0:
            tracker.initialize(image, boxes)
            initial = [np.asarray(b, np.float64) for b in boxes]
            yield TrackedFrame(0, image, initial, [1.0] * len(boxes), [1.0] * len(boxes), time.perf_counter() - started)
            continue
        results = tracker.track(image)
        yield TrackedFrame(
            index,
            image,
            [r.box for r in results],
            [r.score for r in results],
            [r.confidence for r in results],
            time.perf_counter() - started,
            results,
        )


def track_boxes(backend: Backend, frames: Iterable[np.ndarray], init_box) -> np.ndarray:
    """[N, 4] boxes of one target over `frames` (the first is the initial box)."""
    return np.array([step.boxes[0] for step in track_frames(backend, frames, [init_box])])
