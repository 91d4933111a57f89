"""Backend-against-backend parity: every contract output on identical inputs, and whole-sequence tracking."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tomp_deploy.backends.base import Backend, HostTracking
from tomp_deploy.contract import GRAPHS, graph_io
from tomp_deploy.geometry import iou
from tomp_deploy.tracker import ToMPTracker


class RecordingBackend(HostTracking):
    """Passes contract calls through to a backend and keeps their inputs; tracking goes through the
    contract on the host, so every call a tracker makes is recorded."""

    def __init__(self, inner: Backend):
        self.inner = inner
        self.name = inner.name
        self.config = inner.config
        self.calls: dict[str, list[tuple[np.ndarray, ...]]] = {g: [] for g in GRAPHS}

    def _record(self, graph: str, *arrays):
        self.calls[graph].append(tuple(np.array(a, copy=True) for a in arrays))
        return getattr(self.inner, graph)(*arrays)

    def backbone(self, image):
        return self._record("backbone", image)

    def predictor(self, *arrays):
        return self._record("predictor", *arrays)

    def head(self, *arrays):
        return self._record("head", *arrays)


@dataclass
class OutputComparison:
    graph: str
    output: str
    max_abs: float
    max_rel: float


@dataclass
class SequenceComparison:
    ious: np.ndarray
    centre_errors: np.ndarray
    boxes: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def worst_frame(self) -> int:
        return int(np.argmin(self.ious))


def relative_error(reference: np.ndarray, candidate: np.ndarray) -> tuple[float, float]:
    """(max |a - b|, max |a - b| / max |a|)."""
    reference, candidate = np.asarray(reference, np.float64), np.asarray(candidate, np.float64)
    difference = float(np.abs(reference - candidate).max())
    return difference, difference / max(float(np.abs(reference).max()), 1e-12)


def compare_contract(a: Backend, b: Backend, recorded: dict[str, list[tuple]]) -> list[OutputComparison]:
    """Runs both backends on the recorded inputs of each graph and compares every output."""
    worst: dict[tuple[str, str], tuple[float, float]] = {}
    for graph in GRAPHS:
        output_names = [spec.name for spec in graph_io(a.config)[graph][1]]
        for arrays in recorded[graph]:
            out_a, out_b = getattr(a, graph)(*arrays), getattr(b, graph)(*arrays)
            if graph == "backbone":
                out_a, out_b = (out_a,), (out_b,)
            for name, x, y in zip(output_names, out_a, out_b):
                abs_error, rel_error = relative_error(x, y)
                previous = worst.get((graph, name), (0.0, 0.0))
                worst[(graph, name)] = (max(previous[0], abs_error), max(previous[1], rel_error))
    return [OutputComparison(graph, name, *errors) for (graph, name), errors in worst.items()]


def track_sequence(backend: Backend, frames, init_box) -> np.ndarray:
    tracker = ToMPTracker(backend)
    frames = iter(frames)
    tracker.initialize(next(frames), init_box)
    return np.array([np.asarray(init_box, float)] + [tracker.track(frame).box for frame in frames])


def compare_sequences(boxes_a: np.ndarray, boxes_b: np.ndarray) -> SequenceComparison:
    centres_a = boxes_a[:, :2] + boxes_a[:, 2:] / 2
    centres_b = boxes_b[:, :2] + boxes_b[:, 2:] / 2
    return SequenceComparison(iou(boxes_a, boxes_b), np.linalg.norm(centres_a - centres_b, axis=1),
                              {"a": boxes_a, "b": boxes_b})
