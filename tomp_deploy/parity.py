"""Backend-against-backend parity: every contract output on identical inputs, and whole-sequence tracking.

One comparator (`compare_outputs`) over outputs keyed by (graph, output name) serves the `parity`
command, `bench` and the FP16 checks; what counts as close enough is data (`Tolerances`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tomp_deploy.backends.base import Backend, HostTracking
from tomp_deploy.contract import GRAPHS, graph_io
from tomp_deploy.driver import track_frames
from tomp_deploy.geometry import iou

OutputKey = tuple[str, str]
"""(graph, output name)."""


class RecordingBackend(HostTracking):
    """Passes contract calls through to a backend and keeps their inputs; tracking goes through the
    contract on the host, so every call a tracker makes is recorded."""

    def __init__(self, inner: Backend):
        self.inner = inner
        self.name = inner.name
        self.config = inner.config
        self.tracker_params = inner.tracker_params
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

    def first_calls(self, count: int) -> dict[str, list[tuple]]:
        """The inputs of the first `count` calls of each graph."""
        return {graph: calls[:count] for graph, calls in self.calls.items()}

    def close(self) -> None:
        self.inner.close()


@dataclass
class OutputComparison:
    graph: str
    output: str
    max_abs: float
    max_rel: float
    """max |candidate - reference| / max |reference|, the worst over all compared calls."""
    finite: bool
    """Whether every candidate value was finite."""


@dataclass
class SequenceComparison:
    ious: np.ndarray
    centre_errors: np.ndarray

    @property
    def worst_frame(self) -> int:
        return int(np.argmin(self.ious))


@dataclass(frozen=True)
class Tolerances:
    max_rel: float
    """Largest relative error (max |a - b| / max |a|) allowed on any contract output."""
    min_iou: float
    """Smallest IoU allowed between the two trackers' boxes on any frame."""

    def outputs_within(self, rows: list[OutputComparison]) -> bool:
        return all(row.finite and row.max_rel <= self.max_rel for row in rows)

    def tracking_within(self, tracking: SequenceComparison) -> bool:
        return tracking.ious.size == 0 or float(tracking.ious.min()) >= self.min_iou


FP32_TOLERANCES = Tolerances(max_rel=1e-4, min_iou=0.999)
"""Two FP32 backends of one model: only summation order differs."""
FP16_TOLERANCES = Tolerances(max_rel=1e-2, min_iou=0.98)
"""An FP16 copy against its FP32 model."""


def relative_error(reference: np.ndarray, candidate: np.ndarray) -> tuple[float, float]:
    """(max |a - b|, max |a - b| / max |a|)."""
    reference, candidate = np.asarray(reference, np.float64), np.asarray(candidate, np.float64)
    difference = float(np.abs(reference - candidate).max())
    return difference, difference / max(float(np.abs(reference).max()), 1e-12)


def contract_outputs(backend: Backend, inputs: dict[str, list[tuple]]) -> dict[OutputKey, list[np.ndarray]]:
    """Runs `backend` on each graph's input tuples; outputs keyed by (graph, output name)."""
    outputs: dict[OutputKey, list[np.ndarray]] = {}
    for graph, calls in inputs.items():
        names = [spec.name for spec in graph_io(backend.config)[graph][1]]
        for arrays in calls:
            result = getattr(backend, graph)(*arrays)
            for name, value in zip(names, (result,) if graph == "backbone" else result):
                outputs.setdefault((graph, name), []).append(value)
    return outputs


def compare_outputs(reference: dict[OutputKey, list[np.ndarray]],
                    candidate: dict[OutputKey, list[np.ndarray]]) -> list[OutputComparison]:
    """The worst error of each output of `candidate` against `reference`, over all calls."""
    rows = []
    for (graph, name), references in reference.items():
        errors = [relative_error(a, b) for a, b in zip(references, candidate[(graph, name)])]
        finite = all(bool(np.isfinite(b).all()) for b in candidate[(graph, name)])
        rows.append(OutputComparison(graph, name, max(e[0] for e in errors), max(e[1] for e in errors), finite))
    return rows


def compare_contract(a: Backend, b: Backend, inputs: dict[str, list[tuple]]) -> list[OutputComparison]:
    """Both backends on the same recorded inputs, every output compared."""
    return compare_outputs(contract_outputs(a, inputs), contract_outputs(b, inputs))


def track_sequence(backend: Backend, frames, init_box) -> np.ndarray:
    """[N, 4] boxes of one target over `frames` (the first is the initial box)."""
    return np.array([step.boxes[0] for step in track_frames(backend, frames, [init_box])])


def compare_sequences(boxes_a: np.ndarray, boxes_b: np.ndarray) -> SequenceComparison:
    centres_a = boxes_a[:, :2] + boxes_a[:, 2:] / 2
    centres_b = boxes_b[:, :2] + boxes_b[:, 2:] / 2
    return SequenceComparison(iou(boxes_a, boxes_b), np.linalg.norm(centres_a - centres_b, axis=1))
